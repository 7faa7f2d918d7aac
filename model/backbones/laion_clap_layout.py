"""File names of the LAION-CLAP layouts ``model.backbones.laion_clap.load_clap`` reads.

Torch-free, so that ``fsclap.weights`` can check a model folder without importing torch.
"""

ORIGINAL_CHECKPOINT = "630k-audioset-best.pt"
TOKENIZER_DIRS = ("roberta-base", "tokenizer")
