import hashlib
import json
import subprocess
import sys
import urllib.request

import numpy as np
import pandas as pd
import pytest
import yaml

from fsclap.acoustics import ACTIVE_REL_DB, frame_dbfs
from fsclap.audio import ffprobe, load_audio
from fsclap.cli import main
from fsclap.errors import FsclapError
from pipeline.scoring import diarization_error, read_rttm, si_sdr
from pipeline.synth import generate_dramas, load_truth, serving, write_served_sources
from pipeline.synth.drama import SPEECH_TO_MUSIC_DB, plan_dramas, speech_turns
from pipeline.synth.plots import plot_episode

DURATION = 30.0
EPISODES = 3


@pytest.fixture(scope="module")
def dramas(tmp_path_factory):
    out = tmp_path_factory.mktemp("dramas")
    result = generate_dramas(
        out, dramas=1, episodes=EPISODES, seed=4, duration_s=DURATION, workers=2
    )
    return out, result


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_casts_recur_and_mix_genders():
    plans = plan_dramas(6, seed=0)
    for drama in plans:
        assert 2 <= len(drama.speakers) <= 4
        assert {s.voice.gender for s in drama.speakers} == {"female", "male"}
        assert len({s.voice.voice_id for s in drama.speakers}) == len(drama.speakers)
    assert plan_dramas(2, seed=0) == plans[:2]  # drama d does not depend on how many are made


def test_layout_sources_and_truth(dramas):
    out, result = dramas
    assert len(result.episodes) == EPISODES and not result.failed
    sources = yaml.safe_load((out / "sources.yaml").read_text())
    assert sources["min_episodes"] == EPISODES
    (drama,) = sources["dramas"]
    assert {"id", "title", "language", "urls"} <= set(drama)
    assert all((out / u).is_file() for u in drama["urls"])  # relative to the sources file
    truth = load_truth(out)
    assert [t["episode_id"] for t in truth] == [
        f"drama01_ep{i:03d}" for i in range(1, EPISODES + 1)
    ]
    speakers = {s["speaker_id"] for s in truth[0]["speakers"]}
    assert all(
        {s["speaker_id"] for s in t["speakers"]} == speakers for t in truth
    )  # recurring cast
    assert {t["speech_to_music_db"] for t in truth} == set(SPEECH_TO_MUSIC_DB)
    lines = pd.read_parquet(out / "truth" / "lines.parquet")
    assert len(lines) == sum(len(t["lines"]) for t in truth)
    assert lines["emotion_nominal"].all() and lines["caption"].str.len().min() > 10
    for t in truth:
        starts = [line["start_s"] for line in t["lines"]]
        assert starts == sorted(starts)
        assert all(0 < line["start_s"] < line["end_s"] <= DURATION for line in t["lines"])
        assert all(line["speaker_id"] in speakers for line in t["lines"])
        alternating = [
            a["speaker_id"] != b["speaker_id"] for a, b in zip(t["lines"], t["lines"][1:])
        ]
        assert all(alternating)
    overlaps = [
        (a, b) for t in truth for a, b in zip(t["lines"], t["lines"][1:]) if b["overlaps_previous"]
    ]
    assert overlaps, "some lines should interrupt the previous one"
    assert all(b["start_s"] < a["end_s"] for a, b in overlaps)
    assert not any(
        b["start_s"] < a["end_s"]
        for t in truth
        for a, b in zip(t["lines"], t["lines"][1:])
        if not b["overlaps_previous"]
    )


def test_rttm_matches_json_and_scores_zero_against_itself(dramas):
    out, _ = dramas
    for t in load_truth(out):
        turns = read_rttm(out / "truth" / "drama01" / t["episode_id"] / "episode.rttm")[
            t["episode_id"]
        ]
        expected = speech_turns(t["lines"])
        assert len(expected) == len(t["lines"]) + sum(len(line["pauses"]) for line in t["lines"])
        assert [spk for _, _, spk in turns] == [spk for _, _, spk in expected]
        assert np.array([t[:2] for t in turns]) == pytest.approx(
            np.array([e[:2] for e in expected]), abs=1.5e-3
        )
        assert diarization_error(turns, turns, duration_s=t["duration_s"]).der == 0.0
    assert (out / "truth" / "all.rttm").read_text().count("SPEAKER") == sum(
        len(speech_turns(t["lines"])) for t in load_truth(out)
    )


