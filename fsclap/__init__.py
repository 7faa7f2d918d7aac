"""fsclap: short-drama video -> emotional-speaking-style speech corpus, and FS-CLAP retrieval."""

__version__ = "0.1.0"
