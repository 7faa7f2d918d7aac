"""Backbones: audio + text encoders returning token-level features and masks (``base.Backbone``)."""
