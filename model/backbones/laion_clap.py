"""LAION-CLAP (HTSAT-tiny + RoBERTa) through transformers' ``ClapModel``.

``Settings.model_path("laion_clap")`` may point at

* a transformers-format folder (``config.json`` + ``model.safetensors``/``pytorch_model.bin`` +
  tokenizer files + ``preprocessor_config.json``), e.g. a snapshot of ``laion/clap-htsat-unfused``; or
* the original LAION checkpoint ``630k-audioset-best.pt`` (or a folder holding it), converted on load
  with the key mapping of transformers' ``convert_clap_original_pytorch_to_hf.py`` (reimplemented
  here, the ``laion_clap`` package is not needed). The RoBERTa tokenizer must sit beside it in a
  folder named ``roberta-base`` (or ``tokenizer``): ``vocab.json`` + ``merges.txt`` or ``tokenizer.json``.

Token-level features: the 64 (2 x 32) final HTSAT tokens (768-d) and RoBERTa's last hidden states.
HTSAT's input BatchNorm is kept in eval mode during fine-tuning so that training-time features of a
clip do not depend on the rest of its batch (and match evaluation-time features).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fsclap.config import Settings
from fsclap.errors import FsclapError, MissingModelError
from fsclap.log import get_logger
from fsclap.model_store.loaders import ModelLoader, check_finite, declare_loader, near_silence
from model.backbones.base import AudioPreprocessor, Backbone, TextPreprocessor, TokenFeatures
from model.backbones.laion_clap_layout import (
    CLAP_CONFIG,
    ORIGINAL_CHECKPOINT,
    TOKENIZER_DIRS,
    clap_files,
)

log = get_logger("model.laion_clap")

HINT = (
    "download 630k-audioset-best.pt from https://huggingface.co/lukewys/laion_clap plus the roberta-base "
    "tokenizer beside it, or a transformers snapshot of laion/clap-htsat-unfused; set model_paths.laion_clap "
    "or FSCLAP_MODELS"
)

# transformers' convert_clap_original_pytorch_to_hf.py, applied in order as substring replacements
KEYS_TO_MODIFY_MAPPING = {
    "text_branch": "text_model",
    "audio_branch": "audio_model.audio_encoder",
    "attn": "attention.self",
    "self.proj": "output.dense",
    "attention.self_mask": "attn_mask",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "bn0": "batch_norm",
}
# original parts that ClapModel does not hold (in-model STFT/mel, AudioSet head, the unused transform MLPs)
_IGNORED_ORIGINAL = (
    "spectrogram_extractor",
    "logmel_extractor",
    "tscam_conv",
    "audio_encoder.head.",
    "_transform.",
    "attn_mask",
)
_OPTIONAL_HF_BUFFERS = (
    "position_ids",
    "token_type_ids",
    "relative_position_index",
    "num_batches_tracked",
)

# laion/clap-htsat-unfused preprocessor settings (what the original model computes in-graph)
CLAP_FEATURE_EXTRACTOR = dict(
    feature_size=64,
    sampling_rate=48000,
    hop_length=480,
    max_length_s=10,
    fft_window_size=1024,
    frequency_min=50,
    frequency_max=14000,
    top_db=None,
    truncation="rand_trunc",
    padding="repeatpad",
)


def rename_original_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Original LAION-CLAP parameter names -> transformers ``ClapModel`` names (fused qkv split in three)."""
    out: dict[str, Tensor] = {}
    sequential = re.compile(r".*sequential.(\d+).*")
    projection = re.compile(r".*_projection.(\d+).*")
    for key, value in state_dict.items():
        if key.startswith("module."):
            key = key[len("module.") :]
        for old, new in KEYS_TO_MODIFY_MAPPING.items():
            if old in key:
                key = key.replace(old, new)
        if m := sequential.match(key):
            key = key.replace(f"sequential.{m.group(1)}.", f"layers.{int(m.group(1)) // 3}.linear.")
        elif m := projection.match(key):
            layer = (
                1 if int(m.group(1)) == 0 else 2
            )  # nn.Sequential(Linear, ReLU, Linear): 0 -> linear1, 2 -> linear2
            key = key.replace(f"_projection.{m.group(1)}.", f"_projection.linear{layer}.")
        if "qkv" in key:
            q, k, v = value.chunk(3, dim=0)
            out[key.replace("qkv", "query")] = q
            out[key.replace("qkv", "key")] = k
            out[key.replace("qkv", "value")] = v
        else:
            out[key] = value
    return out


