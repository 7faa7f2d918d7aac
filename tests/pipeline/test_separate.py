"""Stage separate: chunked cross-faded processing, Demucs (tiny random HTDemucs through the real
loader and apply_model), the offline alternatives, and missing weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fsclap.audio import audio_stats
from fsclap.errors import FsclapError, MissingModelError
from fsclap.io import sha256_file
from pipeline.separate import (
    Separate,
    SeparationFailed,
    chunk_count,
    demucs_weight_files,
    separate_in_chunks,
)
from pipeline.stage import StageContext
from pipeline.tables import Episode


def write_wav(
    path: Path, seconds: float, rate: int, channels: int, seed: int = 0, subtype: str = "PCM_16"
) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    voice = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 1.5 * t) > 0)
    music = 0.1 * np.sin(2 * np.pi * 330 * t) + 0.02 * rng.standard_normal(len(t))
    mono = (voice + music).astype(np.float32)
    data = np.stack([mono, 0.9 * mono], axis=1) if channels == 2 else mono
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def extracted(
    root: Path, seconds: float, rate: int, channels: int, name: str = "d-0001"
) -> tuple[Episode, StageContext]:
    context = StageContext(data_root=root)
    path = write_wav(root / "audio" / "d" / f"{name}.wav", seconds, rate, channels)
    stats = audio_stats(path)
    ep = Episode(
        episode_id=name,
        drama_id="d",
        source_url="u",
        source_key="u",
        audio_path=context.rel(path),
        audio_sha256=sha256_file(path),
        sample_rate=rate,
        channels=channels,
        duration_s=seconds,
        mono_mean=stats["mono_mean"],
        mono_std=stats["mono_std"],
    )
    return ep, context


# --- chunking -------------------------------------------------------------------------------


def test_chunk_count():
    assert chunk_count(100, 100, 10) == 1
    assert chunk_count(101, 100, 10) == 2
    assert chunk_count(190, 100, 10) == 2
    assert chunk_count(191, 100, 10) == 3


@pytest.mark.parametrize("seconds, channels", [(2.0, 1), (10.3, 2), (11.0, 1)])
def test_chunked_identity_reconstructs_the_input(tmp_path, seconds, channels):
    source = write_wav(tmp_path / "in.wav", seconds, 8000, channels, subtype="FLOAT")
    written = separate_in_chunks(
        source,
        {"out": tmp_path / "out.wav"},
        lambda block: {"out": block.copy()},
        chunk_s=3.0,
        overlap_s=0.5,
        subtype="FLOAT",
    )
    original, _ = sf.read(str(source), dtype="float32")
    result, rate = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    assert rate == 8000 and written["out"] == len(original)
    np.testing.assert_allclose(result, original, atol=1e-6)


def test_overlaps_are_cross_faded_linearly(tmp_path):
    source = write_wav(tmp_path / "in.wav", 10.0, 1000, 1, subtype="FLOAT")
    counter = iter(range(100))

    def constant_per_chunk(block):
        return {"out": np.full_like(block, float(next(counter)) / 10)}

    separate_in_chunks(
        source,
        {"out": tmp_path / "out.wav"},
        constant_per_chunk,
        chunk_s=4.0,
        overlap_s=1.0,
        subtype="FLOAT",
    )
    out, _ = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    # chunk 0: [0, 4000), chunk 1: [3000, 7000), chunk 2: [6000, 10000); overlaps ramp 0 -> 0.1 -> 0.2
    assert (
        np.allclose(out[:3000], 0.0)
        and np.allclose(out[4000:6000], 0.1)
        and np.allclose(out[7000:], 0.2)
    )
    ramp = out[3000:4000]
    assert np.all(np.diff(ramp) > 0) and ramp[0] < 0.001 and ramp[-1] > 0.099
    np.testing.assert_allclose(np.diff(ramp), 0.1 / 1000, rtol=1e-3)


def test_temporaries_of_a_killed_run_are_cleared(tmp_path):
    source = write_wav(tmp_path / "in.wav", 1.0, 8000, 1)
    stale = (
        tmp_path / ".out.flac.k1ll3d.tmp.flac"
    )  # what atomic_path leaves when the process is killed
    stale.write_bytes(b"partial")
    separate_in_chunks(source, {"out": tmp_path / "out.flac"}, lambda b: {"out": b}, 10.0, 1.0)
    assert not stale.exists() and (tmp_path / "out.flac").is_file()


def test_separator_returning_wrong_length_fails_cleanly(tmp_path):
    source = write_wav(tmp_path / "in.wav", 2.0, 8000, 1)
    with pytest.raises(SeparationFailed, match="frames"):
        separate_in_chunks(
            source, {"out": tmp_path / "out.flac"}, lambda b: {"out": b[:, :-1]}, 10.0, 1.0
        )
    assert not (tmp_path / "out.flac").exists()


# --- Demucs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_segment_repo(tmp_path_factory) -> Path:
    """A tiny HTDemucs with 1-s segments, so that chunks of a few seconds hold several segments
    (as 60-s chunks do for the released model's 7.8-s segments)."""
    from fsclap.testing.tiny_models import write_htdemucs_repo

    return write_htdemucs_repo(tmp_path_factory.mktemp("demucs_1s"), segment=1.0)


def demucs_stage(context: StageContext, repo: Path, **config) -> Separate:
    return Separate({"method": "demucs", **config}, context=context, model_path=repo)


def test_demucs_separates_through_the_real_loader(tmp_path, short_segment_repo):
    ep, context = extracted(tmp_path, 3.0, 44100, 2)
    stage = demucs_stage(
        context, short_segment_repo, chunk_s=2.0, overlap_s=0.5, keep_accompaniment=True
    )
    stage.check()
    done = stage.run(ep)
    assert done.separation == "htdemucs"
    assert done.separation_model.startswith("htdemucs:tiny0000-")
    assert len(list((tmp_path / "vocals" / "d").iterdir())) == 1, "no temporary files left behind"
    vocals, rate = sf.read(str(context.abs(done.vocals_path)), dtype="float32")
    rest, _ = sf.read(str(context.abs(done.accompaniment_path)), dtype="float32")
    assert (
        done.vocals_path == "vocals/d/d-0001.flac"
        and done.accompaniment_path == "accompaniment/d/d-0001.flac"
    )
    assert rate == 44100 and vocals.shape == rest.shape == (int(3.0 * 44100), 2)
    assert np.isfinite(vocals).all() and np.abs(vocals).max() > 0
    assert done.vocals_sha256 == sha256_file(context.abs(done.vocals_path))
    assert stage.is_done(done)
    again = demucs_stage(
        context, short_segment_repo, chunk_s=2.0, overlap_s=0.5, keep_accompaniment=True
    ).run(ep)
    assert again.vocals_sha256 == done.vocals_sha256, "shifts=0 is deterministic"


def test_chunked_demucs_matches_one_pass(tmp_path, short_segment_repo):
    ep, context = extracted(tmp_path, 4.5, 44100, 2)
    chunked = demucs_stage(
        context, short_segment_repo, chunk_s=3.0, overlap_s=1.0, format="wav"
    ).run(ep)
    a, _ = sf.read(str(context.abs(chunked.vocals_path)), dtype="float32")
    one_pass = demucs_stage(
        StageContext(data_root=tmp_path / "one"), short_segment_repo, chunk_s=60.0, format="wav"
    )
    ep_one = ep.copy()
    ep_one.audio_path = str(context.abs(ep.audio_path))
    b, _ = sf.read(str(one_pass.context.abs(one_pass.run(ep_one).vocals_path)), dtype="float32")
    assert a.shape == b.shape
    # chunks start on Demucs' segment grid (stride 0.75 s here: chunk 3 s, hop 1.5 s), so away
    # from the cross-faded chunk edges the result is the one-pass result exactly
    np.testing.assert_array_equal(a[: int(1.5 * 44100)], b[: int(1.5 * 44100)])
    snr = 10 * np.log10(np.sum(b**2) / np.sum((a - b) ** 2))
    assert snr > 25, f"chunked vs one-pass agreement only {snr:.1f} dB"


def test_key_depends_on_the_weights(tmp_path, tiny_htdemucs_repo):
    from fsclap.testing.tiny_models import write_htdemucs_repo

    ep, context = extracted(tmp_path, 1.0, 44100, 2)
    other = write_htdemucs_repo(tmp_path / "other_repo", seed=1)
    assert demucs_stage(context, tiny_htdemucs_repo).key(ep) != demucs_stage(context, other).key(ep)
    # the repo location itself is operational: a copy of the same weights keeps finished work
    copy = shutil.copytree(tiny_htdemucs_repo, tmp_path / "copy_repo")
    assert demucs_stage(context, tiny_htdemucs_repo).key(ep) == demucs_stage(context, copy).key(ep)


def test_missing_weights_name_the_file_and_how_to_get_it(tmp_path, tiny_htdemucs_repo):
    context = StageContext(data_root=tmp_path)
    with pytest.raises(
        MissingModelError,
        match=r"Demucs model file htdemucs\.yaml not found at .*nowhere/htdemucs\.yaml",
    ):
        demucs_stage(context, tmp_path / "nowhere").check()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        MissingModelError,
        match=r"htdemucs\.yaml not found .*dl\.fbaipublicfiles\.com.*955717e8-8726e21a\.th",
    ):
        demucs_stage(context, empty).check()
    shutil.copy(
        Path(__import__("demucs").__file__).parent / "remote" / "htdemucs.yaml",
        empty / "htdemucs.yaml",
    )
    with pytest.raises(
        MissingModelError,
        match=r"Demucs weights 955717e8-8726e21a\.th .*not found at .*empty/955717e8-8726e21a\.th",
    ):
        demucs_stage(context, empty).check()
    bag, weights = demucs_weight_files(tiny_htdemucs_repo, "htdemucs")
    assert bag.name == "htdemucs.yaml" and weights[0].name.startswith("tiny0000-")


