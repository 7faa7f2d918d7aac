"""File names of the LAION-CLAP layouts ``model.backbones.laion_clap.load_clap`` reads, and
:func:`clap_files`, the files it reads from a model path.

Torch-free: checking a model folder needs no torch.
"""

from __future__ import annotations

from pathlib import Path

ORIGINAL_CHECKPOINT = "630k-audioset-best.pt"
TOKENIZER_DIRS = ("roberta-base", "tokenizer")
CLAP_CONFIG = "clap_config.json"  # optional architecture overrides beside the original checkpoint


def clap_files(path: Path) -> dict[str, Path]:
    """The files ``model.backbones.laion_clap.load_clap`` reads from ``path`` (same precedence:
    a transformers folder when it has ``config.json``, else the original checkpoint + tokenizer)."""
    path = Path(path)
    if path.is_dir() and (path / "config.json").is_file():
        weights = [
            path / n
            for n in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
        ]
        tokenizer = [path / n for n in ("tokenizer.json", "vocab.json")]
        return {
            "config": path / "config.json",
            "weights": next((w for w in weights if w.is_file()), weights[0]),
            "tokenizer": next((t for t in tokenizer if t.is_file()), tokenizer[0]),
        }
    checkpoint = path / ORIGINAL_CHECKPOINT if path.is_dir() or not path.suffix else path
    files = {"checkpoint": checkpoint}
    folders = [checkpoint.parent / name for name in TOKENIZER_DIRS]
    folder = next(
        (f for f in folders if (f / "tokenizer.json").is_file() or (f / "vocab.json").is_file()),
        folders[0],
    )
    if (folder / "tokenizer.json").is_file():
        files["tokenizer"] = folder / "tokenizer.json"
    else:
        files["tokenizer vocab"] = folder / "vocab.json"
        files["tokenizer merges"] = folder / "merges.txt"
    return files