def config_from_original(sd: dict[str, Tensor], overrides: dict[str, Any] | None = None):
    """A ``ClapConfig`` read off the (renamed) weights' shapes, as the conversion script does."""
    from transformers import ClapConfig

    if any("fusion_model" in k or "mel_conv2d" in k for k in sd):
        raise FsclapError(
            "feature-fusion LAION-CLAP checkpoints are not supported; use 630k-audioset-best.pt (unfused)"
        )
    enc = "audio_model.audio_encoder."
    try:
        patch_dim = sd[enc + "patch_embed.proj.weight"].shape[0]
        n_stages = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith(enc + "layers."))
        depths, heads = [], []
        for s in range(n_stages):
            blocks = {int(k.split(".")[5]) for k in sd if k.startswith(f"{enc}layers.{s}.blocks.")}
            depths.append(len(blocks))
            heads.append(
                sd[f"{enc}layers.{s}.blocks.0.attention.self.relative_position_bias_table"].shape[1]
            )
        table = sd[f"{enc}layers.0.blocks.0.attention.self.relative_position_bias_table"].shape[0]
        window = (int(round(table**0.5)) + 1) // 2
        proj_dim, audio_hidden = sd["audio_projection.linear1.weight"].shape
        words = sd["text_model.embeddings.word_embeddings.weight"]
        text_hidden = words.shape[1]
        n_text_layers = 1 + max(
            int(k.split(".")[3]) for k in sd if k.startswith("text_model.encoder.layer.")
        )
    except (KeyError, ValueError) as exc:
        raise FsclapError(f"not a LAION-CLAP checkpoint (missing {exc})") from None
    audio = dict(
        patch_embeds_hidden_size=patch_dim,
        depths=depths,
        num_attention_heads=heads,
        window_size=window,
        hidden_size=audio_hidden,
        num_mel_bins=sd[enc + "batch_norm.weight"].shape[0],
        enable_fusion=False,
    )
    text = dict(
        vocab_size=words.shape[0],
        hidden_size=text_hidden,
        num_hidden_layers=n_text_layers,
        num_attention_heads=max(1, text_hidden // 64),
        intermediate_size=sd["text_model.encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=sd["text_model.embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=sd["text_model.embeddings.token_type_embeddings.weight"].shape[0],
        layer_norm_eps=1e-5,
    )
    overrides = overrides or {}
    audio.update(overrides.get("audio_config", {}))
    text.update(overrides.get("text_config", {}))
    return ClapConfig(audio_config=audio, text_config=text, projection_dim=proj_dim)


def _load_original(path: Path):
    """``630k-audioset-best.pt`` -> (ClapModel, tokenizer folder)."""
    from transformers import ClapModel

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError or RuntimeError by version
        raise FsclapError(
            f"cannot read LAION-CLAP checkpoint {path}: {str(exc).splitlines()[0]}"
        ) from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise FsclapError(f"{path} holds no state_dict")
    sd = rename_original_state_dict(state)
    overrides = {}
    if (path.parent / CLAP_CONFIG).is_file():  # optional architecture overrides (e.g. text heads)
        import json

        overrides = json.loads((path.parent / CLAP_CONFIG).read_text())
    config = config_from_original(sd, overrides)
    model = ClapModel(config)
    expected = model.state_dict()
    sd = {k: v for k, v in sd.items() if not any(tag in k for tag in _IGNORED_ORIGINAL)}
    missing = [
        k for k in expected if k not in sd and not any(tag in k for tag in _OPTIONAL_HF_BUFFERS)
    ]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        bad = (missing + unexpected)[:5]
        raise FsclapError(
            f"LAION-CLAP checkpoint {path} does not match the HTSAT+RoBERTa layout "
            f"({len(missing)} missing, {len(unexpected)} unexpected keys, e.g. {bad})"
        )
    model.load_state_dict(sd, strict=False)
    return model


def _tokenizer_folder(checkpoint: Path) -> Path:
    for name in TOKENIZER_DIRS:
        folder = checkpoint.parent / name
        if (folder / "tokenizer.json").is_file() or (folder / "vocab.json").is_file():
            return folder
    raise MissingModelError(
        "RoBERTa tokenizer for LAION-CLAP",
        checkpoint.parent / TOKENIZER_DIRS[0],
        "put roberta-base's vocab.json + merges.txt (or tokenizer.json) in that folder",
    )


def load_clap(path: str | Path):
    """Load (ClapModel, tokenizer, ClapFeatureExtractor) from a transformers folder or the original .pt."""
    from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

    path = Path(path).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        weights = [
            path / n
            for n in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
        ]
        if not any(w.is_file() for w in weights):
            raise MissingModelError("LAION-CLAP weights", path / "model.safetensors", HINT)
        if not any((path / n).is_file() for n in ("tokenizer.json", "vocab.json")):
            raise MissingModelError("LAION-CLAP tokenizer", path / "tokenizer.json", HINT)
        model = ClapModel.from_pretrained(str(path))
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        if (path / "preprocessor_config.json").is_file():
            extractor = ClapFeatureExtractor.from_pretrained(str(path))
        else:
            extractor = ClapFeatureExtractor(**CLAP_FEATURE_EXTRACTOR)
        return model, tokenizer, extractor
    checkpoint = path / ORIGINAL_CHECKPOINT if path.is_dir() else path
    if not checkpoint.is_file():
        raise MissingModelError(
            "LAION-CLAP checkpoint", checkpoint if path.suffix else path / ORIGINAL_CHECKPOINT, HINT
        )
    folder = _tokenizer_folder(checkpoint)
    model = _load_original(checkpoint)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:  # noqa: BLE001 - transformers raises ValueError/OSError for broken tokenizer folders
        raise FsclapError(
            f"cannot load the RoBERTa tokenizer in {folder}: {str(exc).splitlines()[0]}"
        ) from None
    log.info("converted original LAION-CLAP checkpoint %s on load", checkpoint)
    return model, tokenizer, ClapFeatureExtractor(**CLAP_FEATURE_EXTRACTOR)


class ClapPreprocessor(AudioPreprocessor):
    """Waveform at 48 kHz -> the (1, 1001, 64) log-mel input of HTSAT (clips shorter than 10 s are
    repeat-padded, as in LAION-CLAP). Cropping to ``max_seconds`` happens before, in the dataset."""

    def __init__(self, extractor):
        self.extractor = extractor
        self.sample_rate = int(extractor.sampling_rate)
        self.max_seconds = float(extractor.max_length_s)

    def __call__(self, wave: np.ndarray) -> dict[str, Tensor]:
        max_len = int(self.max_seconds * self.sample_rate)
        wave = np.asarray(wave, dtype=np.float32)[
            :max_len
        ]  # longer input is cropped upstream; never random here
        if wave.size == 0:
            wave = np.zeros(1, np.float32)
        out = self.extractor(wave, sampling_rate=self.sample_rate, return_tensors="pt")
        return {"input_features": out["input_features"][0]}

    def collate(self, items: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        return {"input_features": torch.stack([it["input_features"] for it in items])}


class LaionClapBackbone(Backbone):
    name = "laion-clap"

    def __init__(self, clap, tokenizer, extractor, text_max_length: int = 77):
        super().__init__()
        self.clap = clap
        self.tokenizer = tokenizer
        self.extractor = extractor
        self.audio_preprocessor = ClapPreprocessor(extractor)
        self.text_preprocessor = TextPreprocessor(tokenizer, text_max_length)
        self.audio_dim = int(clap.config.audio_config.hidden_size)
        self.text_dim = int(clap.config.text_config.hidden_size)
        self.pooled_dim = int(clap.config.projection_dim)

    @classmethod
    def build(
        cls, path: str | Path | None = None, text_max_length: int = 77, assets: Path | None = None
    ) -> LaionClapBackbone:
        from transformers import AutoTokenizer, ClapConfig, ClapFeatureExtractor, ClapModel

        if assets is not None:
            clap = ClapModel(ClapConfig.from_pretrained(str(assets / "clap")))
            tokenizer = AutoTokenizer.from_pretrained(str(assets / "clap"))
            extractor = ClapFeatureExtractor.from_pretrained(str(assets / "clap"))
            return cls(clap, tokenizer, extractor, text_max_length)
        if path is None:
            raise FsclapError("laion-clap backbone needs a model path (model_paths.laion_clap)")
        return cls(*load_clap(path), text_max_length=text_max_length)

    def train(self, mode: bool = True):
        super().train(mode)
        self.clap.audio_model.audio_encoder.batch_norm.eval()  # batch statistics would couple the items
        return self

    def encode_audio(self, batch: dict[str, Tensor]) -> TokenFeatures:
        out = self.clap.audio_model(input_features=batch["input_features"])
        hidden = out.last_hidden_state  # (B, C, 2, 32): HTSAT's final token grid
        tokens = hidden.flatten(2).transpose(1, 2)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return TokenFeatures(tokens, mask, self.clap.audio_projection(out.pooler_output))

    def encode_text(self, batch: dict[str, Tensor]) -> TokenFeatures:
        mask = batch["attention_mask"]
        out = self.clap.text_model(input_ids=batch["input_ids"], attention_mask=mask)
        return TokenFeatures(
            out.last_hidden_state, mask.bool(), self.clap.text_projection(out.pooler_output)
        )

    def audio_encoder_module(self) -> nn.Module:
        return nn.ModuleList([self.clap.audio_model, self.clap.audio_projection])

    def text_encoder_module(self) -> nn.Module:
        return nn.ModuleList([self.clap.text_model, self.clap.text_projection])

    def save_assets(self, folder: Path) -> None:
        folder = Path(folder) / "clap"
        folder.mkdir(parents=True, exist_ok=True)
        self.clap.config.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        self.extractor.save_pretrained(str(folder))

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "model": "LAION-CLAP HTSAT-tiny + RoBERTa (transformers ClapModel)",
        }


def laion_clap_smoke_test(path: Path, settings: Settings, device: str) -> str:
    """Build the backbone from ``path`` as training does; encode 1 s of near-silence and a caption."""
    backbone = LaionClapBackbone.build(path).to(device).eval()
    with torch.no_grad():
        audio_in = backbone.audio_preprocessor.collate(
            [backbone.audio_preprocessor(near_silence(1.0, backbone.sample_rate))]
        )
        audio = backbone.encode_audio({k: v.to(device) for k, v in audio_in.items()})
        text_in = backbone.text_preprocessor(["a woman speaking slowly with a low voice"])
        text = backbone.encode_text({k: v.to(device) for k, v in text_in.items()})
    check_finite(audio.tokens, "CLAP audio features")
    check_finite(text.tokens, "CLAP text features")
    return f"audio {tuple(audio.tokens.shape[1:])} / text {tuple(text.tokens.shape[1:])} token features"


def _clap_files(path: Path, settings: Settings) -> dict[str, Path]:
    return clap_files(path)


declare_loader(
    ModelLoader(
        "laion_clap",
        files=_clap_files,
        smoke_test=laion_clap_smoke_test,
        # model_paths.laion_clap naming the checkpoint file: its tokenizer and overrides beside it
        companions=(*TOKENIZER_DIRS, CLAP_CONFIG),
    )
)
