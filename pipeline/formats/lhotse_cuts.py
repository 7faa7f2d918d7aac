"""lhotse ``CutSet`` export/import (``cuts.jsonl.gz``): one ``MonoCut`` per clip over a
``Recording`` of its audio file, with one ``SupervisionSegment`` holding the transcript, speaker,
gender and language, and the caption and style levels in ``custom``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fsclap.io import atomic_path
from fsclap.manifest import ManifestError
from pipeline.formats.common import ImportResult

CUSTOM_COLUMNS = (
    "caption",
    "caption_en",
    "caption_zh",
    "pitch",
    "speed",
    "energy",
    "emotion",
    "split",
    "drama_id",
    "episode_id",
)


def _value(row: dict, key: str):
    value = row.get(key)
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value


def write_lhotse_cuts(frame: pd.DataFrame, out: str | Path) -> Path:
    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

    out = Path(out)
    cuts = []
    for row in frame.to_dict("records"):
        recording = Recording.from_file(row["audio_path"], recording_id=str(row["clip_id"]))
        start = float(_value(row, "start_s") or 0.0)
        end = _value(row, "end_s")
        duration = (float(end) if end is not None else recording.duration) - start
        gender = _value(row, "gender")
        supervision = SupervisionSegment(
            id=str(row["clip_id"]),
            recording_id=recording.id,
            start=start,
            duration=duration,
            text=_value(row, "text"),
            speaker=_value(row, "speaker_id"),
            gender={"female": "F", "male": "M"}.get(gender),
            language=_value(row, "caption_language"),
            custom={k: _value(row, k) for k in CUSTOM_COLUMNS if _value(row, k) is not None},
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


def read_lhotse_cuts(path: str | Path) -> ImportResult:
    from lhotse import CutSet

    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"cuts file not found: {path}")
    rows = []
    for cut in CutSet.from_file(path):
        sup = cut.supervisions[0] if cut.supervisions else None
        custom = dict(sup.custom or {}) if sup else {}
        source = cut.recording.sources[0].source
        whole = cut.start == 0 and abs(cut.duration - cut.recording.duration) < 1e-6
        rows.append(
            {
                "clip_id": cut.id,
                "audio_path": source,
                "caption": custom.pop("caption", ""),
                "start_s": None if whole else cut.start,
                "end_s": None if whole else cut.start + cut.duration,
                "text": sup.text if sup else None,
                "speaker_id": sup.speaker if sup else None,
                "gender": {"F": "female", "M": "male"}.get(sup.gender) if sup else None,
                **custom,
            }
        )
    return ImportResult(pd.DataFrame(rows))
