import subprocess

import numpy as np
import pytest
import soundfile as sf

from fsclap.audio import AudioError, audio_duration, load_audio, load_bounded, write_audio


def test_wav_segment_and_resample(tmp_path):
    sr = 16000
    t = np.arange(sr) / sr
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = write_audio(tmp_path / "tone.wav", tone, sr)
    audio, out_sr = load_audio(path, start_s=0.25, end_s=0.75)
    assert out_sr == sr and audio.shape == (8000,)
    np.testing.assert_allclose(audio, tone[4000:12000], atol=1e-4)
    audio24, sr24 = load_audio(path, sample_rate=24000)
    assert sr24 == 24000 and abs(len(audio24) - 24000) <= 1
    assert audio_duration(path) == pytest.approx(1.0)


def test_stereo_kept_when_asked(tmp_path):
    data = np.stack([np.ones(100), -np.ones(100)]).astype(np.float32) * 0.5
    path = write_audio(tmp_path / "st.flac", data, 8000)
    both, _ = load_audio(path, mono=False)
    assert both.shape == (2, 100)
    mono, _ = load_audio(path)
    np.testing.assert_allclose(mono, 0.0, atol=1e-4)


def test_mp4_through_ffmpeg(tmp_path):
    src = tmp_path / "s.wav"
    sf.write(src, (0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32), 16000)
    mp4 = tmp_path / "v.m4a"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(src), "-c:a", "aac", str(mp4)], check=True
    )
    audio, sr = load_audio(mp4, sample_rate=16000)
    assert sr == 16000 and abs(len(audio) - 16000) < 2048
    assert audio_duration(mp4) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize(
    "content, fragment", [(None, "not found"), (b"", "0 bytes"), (b"garbage" * 10, "cannot")]
)
def test_bad_files_give_one_line_errors(tmp_path, content, fragment):
    for suffix in (".wav", ".mp4"):
        path = tmp_path / f"bad{suffix}"
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(AudioError, match=fragment) as exc:
            load_audio(path)
        assert "\n" not in str(exc.value)


def test_write_is_atomic(tmp_path):
    target = tmp_path / "x.wav"
    write_audio(target, np.zeros(10, dtype=np.float32), 8000)
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_untrusted_input_is_decoded_at_most_max_s_at_the_target_rate(tmp_path):
    # a high-rate stereo file: what an upload costs is bounded by max_s x the model's rate
    rate, seconds = 192000, 12.0
    t = np.arange(int(rate * seconds)) / rate
    stereo = np.stack([0.1 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1).astype(np.float32)
    sf.write(tmp_path / "big.flac", stereo, rate)
    short = load_bounded(tmp_path / "big.flac", 16000, max_s=5.0)
    assert short.ndim == 1 and abs(len(short) - 5 * 16000) <= 16
    whole = load_bounded(tmp_path / "big.flac", 16000, max_s=600.0)
    assert abs(len(whole) - seconds * 16000) <= 16 and whole.dtype == np.float32
    with pytest.raises(AudioError):
        (tmp_path / "bad.flac").write_bytes(b"fLaC not really")
        load_bounded(tmp_path / "bad.flac", 16000, max_s=5.0)
