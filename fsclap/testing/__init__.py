"""Helpers for tests and benchmarks: tiny random-weight models saved in the real on-disk layouts.

The project's loaders read these exactly as they read the real weights, so the loading code
path is the one under test (no model hub is reachable here).
"""
