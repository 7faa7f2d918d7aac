"""Paper-profile diarizer: FunASR ``AutoModel`` with Paraformer-large + fsmn-vad + ct-punc + CAM++.

Models load only from local directories (``Settings.model_path("paraformer" | "fsmn_vad" |
"ct_punc" | "campplus")``), each as released on ModelScope: ``configuration.json`` (optional; it
names the files) + ``config.yaml`` + the weights (``model.pt``; CAM++ ships
``campplus_cn_common.bin``) + ``tokens.json`` (Paraformer, ct-punc) + ``am.mvn`` (Paraformer,
fsmn-vad). Every file FunASR would read is checked first and a missing one raises
:class:`~fsclap.errors.MissingModelError` naming it, so FunASR never falls back to a hub download.
After loading, the checkpoint's keys and shapes are compared with the model the config builds,
because FunASR itself only prints a warning for missing keys and would run random weights.

Sample rates. The paper downsamples the vocals to 24 kHz before diarization; the corpus builder
does that (the 24 kHz track is what clips are cut from). FunASR's front ends for all four models
compute features at 16 kHz (``WavFrontend(fs=16000)``, CAM++'s ``extract_feature`` and ``sv_chunk``
assume 16 kHz). When given an array, FunASR takes its rate from ``fs`` — but
``AutoModel.inference_with_vad`` forwards that same ``fs`` to the ASR and speaker models after it
has already resampled the audio to 16 kHz, which would resample the VAD chunks a second time.
So the 24 kHz track is resampled to 16 kHz here (soxr) and passed with the default ``fs=16000``;
that is the only rate at which every FunASR stage sees correctly-timed audio.
"""

from __future__ import annotations

import json
import logging
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fsclap.config import Settings
from fsclap.errors import FsclapError, MissingModelError
from fsclap.io import UnsafeFile, load_tensors
from fsclap.model_store.loaders import ModelLoader, check_finite, declare_loader, near_silence
from pipeline.diarize import MODEL_SAMPLE_RATE
from pipeline.segments import Segment, SegmentationConfig, merge_short
from pipeline.speakers import CampplusEmbedder

FUNASR_MODELS = {
    "paraformer": (
        "Paraformer-large ASR model (speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch)",
        "paraformer-zh",
    ),
    "fsmn_vad": ("fsmn-vad model (speech_fsmn_vad_zh-cn-16k-common-pytorch)", "fsmn-vad"),
    "ct_punc": ("ct-punc model (punc_ct-transformer_cn-en-common-vocab471067-large)", "ct-punc"),
    "campplus": ("CAM++ speaker model (speech_campplus_sv_zh-cn_16k-common)", "cam++"),
}
_HINT = (
    "download the ModelScope model dir (configuration.json, config.yaml, weights, tokens/cmvn) and put it "
    "there, or set model_paths.{key} / FSCLAP_MODEL_PATHS__{KEY}"
)


class FunasrDiarizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size_s: int = Field(
        300, ge=1, description="FunASR dynamic batch: seconds of audio per ASR batch."
    )
    num_speakers: int | None = Field(
        None, ge=1, description="Known number of speakers (FunASR preset_spk_num); None: estimated."
    )
    spk_mode: str = Field(
        "punc_segment", description="FunASR spk_mode: punc_segment (sentences) or vad_segment."
    )
    hotword: str | None = Field(
        None, description="SeACo-Paraformer hotwords (space separated), e.g. character names."
    )


def file_path_metas(model_dir: Path) -> dict:
    """``file_path_metas`` of a ModelScope model dir's ``configuration.json`` (how FunASR finds the
    config, weights, tokens and cmvn files); empty when the dir has no configuration.json."""
    configuration = Path(model_dir) / "configuration.json"
    if not configuration.is_file():
        return {}
    try:
        return (
            json.loads(configuration.read_text(encoding="utf-8")).get("file_path_metas", {}) or {}
        )
    except json.JSONDecodeError as exc:
        raise FsclapError(f"{configuration} is not valid JSON: {exc.msg}") from None


