"""FS-CLAP: backbones, fusion-separation, losses, training, evaluation, retrieval."""
