"""Corpus-builder stages, one module per stage: acquire -> extract -> separate -> diarize ->
consistency -> caption -> publish (see docs/design.md)."""
