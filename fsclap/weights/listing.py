"""``fsclap models list``: every model of the profiles, where it is looked for, present? valid?"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from fsclap.model_store.lock import ModelLock, check_files
from fsclap.model_store.presence import presence
from fsclap.model_store.registry import MODELS, demucs_model_name, locate, lock_path, model_ids
from fsclap.model_store.verify import wheel_problems
from fsclap.weights.pull import hub_files, human_bytes


@dataclass
class ModelStatus:
    id: str
    title: str
    profiles: list[str]
    used_by: str
    source: str
    repo: str
    revision: str | None
    files: list[str]  # as released (what pull installs)
    approx_bytes: int
    bytes_on_disk: int | None
    licence: str
    card: str
    path: str
    origin: str
    present: bool
    missing: list[str] = field(default_factory=list)
    valid: str = "-"  # ok | not locked | mismatch: <file> | wheel RECORD ok | -
    pulled: str | None = None


def list_models(
    settings, profile: str | None = None, only: list[str] | None = None
) -> list[ModelStatus]:
    """The registry joined with what is on disk. Checksums: ``quick`` (files unchanged in size and
    mtime since they were hashed are trusted; others are re-hashed)."""
    lock = ModelLock(lock_path(settings))
    out = []
    for model_id in model_ids(profile, only):
        spec = MODELS[model_id]
        where = locate(settings, model_id)
        here = presence(model_id, where.path, settings)
        try:
            files = [f.path for f in hub_files(spec, settings)]
        except Exception as exc:  # noqa: BLE001 - e.g. a configured Demucs model that was never released
            files = [f"? ({exc})"]
        if spec.source == "wheel":
            files = [where.path.name]
        else:
            optional = {f.path for f in spec.files if f.optional}
            files = [f"{f} (if released)" if f in optional else f for f in files]
        on_disk = None
        if here.ok and spec.source == "wheel":
            paths = (
                [where.path]
                if where.path.is_file()
                else [p for p in where.path.rglob("*") if p.is_file()]
            )
            on_disk = sum(p.stat().st_size for p in paths)
        elif here.ok:
            on_disk = sum((here.folder / f).stat().st_size for f in here.files)
        status = ModelStatus(
            model_id,
            spec.title,
            list(spec.profiles),
            spec.stage,
            spec.source_name,
            demucs_model_name(settings) if spec.source == "demucs" else spec.repo,
            spec.revision,
            files,
            spec.approx_bytes,
            on_disk,
            spec.licence,
            spec.card,
            str(where.path),
            where.origin,
            here.ok,
            here.missing if not here.ok else [],
        )
        if spec.source == "wheel":
            if here.ok:
                problems = wheel_problems(spec, where.path)
                status.valid = "ok (wheel RECORD)" if not problems else f"mismatch: {problems[0]}"
        else:
            entry = lock.entry(model_id)
            if entry:
                status.pulled = entry.get("pulled")
            if here.ok:
                problems = check_files(entry, here.folder, quick=True) if entry else None
                status.valid = (
                    "not locked"
                    if problems is None
                    else "ok"
                    if not problems
                    else f"mismatch: {problems[0].file}"
                )
        out.append(status)
    return out


def render_table(statuses: list[ModelStatus]) -> str:
    """One row per model (rich table), then the files each model has as released."""
    import io

    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, expand=False, pad_edge=False)
    for column in (
        "id",
        "profile",
        "source",
        "size",
        "licence",
        "present",
        "valid",
        "looked for at",
    ):
        table.add_column(column, overflow="fold", no_wrap=column in ("id", "present"))
    for s in statuses:
        size = (
            human_bytes(s.bytes_on_disk)
            if s.bytes_on_disk is not None
            else f"~{human_bytes(s.approx_bytes)}"
        )
        source = f"{s.source} {s.repo}" + (f"@{s.revision}" if s.revision else "")
        present = "yes" if s.present else "no"
        cells = [
            s.id,
            "/".join(s.profiles),
            source,
            size,
            s.licence,
            present,
            s.valid if s.present else "-",
            f"{s.path} ({s.origin})",
        ]
        table.add_row(*(Text(cell) for cell in cells))  # Text: paths with [brackets] are not markup
    buffer = io.StringIO()
    import shutil

    width = max(shutil.get_terminal_size((200, 24)).columns, 120)  # piped output: wide, no wrapping
    Console(file=buffer, width=width, no_color=True, highlight=False).print(table)
    lines = [line.rstrip() for line in buffer.getvalue().rstrip().splitlines()]
    lines.append("files (as released; 'missing' lists what the loader did not find):")
    for s in statuses:
        missing = "the whole folder" if not Path(s.path).exists() else ", ".join(s.missing)
        lines.append(
            f"  {s.id:<11} {', '.join(s.files)}" + (f"   missing: {missing}" if s.missing else "")
        )
    return "\n".join(lines)


def to_json(statuses: list[ModelStatus]) -> list[dict]:
    return [asdict(s) for s in statuses]
