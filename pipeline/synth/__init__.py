"""Generated speech with exact ground truth, for the demo, the tests and the benchmarks.

- :func:`generate_style_corpus` (``fsclap synth style``): clips with known gender / pitch / speed /
  energy / nominal emotion, measured acoustics, captions, speaker-disjoint splits.
- :func:`generate_dramas` (``fsclap synth drama``): short-drama episodes (MP4) with recurring speakers
  over music and noise, RTTM/JSON ground truth and stems, plus ``sources.yaml``.
- :func:`serve_directory`: serve a folder over loopback HTTP for acquisition tests.
"""

from pipeline.synth.style_corpus import StyleCorpusResult, generate_style_corpus

__all__ = ["StyleCorpusResult", "generate_style_corpus"]