def test_corrupt_weights_are_a_clear_error(tmp_path, tiny_htdemucs_repo):
    repo = shutil.copytree(tiny_htdemucs_repo, tmp_path / "repo")
    weights = next(repo.glob("*.th"))
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    stage = demucs_stage(StageContext(data_root=tmp_path), repo)
    with pytest.raises(FsclapError, match="cannot load Demucs htdemucs .*checksum"):
        stage.setup()


def test_wrong_input_rate_is_refused(tmp_path, tiny_htdemucs_repo):
    ep, context = extracted(tmp_path, 1.0, 16000, 1)
    with pytest.raises(SeparationFailed, match="needs 44100 Hz / 2 ch"):
        demucs_stage(context, tiny_htdemucs_repo).run(ep)


# --- offline alternatives -------------------------------------------------------------------


def test_none_passes_the_audio_through_and_says_so(tmp_path):
    ep, context = extracted(tmp_path, 1.0, 16000, 1)
    stage = Separate({"method": "none"}, context=context)
    assert stage.input_format == (16000, 1)
    done = stage.run(ep)
    assert (done.separation, done.vocals_path, done.vocals_sha256) == (
        "none",
        ep.audio_path,
        ep.audio_sha256,
    )
    assert not (tmp_path / "vocals").exists()


def test_repet_writes_a_vocal_track(tmp_path):
    ep, context = extracted(tmp_path, 8.0, 16000, 1)
    done = Separate({"method": "repet", "chunk_s": 6.0, "overlap_s": 1.0}, context=context).run(ep)
    assert done.separation == "repet"
    vocals, rate = sf.read(str(context.abs(done.vocals_path)), dtype="float32")
    assert rate == 16000 and vocals.shape == (8 * 16000,) and np.isfinite(vocals).all()
    assert 0 < np.abs(vocals).max() <= 1.0


def test_overlap_must_fit_the_chunk(tmp_path, short_segment_repo):
    with pytest.raises(FsclapError, match="overlap_s"):
        Separate({"chunk_s": 10, "overlap_s": 6}, context=StageContext(data_root=tmp_path))
    ep, context = extracted(tmp_path, 2.0, 44100, 2)
    with pytest.raises(FsclapError, match="segment stride"):  # hop 0.5 s < stride 0.75 s
        demucs_stage(context, short_segment_repo, chunk_s=1.0, overlap_s=0.5).setup()
