"""Generated speech with exact ground truth, for the demo, the tests and the benchmarks.

- :func:`generate_style_corpus` (``fsclap synth style``): clips with known gender / pitch / speed /
  energy / nominal emotion, measured acoustics, captions, speaker-disjoint splits.
- :func:`generate_dramas` (``fsclap synth drama``): short-drama episodes (MP4) with recurring speakers
  over music and noise, RTTM/JSON ground truth and stems, plus ``sources.yaml``.
- :func:`serve_directory` / :func:`write_served_sources`: serve a generated folder over loopback HTTP
  and point a sources file at it, for acquisition tests.
"""

from pipeline.synth.drama import (
    DramaCorpusResult,
    generate_dramas,
    load_truth,
    write_served_sources,
)
from pipeline.synth.serve import serve_directory, serving
from pipeline.synth.style_corpus import StyleCorpusResult, generate_style_corpus

__all__ = [
    "DramaCorpusResult",
    "StyleCorpusResult",
    "generate_dramas",
    "generate_style_corpus",
    "load_truth",
    "serve_directory",
    "serving",
    "write_served_sources",
]
