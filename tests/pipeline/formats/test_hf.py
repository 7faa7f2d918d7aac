"""The HuggingFace Parquet layout, read with ``datasets`` itself (``Audio(decode=False)``: decoding
needs torchcodec, which the CPU install lacks) and soundfile."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest
import soundfile as sf

from fsclap.cli import main
from fsclap.errors import FsclapError
from fsclap.manifest import ClipManifest
from pipeline.formats import export_manifest, import_manifest


def tree(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_layout_loads_with_datasets_and_round_trips(captioned, tmp_path):
    import datasets

    out = export_manifest(captioned, tmp_path / "hf", "hf-parquet")
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
        "val-00000-of-00001.parquet",
    ]
    loaded = datasets.load_dataset(str(out))
    assert {k: len(v) for k, v in loaded.items()} == {"train": 2, "val": 1, "test": 1}
    assert isinstance(loaded["train"].features["audio"], datasets.Audio)
    item = loaded["train"].cast_column("audio", datasets.Audio(decode=False))[0]["audio"]
    assert item["bytes"] == (tmp_path / "clips" / "d0" / "c0.wav").read_bytes()
    samples, sr = sf.read(io.BytesIO(item["bytes"]))
    assert sr == 16000 and len(samples) == pytest.approx(0.4 * sr, abs=1)
    before = tree(out)
    back = import_manifest(out, "hf-parquet", audio_dir=tmp_path / "m_audio").frame
    assert tree(out) == before  # nothing written into the dataset read
    back = back.set_index("clip_id").loc[captioned["clip_id"]]
    for col in ("caption", "caption_zh", "text", "speaker_id", "gender", "emotion", "split"):
        assert back[col].tolist() == captioned[col].tolist(), col
    for clip, path in zip(captioned["clip_id"], captioned["audio_path"]):
        assert str(tmp_path / "m_audio") in back.loc[clip, "audio_path"]
        assert open(back.loc[clip, "audio_path"], "rb").read() == open(path, "rb").read()


def test_export_of_import_reproduces_the_tables(captioned, tmp_path):
    first = export_manifest(captioned, tmp_path / "hf", "hf-parquet")
    frame = import_manifest(first, "hf-parquet", audio_dir=tmp_path / "audio").frame
    again = export_manifest(frame, tmp_path / "hf2", "hf-parquet")
    for shard in (first / "data").iterdir():
        a, b = pq.read_table(shard), pq.read_table(again / "data" / shard.name)
        assert a.schema == b.schema and a.to_pylist() == b.to_pylist()


def test_embedded_audio_needs_a_folder_outside_the_dataset(captioned, tmp_path):
    out = export_manifest(captioned, tmp_path / "hf", "hf-parquet")
    with pytest.raises(FsclapError, match="embeds audio"):
        import_manifest(out, "hf-parquet")
    with pytest.raises(FsclapError, match="into the dataset being read"):
        import_manifest(out, "hf-parquet", audio_dir=out / "audio")


def test_cli_import_writes_audio_beside_the_manifest(captioned, tmp_path):
    out = export_manifest(captioned, tmp_path / "hf", "hf-parquet")
    before = tree(out)
    m = tmp_path / "work" / "m.parquet"
    assert (
        main(["dataset", "import", "--input", str(out), "--format", "hf-parquet", "--out", str(m)])
        == 0
    )
    assert tree(out) == before
    frame = ClipManifest.read(m).frame
    assert sorted(p.name for p in (tmp_path / "work" / "m_audio" / "train").iterdir()) == [
        "c0.wav",
        "c1.wav",
    ]
    assert frame["audio_path"].map(lambda p: p.startswith(str(tmp_path / "work" / "m_audio"))).all()
    assert pq.read_table(m).column("audio_path").to_pylist()[0].startswith("m_audio")


def test_a_parquet_written_by_datasets_imports(tmp_path):
    """``datasets``' own Parquet (audio column declared ``Audio`` in its schema metadata, any name;
    ``style_prompt`` for the caption)."""
    from datasets import Audio, Dataset

    wav = io.BytesIO()
    sf.write(wav, [0.0] * 800, 16000, format="FLAC")
    (tmp_path / "ds" / "data").mkdir(parents=True)
    Dataset.from_dict(
        {"speech": [{"bytes": wav.getvalue(), "path": None}], "style_prompt": ["A low voice."]}
    ).cast_column("speech", Audio(decode=False)).to_parquet(
        tmp_path / "ds" / "data" / "train-00000-of-00001.parquet"
    )
    frame = import_manifest(tmp_path / "ds", "hf-parquet", audio_dir=tmp_path / "a").frame
    assert frame["caption"].tolist() == ["A low voice."]
    assert frame["audio_path"][0].endswith("train0000000.flac")
    assert sf.info(frame["audio_path"][0]).frames == 800


def test_a_garbled_shard_is_one_line(tmp_path, capsys):
    (tmp_path / "ds" / "data").mkdir(parents=True)
    (tmp_path / "ds" / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1garbage")
    code = main(
        [
            "dataset",
            "import",
            "--input",
            str(tmp_path / "ds"),
            "--format",
            "hf-parquet",
            "--out",
            str(tmp_path / "o.csv"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "is not a readable Parquet shard" in err and "\n" not in err
