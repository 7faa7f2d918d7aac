import json

import numpy as np
import pandas as pd
import pytest

from fsclap.manifest import ClipManifest
from fsclap.testing.style_audio import write_voice_like
from pipeline.caption import Caption, CaptionConfig
from pipeline.publish import (
    HISTOGRAM_LEVELS,
    HISTOGRAM_VALUES,
    Publish,
    PublishConfig,
    assign_splits,
    publish_frame,
)
from pipeline.segments import SEGMENT_COLUMNS, typed
from pipeline.stage import StageContext
from pipeline.tables import Episode


def frame_of(dramas: int, speakers_per_drama: int = 3, clips: int = 4) -> pd.DataFrame:
    rows = []
    for d in range(dramas):
        for s in range(speakers_per_drama):
            for c in range(clips + s):  # speakers of different sizes
                rows.append(
                    {
                        "clip_id": f"d{d}s{s}c{c}",
                        "drama_id": f"d{d}",
                        "speaker_id": f"d{d}_spk{s}",
                        "episode_id": f"d{d}e{c % 2}",
                        "caption": f"caption {d} {s} {c}",
                    }
                )
    return pd.DataFrame(rows)


def test_three_or_more_dramas_split_by_drama():
    frame = frame_of(5)
    splits, rule = assign_splits(frame, PublishConfig())
    frame["split"] = splits
    assert rule == "by drama" and set(splits) == {"train", "val", "test"}
    assert frame.groupby("drama_id")["split"].nunique().max() == 1
    assert frame.groupby("speaker_id")["split"].nunique().max() == 1
    assert (splits == "train").sum() > (splits == "test").sum()


def test_too_few_dramas_fall_back_to_speaker_disjoint_splits():
    frame = frame_of(2, speakers_per_drama=4)
    splits, rule = assign_splits(frame, PublishConfig())
    frame["split"] = splits
    assert rule.startswith("by speaker (2 dramas < 3")
    assert set(splits) == {"train", "val", "test"}
    assert frame.groupby("speaker_id")["split"].nunique().max() == 1
    assert (
        frame.groupby("drama_id")["split"].nunique().max() > 1
    )  # dramas are shared, as documented


def test_splits_are_deterministic_and_seeded():
    frame = frame_of(2, speakers_per_drama=6, clips=3)
    same = [assign_splits(frame, PublishConfig(seed=0))[0].tolist() for _ in range(2)]
    assert same[0] == same[1]
    other = [assign_splits(frame, PublishConfig(seed=s))[0].tolist() for s in range(1, 6)]
    assert any(o != same[0] for o in other)


