"""``fsclap synth drama``: short-drama episodes with recurring speakers and exact ground truth.

Each drama has 2-4 speakers by default (``speakers=(lo, hi)`` sets the range; one synthetic voice
each, the same in every episode, at least one female and one male), drawn from one voice family
(``train``: the espeak-ng voices fsclap tunes on; ``test``: the held-out neural voices; ``all``), and
a musical theme. A voice speaks its own language (Kokoro voices Japanese, the others English).
An episode is a script of alternating lines, each in its own style (gender of the voice;
pitch/speed/energy levels and a nominal emotion, see ``style.py``); with ``restyle`` a share of the
lines is also pitch-shifted afterwards, formants included (see ``render_restyled``). Lines are
separated by gaps and sometimes overlap the previous line (an interruption). Speech is mixed
with the drama's procedural music at one of a few speech-to-music ratios and with room noise, then
packed as an MP4 (a test-pattern picture + AAC audio) that the corpus builder acquires like any
downloaded episode.

Layout of ``DIR``::

    sources.yaml                          # Sources contract; relative paths to the videos
    videos/<drama>/<episode>.mp4
    truth/<drama>/<episode>/episode.json  # speakers, lines (start, end, text, labels, measurements)
    truth/<drama>/<episode>/episode.rttm  # diarization reference (file id = episode id)
    truth/<drama>/<episode>/{speech,music,noise,mix}.flac   # stems: mix = speech + music + noise
    truth/lines.parquet, truth/episodes.parquet, truth/all.rttm
    README.md

Line times are exact: each line is trimmed to its first/last active 10 ms frame before it is
placed, and the stems are summed sample for sample. A line's pauses of at least
``REFERENCE_PAUSE_S`` (between its sentences or phrases) are stored with it (``pauses``) and are
not speech in the reference (``episode.rttm`` has one turn per stretch of speech): NIST's rich
transcription evaluations bridge shorter pauses only, and a speech detector rightly leaves longer
ones out. Everything is a pure function of the seed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import yaml

from fsclap.acoustics import measure, pauses, trim_bounds
from fsclap.audio import write_audio
from fsclap.caption_writer import CaptionWriter
from fsclap.errors import FsclapError
from fsclap.io import atomic_path, write_json, write_table, write_text
from fsclap.log import get_logger, progress
from pipeline.synth.music import MusicStyle, make_music, make_noise
from pipeline.synth.sentences import ADJECTIVES, NOUNS, PLACES, distinct_sentences, make_sentence
from pipeline.synth.state import claim_folder
from pipeline.synth.style import (
    STYLE_EMOTIONS,
    StyleTargets,
    Utterance,
    draw_levels,
    draw_relative_targets,
    draw_targets,
    render,
    render_relative,
    voice_normal,
)
from pipeline.synth.voices import Voice, check_tools, sox_effects, voice_catalogue

log = get_logger("pipeline.synth.drama")

DRAMA_SAMPLE_RATE = 44100
GENERATOR_VERSION = 1
REFERENCE_PAUSE_S = 0.3
STATE_FILE = "drama_corpus.json"
SPEECH_TO_MUSIC_DB = (15.0, 10.0, 5.0)  # cycled over a drama's episodes
SPEECH_TO_NOISE_DB = (30.0, 20.0)
OVERLAP_PROBABILITY = 0.15
# A restyled line is synthesised off-pitch and shifted back by SoX ``pitch`` (which moves the formants
# with F0, as post-hoc restyling of a neural voice does): the line's timbre drifts from the speaker's.
RESTYLE_SEMITONES = (2.0, 5.0)
VIDEO_PATTERNS = ("testsrc2", "smptehdbars", "testsrc", "rgbtestsrc")
VIDEO_SIZE, VIDEO_FPS = "320x180", 10
PEAK = 0.89
VOICE_FAMILIES = ("train", "test", "all")
DEFAULT_SPEAKERS = (2, 4)


@dataclass(frozen=True)
class Speaker:
    speaker_id: str  # drama-level id, e.g. "drama01_spk2"
    voice: Voice
    temperament: str  # the emotion this character falls back to most often


@dataclass(frozen=True)
class Drama:
    drama_id: str
    title: str
    speakers: tuple[Speaker, ...]
    music: MusicStyle
    pattern: str
    restyle_share: float = (
        0.0  # share of lines whose pitch is partly moved afterwards, formants included
    )


@dataclass
class DramaCorpusResult:
    out_dir: Path
    sources_path: Path
    episodes: list[dict]
    seconds: float
    failed: list[dict] = field(default_factory=list)
    reused: int = 0

    @property
    def audio_seconds(self) -> float:
        return float(sum(e["duration_s"] for e in self.episodes))

    def summary(self) -> str:
        lines = sum(e["lines"] for e in self.episodes)
        per_min = self.seconds / (self.audio_seconds / 60) if self.audio_seconds else float("nan")
        return (
            f"{len(self.episodes)} episodes ({self.audio_seconds:.0f} s of audio, {lines} lines) in "
            f"{self.seconds:.1f} s = {per_min:.1f} s per minute of episode"
            f"{f'; {self.reused} reused' if self.reused else ''}"
            f"{f'; {len(self.failed)} failed (see truth/failures.csv)' if self.failed else ''} -> {self.sources_path}"
        )


def parse_speaker_range(text: str) -> tuple[int, int]:
    """``"3-6"`` -> (3, 6); ``"4"`` -> (4, 4)."""
    parts = str(text).strip().split("-")
    try:
        lo, hi = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (None, None)
    except ValueError:
        lo = hi = None
    if lo is None:
        raise FsclapError(
            f"--speakers must be a number or a range lo-hi such as 3-6 (got {text!r})"
        )
    return lo, hi


def family_voices(family: str) -> list[Voice]:
    """The voices of one family (``train`` | ``test`` | ``all``), in the catalogue's fixed order."""
    if family not in VOICE_FAMILIES:
        raise FsclapError(
            f"voice family must be one of {', '.join(VOICE_FAMILIES)} (got {family!r})"
        )
    return voice_catalogue(family=family)


