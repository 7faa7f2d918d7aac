"""Random-weight models written in their real on-disk layouts."""

from __future__ import annotations

from pathlib import Path

import torch

HTDEMUCS_SOURCES = ["drums", "bass", "other", "vocals"]


def write_htdemucs_repo(
    root: str | Path,
    name: str = "htdemucs",
    channels: int = 8,
    depth: int = 4,
    t_layers: int = 1,
    seed: int = 0,
    segment: float = 4.0,
    **kwargs,
) -> Path:
    """A Demucs local model repo (``<sig>-<checksum>.th`` + ``<name>.yaml``) holding a random HTDemucs.

    ``demucs.pretrained.get_model(name, repo=root)`` loads it like the released ``htdemucs``.
    Defaults give a 0.36M-parameter model; ``channels=48, t_layers=5`` is the released size.
    Keep ``depth=4``: shallower models leave a very long sequence for the cross-domain
    transformer at the bottleneck, which is far slower than the full model.
    """
    import yaml
    from demucs.htdemucs import HTDemucs
    from demucs.states import save_with_checksum, serialize_model
    from omegaconf import OmegaConf

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = HTDemucs(sources=HTDEMUCS_SOURCES, channels=channels, depth=depth, t_layers=t_layers, segment=segment, **kwargs)
    package = serialize_model(model, OmegaConf.create({}), half=False)
    sig = f"tiny{seed:04d}"
    save_with_checksum(package, root / f"{sig}.th")
    (root / f"{name}.yaml").write_text(yaml.safe_dump({"models": [sig], "segment": segment}))
    return root