def required_files(model_dir: Path) -> dict[str, Path]:
    """The files FunASR reads from a local model dir, resolved as ``download_from_ms`` does:
    ``configuration.json``'s ``file_path_metas`` when present, else ``config.yaml`` + ``model.pt``
    + ``tokens.json``/``tokens.txt`` (if the config has a tokenizer) + ``am.mvn`` (if it has a frontend)."""
    import yaml

    files: dict[str, Path] = {}
    metas = file_path_metas(model_dir)
    files["config"] = model_dir / metas.get("config", "config.yaml")
    files["weights"] = model_dir / metas.get("init_param", "model.pt")
    config: dict = {}
    if files["config"].is_file():
        try:
            config = yaml.safe_load(files["config"].read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise FsclapError(
                f"{files['config']} is not valid YAML: {str(exc).splitlines()[0]}"
            ) from None
    if config.get("tokenizer"):
        token_meta = (metas.get("tokenizer_conf") or {}).get("token_list")
        if token_meta:
            files["tokens"] = model_dir / token_meta
        else:
            files["tokens"] = next(
                (model_dir / n for n in ("tokens.json", "tokens.txt") if (model_dir / n).is_file()),
                model_dir / "tokens.json",
            )
    if config.get("frontend") in ("WavFrontend", "WavFrontendOnline"):
        files["cmvn"] = model_dir / (
            (metas.get("frontend_conf") or {}).get("cmvn_file") or "am.mvn"
        )
    return files


def check_model_dir(key: str, model_dir: Path) -> Path:
    what, _ = FUNASR_MODELS[key]
    hint = _HINT.format(key=key, KEY=key.upper())
    if not model_dir.is_dir():
        raise MissingModelError(f"{what} directory", model_dir, hint)
    for role, path in required_files(model_dir).items():
        if not path.is_file():
            raise MissingModelError(f"{what}: {path.name} ({role})", path, hint)
    return model_dir


def funasr_model_dirs(settings) -> dict[str, Path]:
    """The four local model dirs of the paper profile, checked."""
    return {
        key: check_model_dir(key, settings.model_path(key).expanduser().resolve())
        for key in FUNASR_MODELS
    }


def plain_weights(weights: Path, what: str) -> dict:
    """The tensors of a weights file, read without unpickling code: a model file from elsewhere
    must not run anything when read (checked before FunASR reads it)."""
    try:
        return load_tensors(weights, mmap=True)
    except UnsafeFile as exc:
        raise FsclapError(
            f"{what}: {weights} is not a plain weights file (refused to unpickle it: {exc})"
        ) from None


def verify_checkpoint(model, state: dict, weights: Path, what: str) -> None:
    """Fail when the weights (``state``, read from ``weights`` by :func:`plain_weights`) do not
    fill the model the config builds (FunASR only warns)."""
    for wrapper in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    wrong = [
        k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or wrong:
        first = (missing or wrong)[0]
        raise FsclapError(
            f"{what}: {weights} does not match its config.yaml ({len(missing)} missing and "
            f"{len(wrong)} mis-shaped tensors, e.g. {first})"
        )


@contextmanager
def quiet_funasr():
    """FunASR logs every load step at INFO on the root logger; keep the project's output readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def load_funasr_model(key: str, model_dir: Path, device: str = "cpu"):
    """One of the four models alone (``funasr.AutoModel(model=dir)``), checked like
    :func:`load_automodel` checks it: every file present, the weights fill the model."""
    import torch
    from funasr import AutoModel

    model_dir = check_model_dir(key, Path(model_dir).expanduser().resolve())
    weights, what = required_files(model_dir)["weights"], FUNASR_MODELS[key][0]
    state = plain_weights(weights, what)  # before FunASR reads the file
    with quiet_funasr():
        model = AutoModel(
            model=str(model_dir),
            disable_update=True,
            disable_pbar=True,
            disable_log=True,
            log_level="ERROR",
            device=device,
            ncpu=torch.get_num_threads(),
        )
    verify_checkpoint(model.model, state, weights, what)
    return model


def funasr_smoke_test(key: str, model_dir: Path, device: str = "cpu") -> str:
    """Load one of the four models as :func:`load_funasr_model` does and run it once: 1 s of
    near-silence (ct-punc, a text model, punctuates a short sentence)."""
    model = load_funasr_model(key, Path(model_dir), device)
    with quiet_funasr():
        if key == "ct_punc":
            result = model.generate(input="今天天气很好我们出去走走吧", disable_pbar=True)
            return f"punctuated: {result[0].get('text', '')[:24]!r}"
        result = model.generate(input=near_silence(1.0, MODEL_SAMPLE_RATE), disable_pbar=True)
    if key == "campplus":
        embedding = result[0]["spk_embedding"]
        check_finite(embedding, "CAM++ embedding")
        return f"{embedding.shape[-1]}-d speaker embedding"
    if key == "fsmn_vad":
        return f"{len(result[0].get('value') or [])} speech region(s) on silence"
    return f"transcript on silence: {str(result[0].get('text', ''))[:24]!r}"


def _funasr_loader(key: str) -> ModelLoader:
    def files(model_dir: Path, settings: Settings) -> dict[str, Path]:
        return required_files(model_dir)

    def smoke_test(model_dir: Path, settings: Settings, device: str) -> str:
        return funasr_smoke_test(key, model_dir, device)

    return ModelLoader(key, files=files, smoke_test=smoke_test)


for _key in FUNASR_MODELS:
    declare_loader(_funasr_loader(_key))


def load_automodel(settings, device: str = "cpu"):
    """``funasr.AutoModel`` from the four local dirs (checked first; hub ids are never passed)."""
    import torch
    from funasr import AutoModel

    dirs = funasr_model_dirs(settings)
    weights = {key: required_files(folder)["weights"] for key, folder in dirs.items()}
    # read before FunASR reads them, and once: the same tensors check the built models below
    states = {key: plain_weights(path, FUNASR_MODELS[key][0]) for key, path in weights.items()}
    with quiet_funasr():
        model = AutoModel(
            model=str(dirs["paraformer"]),
            vad_model=str(dirs["fsmn_vad"]),
            punc_model=str(dirs["ct_punc"]),
            spk_model=str(dirs["campplus"]),
            disable_update=True,
            disable_pbar=True,
            disable_log=True,
            log_level="ERROR",
            device=device,
            ncpu=torch.get_num_threads(),
        )
    for key, sub in (
        ("paraformer", model.model),
        ("fsmn_vad", model.vad_model),
        ("ct_punc", model.punc_model),
        ("campplus", model.spk_model),
    ):
        verify_checkpoint(sub, states[key], weights[key], FUNASR_MODELS[key][0])
    return model


class FunasrDiarizer:
    name = "funasr-paraformer-campplus"

    def __init__(
        self,
        settings,
        config: FunasrDiarizerConfig | None = None,
        segmentation: SegmentationConfig | None = None,
        device: str = "cpu",
    ):
        self.config = config or FunasrDiarizerConfig()
        self.segmentation = segmentation or SegmentationConfig()
        self.settings = settings
        self.device = device
        self.dirs = funasr_model_dirs(settings)  # fail fast, before any work
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = load_automodel(self.settings, self.device)
        return self._model

    def embedder(self) -> CampplusEmbedder:
        return CampplusEmbedder(self.model)

    def sentences(self, audio: np.ndarray) -> list[dict]:
        """FunASR's ``sentence_info`` for a 16 kHz track (empty when it hears no speech)."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if len(audio) < MODEL_SAMPLE_RATE // 10:
            return []
        options = {"batch_size_s": self.config.batch_size_s, "disable_pbar": True}
        if self.config.num_speakers:
            options["preset_spk_num"] = self.config.num_speakers
        if self.config.hotword:
            options["hotword"] = self.config.hotword
        model = self.model
        model.kwargs["spk_mode"] = self.config.spk_mode
        model.spk_mode = self.config.spk_mode
        with quiet_funasr():
            results = model.generate(input=audio, **options)
        return [s for r in results for s in (r.get("sentence_info") or [])]

    def diarize(self, audio: np.ndarray) -> list[Segment]:
        seg = self.segmentation
        pieces: list[Segment] = []
        for sentence in self.sentences(audio):
            pieces.extend(split_sentence(sentence, seg.max_s, seg.min_s))
        pieces.sort(key=lambda s: (s.start_s, s.end_s))
        return merge_short(pieces, seg.min_s, seg.max_s, seg.merge_gap_s)


_TOKEN = re.compile(r"[\u3400-\u9fff\uac00-\ud7af\u3040-\u30ff]|[A-Za-z0-9]+(?:'[A-Za-z]+)?")


def split_sentence(sentence: dict, max_s: float, min_s: float) -> list[Segment]:
    """A FunASR sentence as segments: cut at the longest pause between tokens while longer than
    ``max_s``; the text is divided at the same token when tokens and timestamps line up."""
    start, end = sentence["start"] / 1000.0, sentence["end"] / 1000.0
    speaker = f"S{int(sentence.get('spk', 0))}"
    text = str(sentence.get("text", "")).strip() or None
    stamps = [(a / 1000.0, b / 1000.0) for a, b in (sentence.get("timestamp") or [])]
    if end - start <= max_s or len(stamps) < 2:
        return [Segment(start, end, speaker, text)]
    tokens = list(_TOKEN.finditer(text or ""))
    aligned = len(tokens) == len(stamps)
    cuts = [
        (k, (stamps[k - 1][1] + stamps[k][0]) / 2, stamps[k][0] - stamps[k - 1][1])
        for k in range(1, len(stamps))
    ]
    cuts = [c for c in cuts if c[1] - start >= min_s and end - c[1] >= min_s]
    # prefer cuts that leave a first part of at most max_s; among them the longest pause
    fitting = [c for c in cuts if c[1] - start <= max_s] or cuts
    if not fitting:
        return [Segment(start, end, speaker, text)]
    best = max(fitting, key=lambda c: (c[2], -c[0]))[0]
    cut = (stamps[best - 1][1] + stamps[best][0]) / 2
    left_text = right_text = None
    if aligned and text:
        at = tokens[best].start()
        left_text, right_text = text[:at].strip() or None, text[at:].strip() or None
    left = {
        "start": start * 1000,
        "end": cut * 1000,
        "spk": sentence.get("spk", 0),
        "text": left_text or "",
        "timestamp": [[a * 1000, b * 1000] for a, b in stamps[:best]],
    }
    right = {
        "start": cut * 1000,
        "end": end * 1000,
        "spk": sentence.get("spk", 0),
        "text": right_text or "",
        "timestamp": [[a * 1000, b * 1000] for a, b in stamps[best:]],
    }
    return split_sentence(left, max_s, min_s) + split_sentence(right, max_s, min_s)