def voice_language(voice: Voice) -> str:
    """The language a voice's lines are written in (Kokoro's voices speak Japanese)."""
    return voice.sentence_language


def line_text(rng: random.Random, language: str) -> str:
    if language == "en":  # the historical draw, so that English dramas keep their seeds' bytes
        return make_sentence(rng) + (" " + make_sentence(rng) if rng.random() < 0.25 else "")
    return distinct_sentences(rng, 1, language=language)[0]


def plan_dramas(
    n_dramas: int,
    seed: int,
    family: str = "train",
    speakers: tuple[int, int] = DEFAULT_SPEAKERS,
    restyle: float = 0.0,
) -> list[Drama]:
    """Casts and themes; drama ``d`` does not depend on ``n_dramas``."""
    lo, hi = speakers
    if not 0.0 <= restyle <= 1.0:
        raise FsclapError(f"restyle share must be within 0-1 (got {restyle})")
    if not 2 <= lo <= hi:
        raise FsclapError(
            f"speakers per drama must be a range lo-hi with 2 <= lo <= hi (got {lo}-{hi})"
        )
    voices = family_voices(family)
    pools = {g: [v for v in voices if v.gender == g] for g in ("female", "male")}
    if not pools["female"] or not pools["male"] or hi > len(voices):
        raise FsclapError(
            f"voice family {family!r} has {len(pools['female'])} female and {len(pools['male'])} male "
            f"voices: not enough for {hi} speakers of both genders"
        )
    dramas = []
    for d in range(n_dramas):
        rng = random.Random(f"drama|{seed}|{d}")
        n_speakers = (
            rng.choice((2, 3, 3, 4)) if (lo, hi) == DEFAULT_SPEAKERS else rng.randint(lo, hi)
        )
        female = rng.sample(pools["female"], k=min(n_speakers, len(pools["female"])))
        male = rng.sample(pools["male"], k=min(n_speakers, len(pools["male"])))
        genders = ["female", "male"]
        for _ in range(n_speakers - 2):
            room = [
                g
                for g, pick in (("female", female), ("male", male))
                if genders.count(g) < len(pick)
            ]
            genders.append(rng.choice(("female", "male")) if len(room) == 2 else room[0])
        rng.shuffle(genders)
        cast, picks = [], {"female": iter(female), "male": iter(male)}
        drama_id = f"drama{d + 1:02d}"
        for k, gender in enumerate(genders):
            cast.append(
                Speaker(f"{drama_id}_spk{k + 1}", next(picks[gender]), rng.choice(STYLE_EMOTIONS))
            )
        title = f"The {rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS).title()} at {rng.choice(PLACES).title()}"
        music = MusicStyle.draw(np.random.default_rng(rng.getrandbits(63)))
        dramas.append(
            Drama(
                drama_id,
                title,
                tuple(cast),
                music,
                VIDEO_PATTERNS[d % len(VIDEO_PATTERNS)],
                restyle,
            )
        )
    return dramas