def test_pauses_inside_lines_are_quiet_and_not_reference_speech(dramas):
    """A line's pauses of 0.3 s or more (between its sentences) are stored, lie inside the line,
    are quiet in the speech stem, and the reference turns leave them out."""
    out, _ = dramas
    found = 0
    for t in load_truth(out):
        sr = t["sample_rate"]
        speech = load_audio(out / t["stems"]["speech"])[0]
        for line in t["lines"]:
            loud = np.percentile(
                frame_dbfs(speech[int(line["start_s"] * sr) : int(line["end_s"] * sr)], sr), 95
            )
            for a, b in line["pauses"]:
                found += 1
                assert line["start_s"] < a < b < line["end_s"] and b - a >= 0.3 - 1e-6
                quiet = speech[int(a * sr) + 1 : int(b * sr) - 1]
                # another speaker may talk over the pause (an interruption): only clean pauses are checked
                if not any(
                    o is not line and o["start_s"] < b and o["end_s"] > a for o in t["lines"]
                ):
                    assert 10 * np.log10(np.mean(quiet**2) + 1e-12) < loud - 20, line["line_id"]
            for start, end, _ in speech_turns([line]):
                assert not any(start < b and end > a for a, b in line["pauses"])
    assert found >= 3  # two-sentence lines pause between their sentences


def test_stems_sum_to_the_mix_at_the_intended_ratios(dramas):
    out, _ = dramas
    for t in load_truth(out):
        stems = {k: load_audio(out / v)[0].astype(np.float64) for k, v in t["stems"].items()}
        assert (
            np.abs(stems["speech"] + stems["music"] + stems["noise"] - stems["mix"]).max()
            < 3 / 32768
        )
        sr = t["sample_rate"]
        active = np.zeros(stems["speech"].size, bool)
        for line in t["lines"]:
            active[int(line["start_s"] * sr) : int(line["end_s"] * sr)] = True
        ratio = 10 * np.log10(
            np.mean(stems["speech"][active] ** 2) / np.mean(stems["music"][active] ** 2)
        )
        assert ratio == pytest.approx(t["speech_to_music_db"], abs=0.3)


def test_ground_truth_lines_up_with_the_audio(dramas):
    out, _ = dramas
    rises = []
    for t in load_truth(out):
        sr = t["sample_rate"]
        speech = load_audio(out / t["stems"]["speech"])[0]
        mix = load_audio(out / t["stems"]["mix"])[0]
        inside = np.zeros(speech.size, bool)
        for line in t["lines"]:
            a, b = int(round(line["start_s"] * sr)), int(round(line["end_s"] * sr))
            inside[a:b] = True
            # a GT span holds no silent padding: the generator trims each line to its active frames (within
            # ACTIVE_REL_DB of the line's loud frames), so its first and last 50 ms are within that of the
            # loud frames (3 dB slack: half of an edge window may be the fading last frame)
            loud = np.percentile(frame_dbfs(speech[a:b], sr), 95)
            w = int(0.05 * sr)
            assert 10 * np.log10(np.mean(speech[a : a + w] ** 2)) > loud - ACTIVE_REL_DB - 3, line[
                "line_id"
            ]
            assert 10 * np.log10(np.mean(speech[b - w : b] ** 2)) > loud - ACTIVE_REL_DB - 3, line[
                "line_id"
            ]
        assert np.abs(speech[~inside]).max() < 1e-4  # nothing outside the GT spans
        inside_db = 10 * np.log10(np.mean(speech[inside] ** 2))
        assert inside_db > -40
        # the mix gets louder where a line starts after a pause
        for prev, line in zip(t["lines"], t["lines"][1:]):
            if line["start_s"] - prev["end_s"] >= 0.3:
                a, w = int(line["start_s"] * sr), int(0.25 * sr)
                rises.append(
                    10 * np.log10(np.mean(mix[a : a + w] ** 2) / np.mean(mix[a - w : a] ** 2))
                )
    assert len(rises) >= 5
    assert np.median(rises) > 3.0, rises


