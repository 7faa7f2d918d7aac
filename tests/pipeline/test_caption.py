import re

import numpy as np
import pandas as pd
import pytest

from fsclap.caption_writer import EN, ZH
from fsclap.cli import main
from fsclap.config import load_settings
from fsclap.manifest import ClipManifest
from fsclap.testing.style_audio import write_voice_like
from fsclap.testing.tiny_models import write_sensevoice_small_dir
from pipeline.caption import caption_manifest, clean_transcript

EMOTION_WORDS = {
    w
    for role in EN["emotion"].values()
    for phrases in role.values()
    for p in phrases
    for w in p.split()
    if w not in {"a", "an", "with", "in", "tone", "mood", "no", "strong", "emotion"}
}
TEXTS = [
    "well hello there my friend",
    "I never said that to you",
    "please come back home soon",
    "what are you doing here",
    "this is the last time",
]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """Two speakers with five varied clips each, plus one clip of every kind of bad input."""
    root = tmp_path_factory.mktemp("clips")
    rows = []
    for speaker, base in (("spk_a", 115.0), ("spk_b", 215.0)):
        for i, (f0_ratio, level, rate) in enumerate(
            [(1.0, -25, 4.0), (0.8, -33, 2.5), (1.3, -16, 6.0), (1.0, -24, 4.2), (0.98, -26, 3.9)]
        ):
            name = f"{speaker}_{i}.wav"
            write_voice_like(
                root / name,
                f0_hz=base * f0_ratio,
                seconds=2.0,
                level_dbfs=level,
                syllables_per_s=rate,
                seed=i,
            )
            rows.append((f"{speaker}_{i}", name, TEXTS[i], speaker, ""))
    import soundfile as sf

    sf.write(root / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(root / "short.wav", np.full(800, 0.2, dtype=np.float32), 16000)
    sf.write(
        root / "clipped.wav",
        np.clip(np.sin(2 * np.pi * 130 * np.arange(24000) / 16000) * 3, -1, 1),
        16000,
    )
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    write_voice_like(root / "conflict.wav", f0_hz=110.0, seconds=2.0)
    write_voice_like(root / "badtext.wav", f0_hz=220.0, seconds=2.0, syllables_per_s=5.0)
    rows += [
        ("silent", "silent.wav", "", "", ""),
        ("short", "short.wav", "", "", ""),
        ("clipped", "clipped.wav", "", "", ""),
        ("corrupt", "corrupt.wav", "", "", ""),
        ("missing", "missing.wav", "", "", ""),
        ("conflict", "conflict.wav", "", "", "female"),
        ("badtext", "badtext.wav", "BADTEXT", "", ""),
    ]
    lines = ["clip_id,wav_fp,text,speaker_id,gender"] + [",".join(r) for r in rows]
    data = (
        "\n".join(lines).encode("utf-8").replace(b"BADTEXT", b"caf\xe9 \xff\xfe ol\xe9")
    )  # Latin-1 bytes
    (root / "manifest.csv").write_bytes(data + b"\n")
    return root


def test_caption_cli_defined_outcomes_for_every_bad_input(clip_folder, tmp_path, capsys):
    out = tmp_path / "captioned.parquet"
    # finished with some clips rejected (recorded in the rejects file): exit 3
    assert (
        main(["caption", "--manifest", str(clip_folder / "manifest.csv"), "--out", str(out)]) == 3
    )
    printed = capsys.readouterr()
    assert "captioned 13 clips" in printed.out and "4 clip(s) without a caption" in printed.out
    assert "finished with 4 failed item(s): see " in printed.err and "rejected.csv" in printed.err
    frame = pd.read_parquet(out).set_index("clip_id")
    rejects = pd.read_csv(tmp_path / "captioned.rejected.csv").set_index("clip_id")[
        "caption_status"
    ]
    assert set(rejects.index) == {"silent", "short", "corrupt", "missing"}
    assert (
        rejects["silent"].startswith("nothing measurable: silent")
        and "too short" in rejects["short"]
    )
    assert rejects["corrupt"].startswith("unreadable: ") and rejects["missing"].startswith(
        "unreadable: "
    )
    # clipped: measured pitch, energy not binned, noted
    assert (
        pd.isna(frame.loc["clipped", "energy"])
        and "clipped" in frame.loc["clipped", "measure_note"]
    )
    # a non-UTF-8 transcript is not used: onsets, with a note
    assert (
        "not valid UTF-8" in frame.loc["badtext", "measure_note"]
        and frame.loc["badtext", "speech_rate_unit"] == "onset/s"
    )
    assert frame.loc["spk_a_0", "speech_rate_unit"] == "syl/s"
    # conflicting attributes: the given label disagrees with the measurement -> dropped (default) and recorded
    assert (
        pd.isna(frame.loc["conflict", "gender"])
        and frame.loc["conflict", "gender_given"] == "female"
    )
    assert "gender: given female, measured male" in frame.loc["conflict", "conflicts"]
    # offline profile: emotion not measured and never described
    assert (frame["emotion"] == "unknown").all() and (
        frame["emotion_source"] == "not measured (offline profile)"
    ).all()
    for caption in frame["caption_en"]:
        assert not set(re.findall(r"[a-z]+", caption.lower())) & EMOTION_WORDS, caption
    # the output is a valid clip manifest; audio paths resolve against its folder
    manifest = ClipManifest.read(out)
    assert len(manifest) == 13 and manifest.problems().empty
    assert (frame["caption"] == frame["caption_en"]).all() and frame["caption_zh"].str.len().gt(
        0
    ).all()


def test_measured_levels_follow_the_signal(clip_folder, tmp_path):
    out = tmp_path / "c.parquet"
    caption_manifest(clip_folder / "manifest.csv", out, load_settings(overrides={"workers": 1}))
    frame = pd.read_parquet(out).set_index("clip_id")
    for speaker, gender in (("spk_a", "male"), ("spk_b", "female")):
        assert (frame.loc[[f"{speaker}_{i}" for i in range(5)], "gender"] == gender).all()
        assert frame.loc[f"{speaker}_1", ["pitch", "energy"]].tolist() == ["low", "low"]
        assert frame.loc[f"{speaker}_2", ["pitch", "energy"]].tolist() == ["high", "high"]
        assert frame.loc[f"{speaker}_0", "pitch"] == "normal"
    assert frame.loc["spk_b_2", "caption"] != frame.loc["spk_a_2", "caption"]


def test_captions_are_reproducible_and_the_language_is_chosen(clip_folder, tmp_path):
    settings = load_settings(overrides={"workers": 1})
    a = caption_manifest(clip_folder / "manifest.csv", tmp_path / "a.csv", settings)
    b = caption_manifest(
        clip_folder / "manifest.csv", tmp_path / "b.parquet", settings, language="zh"
    )
    c = caption_manifest(clip_folder / "manifest.csv", tmp_path / "c.parquet", settings, seed=7)
    fa, fb, fc = (pd.read_csv(a.out_path), pd.read_parquet(b.out_path), pd.read_parquet(c.out_path))
    assert (
        fa["caption_en"].tolist() == fb["caption_en"].tolist()
        and (fb["caption"] == fb["caption_zh"]).all()
    )
    assert all(re.search(r"[\u4e00-\u9fff]", t) for t in fb["caption"])
    assert fc["caption_en"].tolist() != fa["caption_en"].tolist()  # another seed, other templates


def test_paper_profile_needs_sensevoice_and_never_falls_back(clip_folder, tmp_path, capsys):
    code = main(
        [
            "--set",
            f"models_dir={tmp_path / 'models'}",
            "caption",
            "--manifest",
            str(clip_folder / "manifest.csv"),
            "--out",
            str(tmp_path / "o.parquet"),
            "--profile",
            "paper",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert (
        code == 2
        and err.startswith("error: SenseVoiceSmall model directory not found at ")
        and "\n" not in err
    )
    assert not (tmp_path / "o.parquet").exists()


def test_paper_profile_tags_emotion_and_events_with_sensevoice(clip_folder, tmp_path):
    write_sensevoice_small_dir(
        tmp_path / "models" / "sensevoice", emit=("<|en|>", "<|ANGRY|>", "<|BGM|>", "<|woitn|>")
    )
    settings = load_settings(
        overrides={"profile": "paper", "models_dir": str(tmp_path / "models"), "workers": 1}
    )
    result = caption_manifest(clip_folder / "manifest.csv", tmp_path / "p.parquet", settings)
    frame = pd.read_parquet(result.out_path).set_index("clip_id")
    assert (frame["emotion"] == "angry").all() and (
        frame["emotion_source"] == "sensevoice-small"
    ).all()
    assert (frame["audio_events"] == "BGM").all() and (frame["language_detected"] == "en").all()
    angry = set(
        EN["emotion"]["adj"]["angry"]
        + EN["emotion"]["adv"]["angry"]
        + EN["emotion"]["noun"]["angry"]
        + EN["emotion"]["np"]["angry"]
    )
    assert all(any(p in c for p in angry) for c in frame["caption_en"]), frame[
        "caption_en"
    ].tolist()
    zh_angry = {p for role in ZH["emotion"].values() for p in role["angry"]}
    assert all(any(p in c for p in zh_angry) for c in frame["caption_zh"])


def test_clean_transcript():
    assert clean_transcript(b"caf\xc3\xa9") == ("café", "")
    assert (
        clean_transcript(b"caf\xe9")[0] is None
        and "not valid UTF-8" in clean_transcript(b"caf\xe9")[1]
    )
    assert clean_transcript("ok\udce9")[0] is None
    assert clean_transcript(float("nan")) == (None, "") and clean_transcript("  ") == (None, "")


def test_a_killed_caption_run_resumes_without_measuring_twice(clip_folder, tmp_path, monkeypatch):
    import pipeline.caption as caption

    original = caption.measure_frame
    measured = []

    def counting(frame, workers=1, desc=""):
        if kill_after is not None and len(measured) >= kill_after:
            raise KeyboardInterrupt  # the run dies here
        measured.extend(frame["clip_id"])
        return original(frame, workers=1, desc=desc)

    monkeypatch.setattr(caption, "measure_frame", counting)
    monkeypatch.setattr(caption, "RESUME_CHUNK", 4)
    out, settings = tmp_path / "r.parquet", load_settings(overrides={"workers": 1})
    kill_after = 8
    with pytest.raises(KeyboardInterrupt):
        caption_manifest(clip_folder / "manifest.csv", out, settings)
    assert (
        len(list((tmp_path / "r.parquet.partial").glob("part-*.parquet"))) == 2 and not out.exists()
    )
    first, kill_after = list(measured), None
    measured.clear()
    result = caption_manifest(clip_folder / "manifest.csv", out, settings)
    assert len(first) == 8 and not set(first) & set(measured) and len(first) + len(measured) == 17
    assert result.clips == 13 and not (tmp_path / "r.parquet.partial").exists()


def test_an_ambiguous_gender_and_an_unmeasurable_speed_are_never_described():
    from pipeline.caption import CaptionConfig, describe
    from pipeline.gender_params import GENDER_MODELS

    p = GENDER_MODELS["f0"]  # the F0 where the fitted F0-only model is undecided
    boundary = 100.0 * 2 ** ((p["mean"][0] - p["intercept"] * p["scale"][0] / p["coef"][0]) / 12)
    measured = pd.DataFrame(
        {
            "clip_id": ["a", "b"],
            "audio_path": ["a.wav", "b.wav"],
            "f0_median_hz": [boundary, 120.0],
            "rms_dbfs": [-25.0, -25.0],
            "clipped_fraction": 0.0,
            "speech_rate": [np.nan, np.nan],
            "articulation_rate": [np.nan, np.nan],
            "speech_rate_unit": ["", "syl/s"],
            "read_error": "",
            "measure_note": "",
            "emotion_measured": "unknown",
        }
    )
    out = describe(measured, CaptionConfig())
    assert list(out["gender"]) == ["unknown", "male"] and (out["speed"] == "unknown").all()
    speed_words = r"\b(slow\w*|fast\w*|quick\w*|rapid\w*|unhurried\w*|pace\w*|tempo|speaking rate|leisurely)\b"
    for caption in out["caption_en"]:
        assert not re.search(speed_words, caption.lower())
    assert not re.search(
        r"\b(wom[ae]n|m[ae]n|female|male|lady|gentleman|she|he|her|his)\b",
        out["caption_en"][0].lower(),
    )


def test_given_labels_are_kept_with_their_source_but_never_put_into_words(clip_folder, tmp_path):
    names = ["spk_a_0", "spk_b_2", "silent", "corrupt", "missing"]
    files = {"spk_a_0": "spk_a_0.wav", "spk_b_2": "spk_b_2.wav", "silent": "silent.wav"}
    files |= {"corrupt": "corrupt.wav", "missing": "missing.wav"}
    manifest = tmp_path / "labelled.csv"
    pd.DataFrame(
        {
            "clip_id": names,
            "audio_path": [str(clip_folder / files[n]) for n in names],
            "emotion": "angry",  # the offline profile measures no emotion
            "speed": "fast",
        }
    ).to_csv(manifest, index=False)
    result = caption_manifest(manifest, tmp_path / "out.parquet", load_settings())
    rejects = pd.read_csv(result.rejects_path).set_index("clip_id")["caption_status"]
    # labels do not make unreadable or silent audio captionable
    assert set(rejects.index) == {"silent", "corrupt", "missing"}
    assert rejects["missing"].startswith("unreadable: ")
    frame = pd.read_parquet(result.out_path).set_index("clip_id")
    assert (frame["emotion"] == "angry").all() and (frame["emotion_from"] == "given").all()
    angry = set(sum((EN["emotion"][role]["angry"] for role in EN["emotion"]), []))
    assert not any(word in caption for caption in frame["caption_en"] for word in angry)
    # speed is measured: the measured level wins or, disagreeing with the label, neither is said
    for clip, row in frame.iterrows():
        assert row["speed_from"] == "measured" or (
            pd.isna(row["speed"]) and "speed: given fast" in row["conflicts"]
        ), clip


def test_the_resume_key_follows_the_kept_segments_and_their_clips(tmp_path):
    import os

    import pandas as pd

    from fsclap.config import Settings
    from pipeline.caption import Caption
    from pipeline.stage import StageContext, short_hash
    from pipeline.tables import Episode

    stage = Caption(context=StageContext(data_root=tmp_path), settings=Settings(profile="offline"))
    clip = tmp_path / "clips" / "a.wav"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"x")
    rows = {
        "episode_id": ["d-1", "d-1", "d-2"],
        "segment_id": ["d-1-002", "d-1-001", "d-2-001"],
        "clip_path": ["clips/a.wav", "", "clips/b.wav"],
        "start_s": [2.0, 0.0, 0.0],
        "end_s": [3.0, 1.0, 1.0],
        "text": ["hi", None, "yo"],
        "kept": [True, True, False],
    }
    table = stage.drama_table("d")
    table.parent.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(table)
    ep = Episode(episode_id="d-1", drama_id="d", source_url="u", source_key="u")
    stat = clip.stat()
    expected = short_hash(
        [
            ["d-1-001", "", 0.0, 1.0, float("nan"), None],  # a missing text reads as NaN
            ["d-1-002", "clips/a.wav", 2.0, 3.0, "hi", [stat.st_size, stat.st_mtime_ns]],
        ],
        24,
    )
    assert stage.input_hash(ep) == expected  # the format keys had before the per-drama index
    assert stage.input_hash(
        Episode(episode_id="d-2", drama_id="d", source_url="u", source_key="u")
    ) == short_hash([], 24)
    clip.write_bytes(b"xy")  # a clip written again
    assert stage.input_hash(ep) != expected
    now = stage.input_hash(ep)
    rows["end_s"][0] = 3.5  # the drama table rewritten: read and indexed again
    pd.DataFrame(rows).to_parquet(table)
    os.utime(table, ns=(1, 1))
    assert stage.input_hash(ep) not in (expected, now)
    assert (
        stage.input_hash(Episode(episode_id="x-1", drama_id="x", source_url="u", source_key="u"))
        is None
    )