def episode_id(drama: Drama, index: int) -> str:
    return f"{drama.drama_id}_ep{index + 1:03d}"


@dataclass
class _Placed:
    speaker: Speaker
    utterance: Utterance
    start_s: float
    overlaps_previous: bool
    truncated: bool = False
    restyle_semitones: float = 0.0


def _script(drama: Drama, index: int, seed: int, duration_s: float, sr: int) -> list[_Placed]:
    """Render the lines of one episode and place them on the timeline."""
    rng = random.Random(f"episode|{seed}|{drama.drama_id}|{index}")
    lines: list[_Placed] = []
    cursor = rng.uniform(1.0, 2.5)  # music-only intro
    previous: Speaker | None = None
    prev_start = prev_end = 0.0
    misses = 0
    while True:
        choices = [s for s in drama.speakers if s is not previous] or list(drama.speakers)
        speaker = rng.choice(choices)
        emotion = speaker.temperament if rng.random() < 0.5 else rng.choice(STYLE_EMOTIONS)
        levels = draw_levels(rng, speaker.voice.gender, emotion)
        targets = line_targets(rng, speaker.voice, levels)
        text = line_text(rng, voice_language(speaker.voice))
        overlap = bool(lines) and rng.random() < OVERLAP_PROBABILITY and prev_end - prev_start > 1.2
        gap = (
            -rng.uniform(0.3, min(0.8, (prev_end - prev_start) / 2))
            if overlap
            else rng.uniform(0.15, 1.2)
        )
        # a separate generator, so that dramas without restyling stay the same bytes
        restyle_rng = random.Random(
            f"restyle|{seed}|{drama.drama_id}|{index}|{len(lines)}|{misses}"
        )
        shift = (
            restyle_shift(restyle_rng, levels.pitch)
            if restyle_rng.random() < drama.restyle_share
            else 0.0
        )
        utt = render_restyled(speaker.voice, text, levels, targets, sr, shift)
        start = round(cursor + gap if lines else cursor, 3)
        length = utt.audio.size / sr
        truncated = False
        if start + length > duration_s - 0.8:
            misses += 1
            if misses < 4:
                continue  # try another (shorter) line before ending the episode
            if lines:
                break
            # an episode too short for any whole line: keep the first line's beginning, measured as cut
            utt.audio = utt.audio[: max(int(0.2 * sr), int((duration_s - 0.8 - start) * sr))]
            utt.acoustics = measure(utt.audio, sr)
            length, truncated = utt.audio.size / sr, True
        misses = 0
        lines.append(_Placed(speaker, utt, start, overlap, truncated, shift))
        previous, prev_start, prev_end = speaker, start, start + length
        cursor = max(cursor, prev_end) if overlap else prev_end
        if start + length > duration_s - 1.5:
            break
    return lines


def restyle_shift(rng: random.Random, pitch_level: str) -> float:
    """Semitones a restyled line is moved afterwards: towards its pitch level (either way for normal)."""
    size = rng.uniform(*RESTYLE_SEMITONES)
    sign = {"high": 1.0, "low": -1.0}.get(pitch_level) or rng.choice((-1.0, 1.0))
    return round(sign * size, 2)


def line_targets(rng: random.Random, voice: Voice, levels) -> StyleTargets:
    """Targets of one line. espeak-ng voices hit the style generator's absolute bands; the held-out
    engines get their levels relative to the voice's own normal (as ``fsclap synth style`` does for
    them): the bands are in English syllables/s, which Japanese morae would turn into crawling speech."""
    if voice.engine == "espeak":
        return draw_targets(rng, levels)
    return draw_relative_targets(rng, levels, voice_normal(voice))


def _render(voice: Voice, text: str, levels, targets: StyleTargets, sr: int) -> Utterance:
    if targets.semitones is not None:
        return render_relative(voice, text, levels, targets, sr, pad_s=0.0)
    return render(voice, text, levels, targets, sr, pad_s=0.0)