@pytest.fixture()
def audio_frame(tmp_path):
    frame = frame_of(3, speakers_per_drama=2, clips=2)
    paths = []
    for i, clip in enumerate(frame["clip_id"]):
        paths.append(
            str(
                write_voice_like(
                    tmp_path / "audio" / f"{clip}.wav", f0_hz=100 + 10 * i, seconds=0.5
                )
            )
        )
    frame["audio_path"] = paths
    frame["duration_s"] = 0.5
    frame["gender"] = "male"
    frame["pitch"] = ["low", "normal", "high"] * (len(frame) // 3) + ["normal"] * (len(frame) % 3)
    return frame


def test_republishing_unchanged_inputs_gives_the_same_version(audio_frame, tmp_path):
    first = publish_frame(audio_frame, tmp_path / "datasets")
    files = {p: p.stat().st_mtime_ns for p in first.path.rglob("*")}
    again = publish_frame(
        audio_frame.sample(frac=1.0, random_state=3), tmp_path / "datasets"
    )  # row order is irrelevant
    assert again.version == first.version and again.reused
    assert {p: p.stat().st_mtime_ns for p in first.path.rglob("*")} == files
    changed = audio_frame.copy()
    changed.loc[0, "caption"] = "a different caption"
    assert publish_frame(changed, tmp_path / "datasets").version != first.version
    audio = tmp_path / "audio" / f"{audio_frame.loc[1, 'clip_id']}.wav"
    audio.write_bytes(audio.read_bytes()[:-2] + b"\x01\x02")  # same size, other content
    assert publish_frame(audio_frame, tmp_path / "datasets").version != first.version


def check_png_shows(png, fig) -> None:
    """The PNG is this figure (same aspect) and not one flat colour."""
    from matplotlib.image import imread

    image = imread(png)
    height, width = image.shape[:2]
    assert height >= 200 and width / height == pytest.approx(
        fig.get_figwidth() / fig.get_figheight(), rel=0.01
    )
    assert image[..., :3].std() > 0.05


def check_level_bars(fig, published: pd.DataFrame) -> None:
    """attribute_levels: per attribute, bars stacked by split whose heights are the clip counts
    of each level in each split."""
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [c for c in HISTOGRAM_LEVELS if c in published.columns] and titles
    for ax in fig.axes:
        col = ax.get_title()
        levels = [t.get_text() for t in ax.get_xticklabels()]
        assert sorted(levels) == sorted(published[col].astype(str).unique())
        assert [c.get_label() for c in ax.containers] == ["train", "val", "test"]
        for split, container in zip(["train", "val", "test"], ax.containers):
            heights = [bar.get_height() for bar in container]
            part = published[published["split"] == split][col].astype(str)
            assert heights == [(part == level).sum() for level in levels], (col, split)


def check_value_histograms(fig, published: pd.DataFrame) -> None:
    """measured_values: one histogram per measured column holding every measured clip."""
    assert len(fig.axes) >= 1
    names = {label: col for col, label in HISTOGRAM_VALUES.items()}
    for ax in fig.axes:
        col = names[ax.get_title()]
        counted = sum(patch.get_height() for patch in ax.patches)
        assert counted == pd.to_numeric(published[col], errors="coerce").notna().sum(), col


def test_published_version_layout_and_card(audio_frame, tmp_path, artifacts_dir, closed_figures):
    figures = closed_figures
    result = publish_frame(
        audio_frame, tmp_path / "datasets", provenance={"stage_versions": {"caption": ["1"]}}
    )
    assert result.version.startswith("v-") and len(result.version) == 14
    meta = json.loads((result.path / "dataset.json").read_text())
    assert meta["counts"] == result.counts and sum(result.counts.values()) == len(audio_frame)
    card = (result.path / "README.md").read_text()
    assert (
        f"{len(audio_frame)} clips" in card
        and "by drama" in card
        and "plots/attribute_levels.png" in card
    )
    published = pd.concat(
        [pd.read_parquet(result.path / f"{split}.parquet") for split in ("train", "val", "test")]
    )
    assert len(figures) == 2  # attribute_levels.png, then measured_values.png
    check_level_bars(figures[0], published)
    check_value_histograms(figures[1], published)
    for fig, png in zip(figures, ("attribute_levels.png", "measured_values.png")):
        check_png_shows(result.path / "plots" / png, fig)
    (artifacts_dir / "publish_attribute_levels.png").write_bytes(
        (result.path / "plots" / "attribute_levels.png").read_bytes()
    )
    seen = set()
    for split in ("train", "val", "test"):
        manifest = ClipManifest.read(result.path / f"{split}.parquet")
        assert manifest.problems().empty  # relative audio paths resolve against the version folder
        speakers = set(manifest.frame["speaker_id"])
        assert not speakers & seen
        seen |= speakers
    assert (tmp_path / "datasets" / "LATEST").read_text().strip() == result.version


# --- the caption and publish stages on a corpus laid out as diarize/consistency leave it -------


def fake_corpus(root):
    """DIR/segments/<drama>.parquet + manifests/segments.parquet + 24 kHz FLAC clips, 3 dramas."""
    rows, episodes = [], []
    for d in range(3):
        drama = f"drama{d}"
        for e in range(2):
            episode = f"{drama}-ep{e}"
            episodes.append(
                Episode(
                    episode_id=episode,
                    drama_id=drama,
                    source_url="x",
                    source_key=episode,
                    episode_index=e,
                )
            )
            for k in range(6):
                speaker = k % 2
                segment = f"{episode}_{k:04d}"
                clip = f"clips/{drama}/{episode}/{segment}.flac"
                base = 115.0 if speaker == 0 else 220.0
                write_voice_like(
                    root / clip,
                    f0_hz=base * (0.85, 1.0, 1.2)[k % 3],
                    seconds=1.5,
                    sr=24000,
                    level_dbfs=(-30, -24, -17)[(k + e) % 3],
                    seed=k,
                )
                rows.append(
                    {
                        "segment_id": segment,
                        "drama_id": drama,
                        "episode_id": episode,
                        "episode_index": e,
                        "start_s": 2.0 * k,
                        "end_s": 2.0 * k + 1.5,
                        "duration_s": 1.5,
                        "text": None,
                        "episode_speaker": f"S{speaker}",
                        "speaker_id": f"{drama}_spk{speaker:02d}",
                        "clip_path": clip,
                        "consistency": 0.9,
                        "kept": k != 5,
                        "reason": "kept" if k != 5 else "low_consistency",
                        "diarizer": "test",
                    }
                )
    table = typed(pd.DataFrame(rows), SEGMENT_COLUMNS)
    for drama, part in table.groupby("drama_id"):
        (root / "segments").mkdir(parents=True, exist_ok=True)
        part.to_parquet(root / "segments" / f"{drama}.parquet", index=False)
    (root / "manifests").mkdir(parents=True, exist_ok=True)
    table.to_parquet(root / "manifests" / "segments.parquet", index=False)
    return episodes


def test_caption_and_publish_stages_on_a_corpus(tmp_path):
    root = tmp_path / "data"
    episodes = fake_corpus(root)
    context = StageContext(data_root=root)
    caption = Caption(
        CaptionConfig(binning={"reference": "speaker", "min_speaker_clips": 4}), context=context
    )
    done = [caption.run(e) for e in episodes]
    assert all(caption.is_done(e) for e in done) and caption.calls == 6
    assert [e.n_measured_clips for e in done] == [5] * 6
    caption.finish()
    clips = ClipManifest.read(
        root / "manifests" / "clips.parquet"
    )  # the contract, levels validated
    frame = clips.frame
    assert (
        len(frame) == 30
        and clips.problems().empty
        and frame["clip_id"].str.endswith("_0005").sum() == 0
    )
    assert set(frame["pitch_ref"]) == {"speaker"} and set(frame["gender"]) == {"male", "female"}
    assert {"episode_start_s", "episode_end_s", "drama_id", "speaker_id", "segment_id"} <= set(
        frame.columns
    )
    assert "start_s" not in frame.columns  # the clip file is the segment: nothing to cut again
    assert (frame["emotion"] == "unknown").all()
    # levels follow the signal within each speaker
    assert (frame.loc[frame["clip_id"].str.endswith("_0002"), "pitch"] == "high").all()
    assert (frame.loc[frame["clip_id"].str.endswith("_0003"), "pitch"] == "low").all()

    publish = Publish(PublishConfig(), context=context)
    for e in done:
        publish.run(e)
    result = publish.finish()
    assert result.split_rule == "by drama" and sum(result.counts.values()) == 30
    assert Publish(PublishConfig(), context=context).finish().version == result.version
    for split in ("train", "val", "test"):
        assert len(ClipManifest.read(result.path / f"{split}.parquet")) == 10
    # changing only the caption language keeps the measurements (no re-measuring) but changes the data
    zh = Caption(
        CaptionConfig(caption_language="zh", binning={"min_speaker_clips": 4}), context=context
    )
    assert all(zh.is_done(e) for e in done)
    zh.finish()
    assert Publish(PublishConfig(), context=context).finish().version != result.version
    assert not np.any(
        pd.read_parquet(root / "manifests" / "clips.parquet")["caption"].str.contains("speak")
    )


def test_caption_stage_on_the_paper_profile_uses_sensevoice_or_stops(tmp_path):
    from fsclap.config import load_settings
    from fsclap.errors import MissingModelError
    from fsclap.testing.tiny_models import write_sensevoice_small_dir

    root = tmp_path / "data"
    episodes = fake_corpus(root)
    context = StageContext(data_root=root, profile="paper")
    settings = load_settings(overrides={"profile": "paper", "models_dir": str(tmp_path / "models")})
    with pytest.raises(MissingModelError, match="SenseVoiceSmall model directory"):
        Caption(context=context, settings=settings).check()
    write_sensevoice_small_dir(
        tmp_path / "models" / "sensevoice",
        emit=("<|zh|>", "<|SURPRISED|>", "<|Speech|>", "<|woitn|>"),
    )
    caption = Caption(context=context, settings=settings)
    caption.check()
    for episode in episodes[:2]:
        caption.run(episode)
    caption.finish()
    frame = pd.read_parquet(root / "manifests" / "clips.parquet")
    assert len(frame) == 10 and (frame["emotion"] == "surprised").all()
    assert (frame["emotion_source"] == "sensevoice-small").all() and (
        frame["language_detected"] == "zh"
    ).all()
    assert (
        caption.identity()["emotion"]["model"] == "iic/SenseVoiceSmall"
    )  # the model is part of the resume key
