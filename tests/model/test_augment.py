"""Label-preserving augmentation: F0, timing and active level survive; timbre changes; seeded; training only."""

import numpy as np
import pandas as pd
import pytest

from fsclap.acoustics import active_frames, active_rms_dbfs, f0_stats, frame_dbfs, trim_bounds
from fsclap.audio import write_audio
from fsclap.errors import FsclapError
from fsclap.manifest import ClipManifest
from model.augment import AugmentConfig, VoiceAugment
from model.backbones.offline import LogMelPreprocessor
from model.data import ClipDataset, training_augment
from model.train_config import load_train_config

SR = 16000
EVERYTHING = AugmentConfig(formant_p=1, eq_p=1, band_limit_p=1, reverb_p=1, noise_p=1)


def vowel_like(f0: float, seconds: float = 2.0, level: float = 0.1, seed: int = 0) -> np.ndarray:
    """Harmonics of a gliding F0 under two formant peaks, in two syllables with silence around them."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(f) / SR
    voice = np.zeros_like(t)
    for h in range(1, int(4000 / f0)):
        fh = h * f0
        amp = (
            np.exp(-0.5 * ((fh - 700) / 150) ** 2)
            + 0.6 * np.exp(-0.5 * ((fh - 1800) / 250) ** 2)
            + 0.05
        )
        voice += amp * np.sin(h * phase + rng.uniform(0, 6))
    envelope = ((t > 0.3) & (t < 0.9)) | ((t > 1.1) & (t < 1.7))
    x = voice * envelope
    return (level * x / np.sqrt(np.mean(x[envelope] ** 2))).astype(np.float32)


def centroid_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / SR)
    return float((spec * freqs).sum() / spec.sum())


def speech_level(y: np.ndarray, x: np.ndarray) -> float:
    """Level of ``y`` over the frames where ``x`` is active (noise in the pauses left out)."""
    mask = active_frames(frame_dbfs(x, SR))
    return float(10 * np.log10(np.mean(10 ** (frame_dbfs(y, SR)[mask] / 10))))


@pytest.mark.parametrize("f0", [95.0, 180.0, 320.0])
def test_every_transform_at_once_keeps_f0_timing_and_level(f0):
    x = vowel_like(f0)
    no_noise = EVERYTHING.model_copy(update={"noise_p": 0.0})
    for seed in range(3):
        y = VoiceAugment(EVERYTHING)(x, SR, np.random.default_rng(seed))
        assert y.shape == x.shape and y.dtype == np.float32
        semitones = 12 * np.log2(f0_stats(y, SR)[0] / f0_stats(x, SR)[0])
        assert abs(semitones) < 0.3, semitones
        assert speech_level(y, x) == pytest.approx(active_rms_dbfs(x, SR), abs=0.3)
        # without noise (which fills the pauses) the active span is measurable; reverb tails join the active
        # frames and pull the plain active level down a little (energy bands are several dB wide)
        y = VoiceAugment(no_noise)(x, SR, np.random.default_rng(seed))
        assert speech_level(y, x) == pytest.approx(active_rms_dbfs(x, SR), abs=0.3)
        assert active_rms_dbfs(y, SR) == pytest.approx(active_rms_dbfs(x, SR), abs=1.5)
        (a0, a1), (b0, b1) = trim_bounds(x, SR), trim_bounds(y, SR)
        assert (
            abs(a0 - b0) <= 0.03 * SR and 0 <= b1 - a1 <= 0.25 * SR
        )  # no shift; at most a short reverb tail


def test_formant_shift_moves_the_envelope_not_the_harmonics():
    x = vowel_like(150.0)
    only_formants = AugmentConfig(
        formant_p=1, eq_p=0, band_limit_p=0, reverb_p=0, noise_p=0, formant_ratio=(1.2, 1.2)
    )
    up = VoiceAugment(only_formants)(x, SR, np.random.default_rng(0))
    down = VoiceAugment(only_formants.model_copy(update={"formant_ratio": (0.84, 0.84)}))(
        x, SR, np.random.default_rng(0)
    )
    assert centroid_hz(up) > 1.1 * centroid_hz(x) and centroid_hz(down) < 0.9 * centroid_hz(x)
    for y in (up, down):
        assert abs(12 * np.log2(f0_stats(y, SR)[0] / f0_stats(x, SR)[0])) < 0.2


def test_deterministic_by_seed_and_different_across_seeds():
    x = vowel_like(200.0)
    aug = VoiceAugment()
    a = aug(x, SR, np.random.default_rng([0, 1, 2]))
    b = aug(x, SR, np.random.default_rng([0, 1, 2]))
    c = aug(x, SR, np.random.default_rng([0, 1, 3]))
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_short_or_silent_audio_passes_through_and_bad_config_is_refused():
    aug = VoiceAugment(EVERYTHING)
    assert np.array_equal(
        aug(np.zeros(4000, np.float32), SR, np.random.default_rng(0)), np.zeros(4000, np.float32)
    )
    short = vowel_like(200.0)[:500]
    assert np.array_equal(aug(short, SR, np.random.default_rng(0)), short)
    with pytest.raises(FsclapError, match="mono"):
        aug(np.zeros((2, 4000)), SR, np.random.default_rng(0))
    with pytest.raises(ValueError, match="snr_db"):
        AugmentConfig(snr_db=(30, 10))
    with pytest.raises(FsclapError, match="augment_params"):
        load_train_config(None, ["augment_params.reverb=1"])


def test_dataset_augments_training_items_only_and_reproducibly(tmp_path):
    paths = []
    for i, f0 in enumerate((110.0, 220.0)):
        paths.append(tmp_path / f"c{i}.wav")
        write_audio(paths[-1], vowel_like(f0, seed=i), SR)
    manifest = ClipManifest.from_frame(
        pd.DataFrame({"audio_path": [str(p) for p in paths], "caption": ["a", "b"]})
    )
    pre = LogMelPreprocessor(n_mels=40, max_seconds=3.0)
    cfg = load_train_config(None, ["augment=true", "seed=5"])
    plain = ClipDataset(manifest, pre)
    train_a = ClipDataset(manifest, pre, seed=cfg.seed, augment=training_augment(cfg))
    train_b = ClipDataset(manifest, pre, seed=cfg.seed, augment=training_augment(cfg))
    assert training_augment(load_train_config(None, ["augment=false"])) is None
    for i in range(2):
        assert not np.allclose(train_a[i]["audio"]["mel"], plain[i]["audio"]["mel"])
        assert np.array_equal(
            train_a[i]["audio"]["mel"], train_b[i]["audio"]["mel"]
        )  # seeded by (seed, epoch, index)
    train_b.set_epoch(1)
    assert not np.allclose(
        train_a[0]["audio"]["mel"], train_b[0]["audio"]["mel"]
    )  # a new draw every epoch


def test_trainer_augments_training_set_only(style_corpus, tmp_path):
    """Evaluation and validation never see augmented audio: only the trainer's training set has it."""
    from model.training import Trainer

    tiny = [
        "model.d_model=32",
        "model.embed_dim=32",
        "model.heads=4",
        "model.audio={dim: 32, blocks: 2, n_mels: 32, max_seconds: 2.0}",
        "freeze_text=true",
        "workers=0",
        "epochs=1",
        "batch_size=8",
        "grad_accum=1",
        "augment=true",
    ]
    train_m, val_m = ClipManifest.read(style_corpus[0]), ClipManifest.read(style_corpus[1])
    trainer = Trainer(load_train_config(None, tiny), train_m, val_m, tmp_path / "run")
    assert isinstance(trainer.train_set.augment, VoiceAugment) and trainer.val_set.augment is None
