"""lhotse ``CutSet`` export/import (``cuts.jsonl.gz``): one ``MonoCut`` per clip over a
``Recording`` of its audio file (absolute path), with one ``SupervisionSegment`` spanning the cut
(``start`` 0: supervision times are relative to the cut) that holds the transcript, speaker, gender
and speech language, and the caption and style levels in ``custom``.

Reading, each supervision is one clip; a relative recording source resolves against the working
directory (where lhotse opens it), then ``audio_root``. A supervision without a ``custom``
caption, a cut without supervisions and a missing or non-file source are problem rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from fsclap.io import atomic_path
from fsclap.manifest import ManifestError
from pipeline.formats.common import (
    ImportResult,
    absolute,
    import_result,
    label_for,
    level_columns,
    text_or_none,
)

FORMAT = "lhotse"
CUSTOM_COLUMNS = (
    "caption",
    "caption_en",
    "caption_zh",
    "caption_language",
    "split",
    "drama_id",
    "episode_id",
)
LEVELS = ("pitch", "speed", "energy", "emotion")  # in custom; gender is the supervision's own


def _value(row: dict, key: str):
    value = row.get(key)
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return None
    return value


def write_lhotse_cuts(frame: pd.DataFrame, out: str | Path) -> Path:
    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

    out = Path(out)
    cuts, recordings = [], {}
    for row in frame.to_dict("records"):
        path = absolute(row["audio_path"])
        rec_id = str(_value(row, "recording_id") or row["clip_id"])
        if (rec_id, path) not in recordings:
            try:  # lhotse reads the header: a missing or undecodable file is the clip's problem
                recordings[rec_id, path] = Recording.from_file(path, recording_id=rec_id)
            except Exception as exc:  # noqa: BLE001 - lhotse wraps every backend's error its own way
                reason = "not found" if not Path(path).is_file() else type(exc).__name__
                raise ManifestError(
                    f"cannot export clip {row['clip_id']}: its audio {path} is {reason} "
                    "(lhotse needs every recording's header; fix or drop the row)"
                ) from None
        recording = recordings[rec_id, path]
        start = float(_value(row, "start_s") or 0.0)
        end = _value(row, "end_s")
        stop = float(end) if end is not None else recording.duration
        duration = recording.duration if (start, end) == (0.0, None) else round(stop - start, 6)
        custom = {k: _value(row, k) for k in CUSTOM_COLUMNS if _value(row, k) is not None}
        for level in LEVELS:
            word = label_for(
                row, level, FORMAT, {"unknown": "unknown"} if level == "emotion" else {}
            )
            if word and _value(row, level) is not None:
                custom[level] = word
        supervision = SupervisionSegment(
            id=str(_value(row, "supervision_id") or row["clip_id"]),
            recording_id=recording.id,
            start=0.0,
            duration=duration,
            channel=0,
            text=_value(row, "text"),
            speaker=_value(row, "speaker_id"),
            gender=label_for(row, "gender", FORMAT, {"female": "F", "male": "M"}) or None,
            language=_value(row, "language"),
            custom=custom,
        )
        cuts.append(
            MonoCut(
                id=str(row["clip_id"]),
                start=start,
                duration=duration,
                channel=0,
                recording=recording,
                supervisions=[supervision],
            )
        )
    suffix = "".join(out.suffixes) or ".jsonl.gz"
    with atomic_path(out) as tmp:
        target = tmp.with_name(tmp.name + suffix)  # lhotse picks the compression from the suffix
        CutSet.from_cuts(cuts).to_file(target)
        target.replace(tmp)
    return out


def _source(cut, audio_root: str | Path | None) -> tuple[str | None, str]:
    """The cut's audio file, absolute; ``(None, why)`` when it has none that exists."""
    if cut.recording is None or not cut.recording.sources:
        return None, "cut has no recording"
    source = cut.recording.sources[0]
    if source.type != "file":
        return None, f"recording source of type {source.type!r} (only files import)"
    path = os.path.expanduser(str(source.source))
    bases = [Path.cwd(), *([Path(audio_root)] if audio_root else [])]
    for candidate in [Path(path)] if os.path.isabs(path) else [b / path for b in bases]:
        if candidate.is_file():
            return absolute(candidate), ""
    return None, f"audio {source.source!r} not found"


def read_lhotse_cuts(path: str | Path, audio_root: str | Path | None = None) -> ImportResult:
    from lhotse import CutSet

    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"cuts file not found: {path}")
    try:  # lhotse reads lazily; a cut short file fails half way, as EOFError or a JSON error
        cuts = list(CutSet.from_file(path))
    except (EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ManifestError(
            f"cannot read cuts file {path}: {detail[:160]} (truncated or not a lhotse CutSet?)"
        ) from None
    rows, problems = [], []
    for i, cut in enumerate(cuts):
        if not cut.supervisions:
            problems.append((i, cut.id, "cut has no supervision (no caption)"))
            continue
        audio, why = _source(cut, audio_root)
        for sup in cut.supervisions:
            clip_id = cut.id if len(cut.supervisions) == 1 else sup.id
            custom = dict(sup.custom or {})
            caption = custom.pop("caption", None)
            if not text_or_none(caption):
                problems.append((i, clip_id, "supervision has no caption (custom 'caption')"))
                continue
            if audio is None:
                problems.append((i, clip_id, why))
                continue
            start = round(cut.start + max(sup.start, 0.0), 6)
            end = round(cut.start + min(sup.end, cut.duration), 6)
            whole = start == 0 and abs(end - cut.recording.duration) < 1e-6
            row = {
                "_row": i,
                "clip_id": clip_id,
                "audio_path": audio,
                "caption": caption,
                "start_s": None if whole else start,
                "end_s": None if whole else end,
                "text": sup.text,
                "speaker_id": sup.speaker,
                "language": sup.language,
                "recording_id": cut.recording.id,
                "supervision_id": sup.id,
                "source_format": FORMAT,
            }
            if sup.gender is not None:
                row.update(level_columns({"gender": sup.gender}, {"gender": "gender"}))
            row.update(level_columns(custom, {k: k for k in LEVELS}))
            row.update({k: v for k, v in custom.items() if k not in LEVELS})
            rows.append(row)
    return import_result(rows, problems, "id")
