"""Stage extract: ffmpeg to PCM WAV at the separation rate; silence and truncation are caught."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from fsclap.testing.media import make_episode_mp4, truncate_file
from pipeline.acquire import Acquire
from pipeline.extract import Extract, NoAudioSignal, TruncatedMedia
from pipeline.sources import episode_id_for
from pipeline.stage import StageContext
from pipeline.tables import Episode


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("media")
    make_episode_mp4(root / "tone.mp4", seconds=3, seed=3)
    make_episode_mp4(root / "silent.mp4", seconds=3, audio="silence")
    make_episode_mp4(root / "long.mp4", seconds=20, seed=4, faststart=True)
    truncate_file(
        root / "long.mp4", root / "cut.mp4", 0.4
    )  # moov first: probes fine, audio stops early
    return root


def acquired(tmp_path: Path, source: Path) -> tuple[Episode, StageContext]:
    context = StageContext(data_root=tmp_path / "data")
    key = f"file:{source}"
    ep = Episode(
        episode_id=episode_id_for("d", key),
        drama_id="d",
        source_url=str(source),
        source_key=key,
        source_kind="file",
    )
    return Acquire({}, context=context).run(ep), context


@pytest.mark.parametrize("rate, channels", [(44100, 2), (16000, 1)])
def test_extracts_pcm_wav_at_the_requested_rate(tmp_path, media, rate, channels):
    ep, context = acquired(tmp_path, media / "tone.mp4")
    done = Extract({"sample_rate": rate, "channels": channels}, context=context).run(ep)
    path = context.abs(done.audio_path)
    assert done.audio_path == f"audio/d/{ep.episode_id}.wav"
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype) == (rate, channels, "PCM_16")
    assert (done.sample_rate, done.channels) == (rate, channels)
    assert done.duration_s == pytest.approx(3.0, abs=0.05)
    assert -30 < done.rms_dbfs < done.peak_dbfs < 0
    assert done.mono_std > 0.01
    from fsclap.io import sha256_file

    assert done.audio_sha256 == sha256_file(path)
    assert not list(path.parent.glob(".*.tmp*")), "no temporary files left behind"


def test_same_input_and_config_give_the_same_bytes(tmp_path, media):
    ep, context = acquired(tmp_path, media / "tone.mp4")
    stage = Extract({"sample_rate": 16000, "channels": 1}, context=context)
    assert stage.run(ep).audio_sha256 == stage.run(ep).audio_sha256


def test_silent_episode_is_flagged(tmp_path, media):
    ep, context = acquired(tmp_path, media / "silent.mp4")
    with pytest.raises(NoAudioSignal, match="no audio signal"):
        Extract({"sample_rate": 16000, "channels": 1}, context=context).run(ep)
    assert not (tmp_path / "data" / "audio" / "d" / f"{ep.episode_id}.wav").exists()


def test_truncated_faststart_mp4_is_caught_after_decoding(tmp_path, media):
    ep, context = acquired(tmp_path, media / "cut.mp4")
    assert ep.media_duration_s == pytest.approx(20, abs=0.5)  # the container still claims 20 s
    with pytest.raises(TruncatedMedia, match=r"decoded \d+\.\d s of the 20\.\d s"):
        Extract({"sample_rate": 16000, "channels": 1}, context=context).run(ep)


def test_unresolved_format_is_refused(tmp_path):
    from fsclap.errors import FsclapError

    with pytest.raises(FsclapError, match="sample_rate and channels"):
        Extract({}, context=StageContext(data_root=tmp_path)).check()