def render_restyled(
    voice: Voice, text: str, levels, targets: StyleTargets, sr: int, shift: float
) -> Utterance:
    """:func:`render`, or for ``shift != 0`` rendered ``shift`` semitones off target and moved onto it
    by SoX ``pitch`` (formants move too); the labels and measurements stay those of the final audio."""
    if not shift:
        return _render(voice, text, levels, targets, sr)
    off_target = replace(targets, f0_hz=targets.f0_hz * 2 ** (-shift / 12))
    if targets.semitones is not None:
        off_target = replace(off_target, semitones=targets.semitones - shift)
    utt = _render(voice, text, levels, off_target, sr)
    moved = sox_effects(utt.audio, sr, ["pitch", str(int(round(shift * 100)))])
    start, end = trim_bounds(moved, sr)
    utt.audio = moved[start:end] if end > start else moved
    utt.targets = targets
    utt.params = {**utt.params, "restyle_semitones": shift}
    utt.acoustics = measure(utt.audio, sr, text)
    return utt


def build_episode(
    drama: Drama,
    index: int,
    seed: int,
    duration_s: float,
    out_dir: Path,
    sr: int = DRAMA_SAMPLE_RATE,
) -> dict:
    """Write one episode (video, stems, ground truth); reuse it if a finished one is on disk."""
    ep_id = episode_id(drama, index)
    truth_dir = out_dir / "truth" / drama.drama_id / ep_id
    video = out_dir / "videos" / drama.drama_id / f"{ep_id}.mp4"
    if (truth_dir / "episode.json").is_file() and video.is_file():
        info = json.loads((truth_dir / "episode.json").read_text())
        return {**_episode_row(info), "reused": True}
    n = int(round(duration_s * sr))
    speech = np.zeros(n)
    script = _script(drama, index, seed, duration_s, sr)
    for line in script:
        a = int(round(line.start_s * sr))
        speech[a : a + line.utterance.audio.size] += line.utterance.audio[: n - a]
    mix_rng = np.random.default_rng(
        random.Random(f"mix|{seed}|{drama.drama_id}|{index}").getrandbits(63)
    )
    music = make_music(duration_s, sr, drama.music, mix_rng).astype(np.float64)
    noise = make_noise(duration_s, sr, mix_rng).astype(np.float64)
    smr = SPEECH_TO_MUSIC_DB[index % len(SPEECH_TO_MUSIC_DB)]
    snr = SPEECH_TO_NOISE_DB[(index // len(SPEECH_TO_MUSIC_DB)) % len(SPEECH_TO_NOISE_DB)]
    active = np.zeros(n, dtype=bool)
    for line in script:
        a = int(round(line.start_s * sr))
        active[a : a + line.utterance.audio.size] = True
    speech_power = np.mean(speech[active] ** 2)
    # levels are set where the speech is, so the ratios are the ones a listener faces during dialogue
    music *= np.sqrt(speech_power / (np.mean(music[active] ** 2) * 10 ** (smr / 10)))
    noise *= np.sqrt(speech_power / (np.mean(noise[active] ** 2) * 10 ** (snr / 10)))
    mix = speech + music + noise
    scale = min(1.0, PEAK / np.abs(mix).max())
    stems = {"speech": speech * scale, "music": music * scale, "noise": noise * scale}
    stems["mix"] = stems["speech"] + stems["music"] + stems["noise"]
    gain_db = 20 * np.log10(scale)
    for name, audio in stems.items():
        write_audio(truth_dir / f"{name}.flac", audio.astype(np.float32), sr, subtype="PCM_16")
    _encode_mp4(stems["mix"].astype(np.float32), sr, video, drama.pattern)
    writer_en, writer_zh = CaptionWriter("en", seed), CaptionWriter("zh", seed)
    lines = []
    for k, placed in enumerate(script):
        speaker, utt, start = placed.speaker, placed.utterance, placed.start_s
        got = utt.acoustics
        line_id = f"{ep_id}_line{k + 1:03d}"
        labels = utt.levels.as_dict()
        lines.append(
            {
                "line_id": line_id,
                "speaker_id": speaker.speaker_id,
                "voice_id": speaker.voice.voice_id,
                "start_s": start,
                "end_s": round(start + utt.audio.size / sr, 6),
                "pauses": [
                    [round(start + a, 6), round(start + b, 6)]
                    for a, b in pauses(utt.audio, sr, REFERENCE_PAUSE_S)
                ],
                "text": utt.text,
                **labels,
                "emotion_nominal": True,
                "overlaps_previous": placed.overlaps_previous,
                "truncated": placed.truncated,
                "restyle_semitones": placed.restyle_semitones,
                "f0_median_hz": got.f0_median_hz,
                "f0_range_semitones": got.f0_range_semitones,
                "speech_rate": got.speech_rate,
                "rms_dbfs": got.rms_dbfs + gain_db,
                "caption": writer_en.write(labels, key=line_id),
                "caption_zh": writer_zh.write(labels, key=line_id),
            }
        )
    info = {
        "episode_id": ep_id,
        "drama_id": drama.drama_id,
        "title": f"{drama.title}, episode {index + 1}",
        "episode_index": index + 1,
        "duration_s": duration_s,
        "sample_rate": sr,
        "video": str(video.relative_to(out_dir)),
        "speech_to_music_db": smr,
        "speech_to_noise_db": snr,
        "speakers": [
            {
                "speaker_id": s.speaker_id,
                "voice_id": s.voice.voice_id,
                "voice": s.voice.description,
                "gender": s.voice.gender,
                "language": voice_language(s.voice),
            }
            for s in drama.speakers
        ],
        "lines": lines,
        "stems": {name: str((truth_dir / f"{name}.flac").relative_to(out_dir)) for name in stems},
        "generator": {"name": "fsclap synth drama", "version": GENERATOR_VERSION, "seed": seed},
        "notes": "emotion labels are nominal prosody recipes (synthesis cannot act)",
    }
    write_text(truth_dir / "episode.rttm", rttm_lines(ep_id, lines))
    write_json(truth_dir / "episode.json", info)  # written last: marks the episode finished
    return {**_episode_row(info), "reused": False}


def speech_turns(lines: list[dict]) -> list[tuple[float, float, str]]:
    """``(start_s, end_s, speaker_id)`` of every stretch of speech: each line without its
    ``pauses`` (a line written before they were stored is one turn), in time order."""
    turns = []
    for line in lines:
        start = line["start_s"]
        for a, b in line.get("pauses") or []:
            turns.append((start, a, line["speaker_id"]))
            start = b
        turns.append((start, line["end_s"], line["speaker_id"]))
    return sorted(turns, key=lambda t: (t[0], t[2]))


def rttm_lines(file_id: str, lines: list[dict]) -> str:
    """NIST RTTM: ``SPEAKER <file> 1 <onset> <duration> <NA> <NA> <speaker> <NA> <NA>``, one row per
    :func:`speech_turns` turn."""
    return "".join(
        f"SPEAKER {file_id} 1 {start:.3f} {end - start:.3f} <NA> <NA> {speaker} <NA> <NA>\n"
        for start, end, speaker in speech_turns(lines)
    )


def _episode_row(info: dict) -> dict:
    return {
        "episode_id": info["episode_id"],
        "drama_id": info["drama_id"],
        "title": info["title"],
        "video": info["video"],
        "duration_s": info["duration_s"],
        "lines": len(info["lines"]),
        "speakers": len(info["speakers"]),
        "speech_to_music_db": info["speech_to_music_db"],
        "speech_to_noise_db": info["speech_to_noise_db"],
    }


def _encode_mp4(audio: np.ndarray, sr: int, path: Path, pattern: str) -> None:
    """Test-pattern video + AAC audio; single-threaded and bitexact so the bytes depend on the seed only."""
    if shutil.which("ffmpeg") is None:
        raise FsclapError("ffmpeg not found: install it (make setup, or apt-get install ffmpeg)")
    duration = audio.size / sr
    with atomic_path(path) as tmp:
        cmd = [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"{pattern}=size={VIDEO_SIZE}:rate={VIDEO_FPS}",
            "-f",
            "f32le",
            "-ar",
            str(sr),
            "-ac",
            "1",
            "-i",
            "pipe:0",
            "-t",
            f"{duration:.3f}",
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-threads",
            "1",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-map_metadata",
            "-1",
            "-fflags",
            "+bitexact",
            "-flags:v",
            "+bitexact",
            "-flags:a",
            "+bitexact",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            str(tmp),
        ]
        proc = subprocess.run(cmd, input=audio.astype("<f4").tobytes(), capture_output=True)
        if proc.returncode != 0:
            reason = (
                proc.stderr.decode(errors="replace").strip().splitlines() or ["unknown error"]
            )[-1]
            raise FsclapError(f"ffmpeg could not encode {path.name}: {reason}")


def _build(args: tuple) -> dict:
    drama, index, seed, duration_s, out_dir = args
    try:
        return build_episode(drama, index, seed, duration_s, Path(out_dir))
    except Exception as exc:  # one bad episode must not stop the others
        return {
            "episode_id": episode_id(drama, index),
            "failed": True,
            "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
        }


def generate_dramas(
    out_dir: str | Path,
    dramas: int = 1,
    episodes: int = 3,
    seed: int = 0,
    duration_s: float = 60.0,
    workers: int = 2,
    family: str = "train",
    speakers: tuple[int, int] = DEFAULT_SPEAKERS,
    restyle: float = 0.0,
) -> DramaCorpusResult:
    """Write ``dramas`` x ``episodes`` episodes, their ground truth and ``sources.yaml`` under ``out_dir``."""
    if dramas < 1 or episodes < 1:
        raise FsclapError("--dramas and --episodes must be at least 1")
    if duration_s < 5:
        raise FsclapError(f"episode duration must be at least 5 s (got {duration_s})")
    speakers = (int(speakers[0]), int(speakers[1]))
    plans = plan_dramas(dramas, seed, family, speakers, restyle)  # checks the options first
    check_tools()
    out_dir = Path(out_dir)
    settings = {
        "generator": "fsclap synth drama",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "duration_s": duration_s,
        "sample_rate": DRAMA_SAMPLE_RATE,
    }
    # recorded only when not the defaults, so folders made before these options still resume
    cast = {"family": family, "speakers": list(speakers), "restyle": restyle}
    state = out_dir / STATE_FILE
    have = json.loads(state.read_text()) if state.is_file() else None
    defaults = {"family": "train", "speakers": list(DEFAULT_SPEAKERS), "restyle": 0.0}
    for key, default in defaults.items():
        if have is not None and have.get(key, default) != cast[key]:
            raise FsclapError(
                f"{out_dir} holds dramas made with other settings: {key}={have.get(key, default)} "
                f"(now {cast[key]}); use another --out folder or delete it"
            )
    if cast != defaults:
        settings.update(cast)
    claim_folder(out_dir, STATE_FILE, settings, "dramas")
    start = time.perf_counter()
    jobs = [(d, e, seed, duration_s, str(out_dir)) for d in plans for e in range(episodes)]
    if workers <= 1:
        rows = [_build(j) for j in progress(jobs, desc="episodes", total=len(jobs), unit="episode")]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = list(
                progress(pool.map(_build, jobs), desc="episodes", total=len(jobs), unit="episode")
            )
    failed = [r for r in rows if r.get("failed")]
    done = [r for r in rows if not r.get("failed")]
    for row in failed:
        log.warning("episode %s failed: %s", row["episode_id"], row["error"])
    if not done:
        raise FsclapError(f"no episode could be generated; first error: {failed[0]['error']}")
    reused = sum(r.pop("reused") for r in done)
    truth = out_dir / "truth"
    _write_tables(out_dir, done)
    if failed:
        write_table(
            truth / "failures.csv",
            pd.DataFrame(failed)[["episode_id", "error"]].assign(stage="synth-drama"),
        )
    elif (truth / "failures.csv").exists():
        (truth / "failures.csv").unlink()
    sources_path = write_sources(out_dir, plans, done)
    write_text(out_dir / "README.md", _data_card(plans, done, seed, duration_s))
    return DramaCorpusResult(
        out_dir, sources_path, done, time.perf_counter() - start, failed, reused
    )


def load_truth(out_dir: str | Path) -> list[dict]:
    """Every finished episode's ground truth (the parsed ``episode.json`` files), in episode order."""
    return [
        json.loads(p.read_text()) for p in sorted(Path(out_dir, "truth").glob("*/*/episode.json"))
    ]


def _write_tables(out_dir: Path, done: list[dict]) -> None:
    infos = [
        json.loads(
            (out_dir / "truth" / r["drama_id"] / r["episode_id"] / "episode.json").read_text()
        )
        for r in done
    ]
    lines = pd.DataFrame(
        [
            {"episode_id": i["episode_id"], "drama_id": i["drama_id"], **line}
            for i in infos
            for line in i["lines"]
        ]
    )
    write_table(out_dir / "truth" / "lines.parquet", lines)
    write_table(out_dir / "truth" / "episodes.parquet", pd.DataFrame(done))
    write_text(
        out_dir / "truth" / "all.rttm",
        "".join(rttm_lines(i["episode_id"], i["lines"]) for i in infos),
    )


def sources_document(plans: list[Drama], done: list[dict], url_for) -> dict:
    """The sources file (contract in docs/design.md) for the finished episodes;
    ``url_for(video_rel_path) -> url``."""
    by_drama: dict[str, list[str]] = {}
    for row in sorted(done, key=lambda r: r["episode_id"]):
        by_drama.setdefault(row["drama_id"], []).append(url_for(row["video"]))
    counts = [len(v) for v in by_drama.values()]
    return {
        "min_episodes": min(counts),
        "dramas": [
            {
                "id": d.drama_id,
                "title": d.title,
                "language": "+".join(sorted({voice_language(s.voice) for s in d.speakers})),
                "licence": "generated by fsclap synth drama (no rights reserved)",
                "urls": by_drama[d.drama_id],
            }
            for d in plans
            if d.drama_id in by_drama
        ],
    }


def write_sources(
    out_dir: Path, plans: list[Drama], done: list[dict], path: Path | None = None
) -> Path:
    """Write the sources YAML with the videos' paths relative to the YAML's folder (relocatable)."""
    path = Path(path) if path else out_dir / "sources.yaml"
    base = path.parent.resolve()
    doc = sources_document(plans, done, lambda rel: os.path.relpath(out_dir.resolve() / rel, base))
    return _write_yaml(path, doc)


def write_served_sources(
    out_dir: str | Path, base_url: str, path: str | Path | None = None
) -> Path:
    """A copy of ``out_dir/sources.yaml`` whose URLs point at ``out_dir`` served under ``base_url``
    (see :func:`pipeline.synth.serve.serve_directory`); default path ``out_dir/sources.http.yaml``."""
    out_dir = Path(out_dir).resolve()
    local = out_dir / "sources.yaml"
    if not local.is_file():
        raise FsclapError(f"{out_dir} holds no generated dramas (run fsclap synth drama first)")
    doc = yaml.safe_load(local.read_text(encoding="utf-8"))
    for drama in doc["dramas"]:
        drama["urls"] = [
            f"{base_url.rstrip('/')}/{quote(Path(os.path.normpath(out_dir / u)).relative_to(out_dir).as_posix())}"
            for u in drama["urls"]
        ]
    return _write_yaml(Path(path) if path else out_dir / "sources.http.yaml", doc)


def _write_yaml(path: Path, doc: dict) -> Path:
    header = (
        "# Generated by fsclap synth drama: episodes with exact ground truth under truth/.\n"
        "# min_episodes is the number of episodes generated per drama.\n"
    )
    write_text(path, header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def _data_card(plans: list[Drama], done: list[dict], seed: int, duration_s: float) -> str:
    cast = "\n".join(
        f'- {d.drama_id} "{d.title}": '
        + ", ".join(f"{s.speaker_id} ({s.voice.gender}, {s.voice.description})" for s in d.speakers)
        for d in plans
    )
    return f"""# Generated short dramas (fsclap synth drama)

{len(done)} episodes of {duration_s:.0f} s, {len(plans)} dramas, seed {seed}. Videos: `videos/` (MP4: test-pattern
picture, {DRAMA_SAMPLE_RATE} Hz mono AAC). `sources.yaml` lists them, following the sources-file
contract in docs/design.md of fsclap.

Ground truth in `truth/<drama>/<episode>/`: `episode.json` (speakers; lines with start/end in seconds,
text, intended gender/pitch/speed/energy and nominal emotion, measured F0/rate/level, captions),
`episode.rttm` (speaker turns), stems `speech.flac`, `music.flac`, `noise.flac` and `mix.flac`
(mix = speech + music + noise exactly; the MP4 carries the AAC-coded mix). Speech-to-music ratios
cycle over {list(SPEECH_TO_MUSIC_DB)} dB and speech-to-noise over {list(SPEECH_TO_NOISE_DB)} dB, measured
over the speech. About {OVERLAP_PROBABILITY:.0%} of lines start before the previous one ends.
Emotion labels are nominal prosody recipes: synthesis cannot act.

Casts:
{cast}
"""


__all__ = [
    "DEFAULT_SPEAKERS",
    "VOICE_FAMILIES",
    "Drama",
    "DramaCorpusResult",
    "Speaker",
    "build_episode",
    "family_voices",
    "generate_dramas",
    "load_truth",
    "plan_dramas",
    "rttm_lines",
    "speech_turns",
    "sources_document",
    "write_served_sources",
    "write_sources",
]
