"""The offline backbone's front end: log-mel frames plus measured prosody channels."""

import numpy as np
import pytest

from model.backbones.offline import LogMelPreprocessor

SR = 16000


def harmonic(f0: float, seconds: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (level * sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 6))).astype(np.float32)


def test_prosody_channels_follow_f0_and_voicing():
    pre = LogMelPreprocessor(prosody=True)
    wave = np.concatenate(
        [harmonic(110.0, 1.0), np.zeros(SR // 2, np.float32), harmonic(300.0, 1.0)]
    )
    mel = pre(wave)["mel"]
    assert mel.shape[1] == pre.channels == 82
    octaves, voiced = mel[:, 80].numpy(), mel[:, 81].numpy()
    frames = mel.shape[0]
    first, gap, last = (
        slice(10, 80),
        slice(int(frames * 0.45), int(frames * 0.55)),
        slice(frames - 80, frames - 10),
    )
    assert voiced[first].mean() > 0.9 and voiced[last].mean() > 0.9 and voiced[gap].max() == 0.0
    assert np.median(octaves[first][voiced[first] > 0]) == pytest.approx(
        np.log2(110 / 200), abs=0.03
    )
    assert np.median(octaves[last][voiced[last] > 0]) == pytest.approx(np.log2(300 / 200), abs=0.03)
    assert (octaves[voiced == 0] == 0).all()


def test_without_prosody_only_mels_and_loudness_is_kept():
    pre = LogMelPreprocessor()
    quiet, loud = pre(harmonic(150.0, 1.0, 0.01))["mel"], pre(harmonic(150.0, 1.0, 0.3))["mel"]
    assert quiet.shape[1] == pre.channels == 80
    # no per-clip normalisation: 30 dB more level is +3 in log10 power, i.e. +1.2 in the scaled features
    assert float(loud.max() - quiet.max()) == pytest.approx(1.2, abs=0.05)


def test_prosody_on_silence_and_very_short_input():
    pre = LogMelPreprocessor(prosody=True)
    silent = pre(np.zeros(SR, np.float32))["mel"]
    assert (silent[:, 80:] == 0).all()
    tiny = pre(np.zeros(100, np.float32))["mel"]
    assert tiny.shape[1] == 82 and tiny.shape[0] >= 1


def test_normalised_mels_drop_the_long_term_spectrum_and_keep_loudness_as_a_channel():
    pre = LogMelPreprocessor(normalise=True, prosody=True)
    assert pre.channels == 83
    quiet, loud = pre(harmonic(150.0, 1.0, 0.01))["mel"], pre(harmonic(150.0, 1.0, 0.3))["mel"]
    # each band is centred over the clip, so a level change leaves the mel channels alone ...
    assert np.abs(quiet[:, :80].mean(dim=0).numpy()).max() < 1e-5
    voiced_bands = slice(0, 20)  # below 1 kHz: the quiet clip's upper bands sit at the log floor
    assert np.allclose(quiet[:, voiced_bands].numpy(), loud[:, voiced_bands].numpy(), atol=1e-3)
    # ... and shows in the loudness channel: 30 dB = +1.2 on the mel scale; F0 and voicing follow it
    assert float(loud[:, 80].mean() - quiet[:, 80].mean()) == pytest.approx(1.2, abs=0.05)
    assert np.median(loud[:, 81].numpy()) == pytest.approx(np.log2(150 / 200), abs=0.03)


def test_normalising_without_the_f0_channel_is_refused():
    from fsclap.errors import FsclapError

    with pytest.raises(FsclapError, match="normalise=true needs model.audio.prosody=true"):
        LogMelPreprocessor(normalise=True, prosody=False)