def test_mp4_holds_video_and_the_mix(dramas):
    out, _ = dramas
    t = load_truth(out)[0]
    video = out / t["video"]
    streams = {s["codec_type"]: s for s in ffprobe(video)["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    decoded, sr = load_audio(video, sample_rate=t["sample_rate"])
    mix = load_audio(out / t["stems"]["mix"])[0]
    assert abs(decoded.size - mix.size) < 0.01 * mix.size
    assert si_sdr(decoded[: mix.size], mix[: decoded.size]) > 20  # AAC at 128 kb/s, aligned


@pytest.mark.parametrize("seconds", [DURATION, 12.0])
def test_spectrogram_png(dramas, artifacts_dir, tmp_path, closed_figures, seconds):
    """The picture shows this episode: a spectrogram over the plotted span, the mix and speech
    levels, and one ground-truth bar per line in its speaker's lane, where the line is."""
    from matplotlib.image import imread

    figures = closed_figures
    out, _ = dramas
    t = load_truth(out)[2]  # the 5 dB speech-to-music episode: the hardest to hear
    folder = artifacts_dir if seconds == DURATION else tmp_path
    png = plot_episode(out, t, folder / "synth_drama_episode.png", seconds=seconds)
    fig = figures[-1]
    ax_spec, ax_env, ax_gt = fig.axes
    (mesh,) = ax_spec.collections
    assert mesh.get_array().ndim == 2 and ax_spec.get_ylim()[1] <= 8.1  # kHz, up to 8 kHz
    assert ax_gt.get_xlim() == (0, seconds)
    shown = [line for line in t["lines"] if line["start_s"] < seconds]
    assert 0 < len(shown) <= len(t["lines"]) and (seconds < DURATION) == (shown != t["lines"])
    speakers = [s["speaker_id"] for s in t["speakers"]]
    bars = sorted(ax_gt.patches, key=lambda b: b.get_x())
    assert len(bars) == len(shown)
    for bar, line in zip(bars, sorted(shown, key=lambda x: x["start_s"])):
        assert bar.get_x() == pytest.approx(line["start_s"])
        assert bar.get_width() == pytest.approx(min(line["end_s"], seconds) - line["start_s"])
        assert bar.get_y() + bar.get_height() / 2 == speakers.index(line["speaker_id"])
    assert [x.get_text().split()[0] for x in ax_gt.get_yticklabels()] == speakers
    assert len(ax_spec.get_lines()) == len(shown)  # a line-start marker per line
    # the level panel: the speech stem is loud inside the ground-truth lines, silent outside
    levels = {line.get_label(): line for line in ax_env.get_lines()}
    assert set(levels) == {"mix", "speech stem"}
    time = levels["speech stem"].get_xdata()
    assert time[-1] == pytest.approx(seconds, abs=0.05)
    inside = np.zeros(len(time), bool)
    for line in shown:
        inside |= (time >= line["start_s"] + 0.1) & (time <= line["end_s"] - 0.1)
    speech = levels["speech stem"].get_ydata()
    # measured: median -34.0 dBFS inside the lines (-33.2 in the first 12 s), -100 outside (the
    # stem is digital silence between lines)
    assert np.median(speech[inside]) > np.median(speech[~inside]) + 30
    image = imread(png)
    height, width = image.shape[:2]
    assert height >= 300 and width / height == pytest.approx(
        fig.get_figwidth() / fig.get_figheight(), rel=0.01
    )
    assert image[..., :3].std() > 0.05  # not one flat colour


def test_same_seed_same_bytes_and_resume(dramas, tmp_path):
    out, _ = dramas
    again = generate_dramas(tmp_path, dramas=1, episodes=1, seed=4, duration_s=DURATION, workers=0)
    for rel in (
        "videos/drama01/drama01_ep001.mp4",
        "truth/drama01/drama01_ep001/episode.json",
        "truth/drama01/drama01_ep001/speech.flac",
        "truth/drama01/drama01_ep001/mix.flac",
    ):
        assert sha(out / rel) == sha(tmp_path / rel), rel
    resumed = generate_dramas(
        tmp_path, dramas=1, episodes=1, seed=4, duration_s=DURATION, workers=0
    )
    assert resumed.reused == 1
    assert again.episodes == resumed.episodes
    with pytest.raises(FsclapError, match="seed=4 \\(now 5\\)"):
        generate_dramas(tmp_path, dramas=1, episodes=1, seed=5, duration_s=DURATION, workers=0)


def test_a_failing_episode_is_recorded(tmp_path, monkeypatch):
    import pipeline.synth.drama as drama

    real = drama._encode_mp4

    def flaky(audio, sr, path, pattern):
        if path.name.startswith("drama01_ep002"):
            raise FsclapError("ffmpeg could not encode: simulated")
        return real(audio, sr, path, pattern)

    monkeypatch.setattr(drama, "_encode_mp4", flaky)
    result = generate_dramas(tmp_path, dramas=1, episodes=2, seed=1, duration_s=8, workers=0)
    assert [e["episode_id"] for e in result.episodes] == ["drama01_ep001"]
    assert "simulated" in pd.read_csv(tmp_path / "truth" / "failures.csv")["error"].iloc[0]
    assert yaml.safe_load((tmp_path / "sources.yaml").read_text())["min_episodes"] == 1


def test_served_over_loopback_http_and_downloadable_by_ytdlp(dramas, tmp_path):
    out, _ = dramas
    with serving(out) as (base, requests):
        served = yaml.safe_load(write_served_sources(out, base, tmp_path / "http.yaml").read_text())
        url = served["dramas"][0]["urls"][0]
        assert url.startswith("http://127.0.0.1:") and url.endswith("drama01_ep001.mp4")
        head = urllib.request.urlopen(urllib.request.Request(url, method="HEAD"))
        size = int(head.headers["Content-Length"])
        assert (
            head.headers["Content-Type"] == "video/mp4" and head.headers["Accept-Ranges"] == "bytes"
        )
        part = urllib.request.urlopen(
            urllib.request.Request(url, headers={"Range": "bytes=100-199"})
        )
        assert part.status == 206 and part.headers["Content-Range"] == f"bytes 100-199/{size}"
        assert part.read() == (out / "videos/drama01/drama01_ep001.mp4").read_bytes()[100:200]
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(
                urllib.request.Request(url, headers={"Range": f"bytes={size + 5}-"})
            )
        assert err.value.code == 416
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "yt_dlp",
                "--no-progress",
                "--no-playlist",
                "-o",
                str(tmp_path / "dl" / "%(id)s.%(ext)s"),
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-500:]
        assert any(r.startswith("GET /videos/drama01/drama01_ep001.mp4") for r in requests)
    assert sha(tmp_path / "dl" / "drama01_ep001.mp4") == sha(
        out / "videos/drama01/drama01_ep001.mp4"
    )


def test_cli_writes_dramas(tmp_path, capsys):
    assert (
        main(
            [
                "synth",
                "drama",
                "--out",
                str(tmp_path),
                "--dramas",
                "1",
                "--episodes",
                "1",
                "--seed",
                "3",
                "--duration",
                "8",
            ]
        )
        == 0
    )
    assert "1 episodes" in capsys.readouterr().out
    assert json.loads((tmp_path / "truth/drama01/drama01_ep001/episode.json").read_text())["lines"]
