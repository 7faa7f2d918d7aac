from pathlib import Path

import pandas as pd
import pytest

from fsclap.manifest import ClipManifest, ManifestError, normalise_caption, read_table


def _write_wav(path: Path):
    import numpy as np
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(1600, dtype="float32"), 16000)


def test_aliases_and_relative_paths(tmp_path):
    _write_wav(tmp_path / "wavs" / "a.wav")
    csv = tmp_path / "m.csv"
    pd.DataFrame(
        {"wav_fp": ["wavs/a.wav"], "style_prompt": ["A calm man."], "gender": ["Male"]}
    ).to_csv(csv, index=False)
    m = ClipManifest.read(csv)
    clip = next(iter(m))
    assert clip.audio_path == tmp_path / "wavs" / "a.wav"
    assert clip.caption == "A calm man."
    assert clip.attributes == {"gender": "male"}
    assert clip.clip_id == "clip0000000"
    assert m.problems().empty


def test_parquet_roundtrip_with_segments(tmp_path):
    _write_wav(tmp_path / "long.wav")
    frame = pd.DataFrame(
        {
            "clip_id": ["x", "y"],
            "audio_path": ["long.wav", "long.wav"],
            "caption": ["a", "b"],
            "start_s": [0.0, 0.05],
            "end_s": [0.05, 0.1],
            "split": ["train", "test"],
        }
    )
    frame.to_parquet(tmp_path / "m.parquet")
    m = ClipManifest.read(tmp_path / "m.parquet")
    clips = list(m)
    assert clips[1].start_s == pytest.approx(0.05) and clips[1].end_s == pytest.approx(0.1)
    assert len(m.split("test")) == 1
    out = m.write(tmp_path / "out.parquet")
    assert len(ClipManifest.read(out)) == 2


def test_problems_lists_missing_files_and_empty_captions(tmp_path):
    _write_wav(tmp_path / "ok.wav")
    frame = pd.DataFrame(
        {"audio_path": ["ok.wav", "gone.wav", "ok.wav"], "caption": ["fine", "x", "  "]}
    )
    problems = ClipManifest.from_frame(frame, base_dir=tmp_path).problems()
    assert sorted(problems["problem"]) == ["audio file not found", "empty caption"]


@pytest.mark.parametrize(
    "frame, fragment",
    [
        (pd.DataFrame({"audio_path": ["a.wav"]}), "lacks column"),
        (pd.DataFrame({"audio_path": [], "caption": []}), "no rows"),
        (
            pd.DataFrame({"audio_path": ["a", "b"], "caption": ["x", "y"], "clip_id": ["1", "1"]}),
            "repeats clip_id",
        ),
        (pd.DataFrame({"audio_path": ["a"], "caption": ["x"], "pitch": ["very high"]}), "outside"),
        (pd.DataFrame({"audio_path": ["a"], "caption": ["x"], "start_s": [-5.0]}), "start_s not"),
        (
            pd.DataFrame({"audio_path": ["a"], "caption": ["x"], "end_s": [float("inf")]}),
            "end_s not",
        ),
        (
            pd.DataFrame({"audio_path": ["a"], "caption": ["x"], "start_s": [2.0], "end_s": [1.0]}),
            "end_s not after start_s",
        ),
        (
            pd.DataFrame(
                {"audio_path": ["a"], "caption": ["x"], "start_s": ["nan?"], "end_s": [1]}
            ),
            None,
        ),
    ],
)
def test_contract_violations(frame, fragment):
    if fragment is None:  # an unparsable start reads as "no start": the clip starts at 0
        assert pd.isna(ClipManifest.from_frame(frame).frame.loc[0, "start_s"])
        return
    with pytest.raises(ManifestError, match=fragment):
        ClipManifest.from_frame(frame)


def test_unreadable_manifest(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        ClipManifest.read(tmp_path / "none.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ManifestError, match="cannot read"):
        ClipManifest.read(bad)


def test_normalise_caption():
    assert normalise_caption("  A Sad  woman speaks.") == normalise_caption("a sad woman speaks")
    assert normalise_caption("fast!") != normalise_caption("slow")


def test_one_reader_for_training_manifests_and_clip_lists(tmp_path):
    from pipeline.caption import read_clip_table

    raw = "wav_fp,text\nclips/a.wav,caf\xe9\n".encode("latin-1")  # not UTF-8
    (tmp_path / "list.csv").write_bytes(raw)
    # a clip list to caption keeps the stray byte (one bad transcript must not fail the file) ...
    clips = read_clip_table(tmp_path / "list.csv")
    assert clips["audio_path"].tolist() == [str(tmp_path / "clips" / "a.wav")]
    assert clips["clip_id"].tolist() == ["clip0000000"] and clips["text"][0].startswith("caf")
    # ... under the same rules as a training manifest, which needs captions and UTF-8
    with pytest.raises(ManifestError, match="cannot read manifest"):
        read_table(tmp_path / "list.csv")
    (tmp_path / "list.csv").write_text("wav_fp,text\nclips/a.wav,cafe\n")
    with pytest.raises(ManifestError, match="lacks column.*caption"):
        ClipManifest.read(tmp_path / "list.csv")
    assert read_clip_table(tmp_path / "list.csv")["clip_id"].tolist() == ["clip0000000"]


def test_a_manifest_named_by_a_relative_path_gives_absolute_audio_paths(tmp_path, monkeypatch):
    # an index or a run built from "m.csv" must still find its audio from another folder
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.wav").write_bytes(b"")
    (tmp_path / "data" / "m.csv").write_text("audio_path,caption\na.wav,a calm voice\n")
    monkeypatch.chdir(tmp_path)
    frame = ClipManifest.read(Path("data") / "m.csv", validate_levels=False).frame
    assert frame.loc[0, "audio_path"] == str(tmp_path / "data" / "a.wav")
