"""The sources file (which dramas to build from) and episode discovery.

Sources file (contract in docs/design.md)::

    min_episodes: 50            # dramas with fewer (unique, discovered) episodes are skipped
    dramas:
      - id: my-drama            # letters, digits, '-' and '_': it names files and episode ids
        title: "Any title ../ 中文"   # metadata only, never part of a path
        language: zh
        licence: "..."          # optional, also `notes`, and a per-drama `min_episodes`
        urls:
          - https://www.youtube.com/playlist?list=...   # playlist / channel: listed by yt-dlp
          - https://example.org/ep01.mp4                 # direct media URL: one episode
          - /data/dramas/my-drama/                       # local folder (recursive) or file

A CSV with columns ``id,title,language,url[,licence,notes]`` (one row per URL) is accepted too.
Relative local paths resolve against the sources file's folder.

Discovery turns each drama into episodes with stable ids: ``<drama id>-<sha1(source key)[:10]>``,
where the source key is the extractor's own video id when there is one (``youtube:abc123``), the
URL otherwise, or ``file:<absolute path>`` for local files. The same source listed twice (in one
drama or across dramas) is used once; the repeat is reported as a ``DuplicateSource`` problem.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from fsclap.config import format_validation_error
from fsclap.errors import FsclapError
from pipeline.tables import Episode

DRAMA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
MEDIA_SUFFIXES = frozenset(
    ".mp4 .m4v .mkv .webm .mov .avi .flv .ts .mts .m2ts .mpg .mpeg .3gp .wmv "
    ".m4a .mp3 .aac .wav .flac .ogg .oga .opus .wma".split()
)


class SourcesError(FsclapError):
    """The sources file is missing or malformed."""


class DramaSource(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(pattern=DRAMA_ID_PATTERN, description="Stable id; names files and episode ids.")
    title: str
    language: str = Field(min_length=1)
    urls: list[str] = Field(min_length=1)
    licence: str | None = Field(None, validation_alias=AliasChoices("licence", "license"))
    notes: str | None = None
    min_episodes: int | None = Field(
        None, ge=1, description="Overrides the file's min_episodes for this drama."
    )


class Sources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_episodes: int = Field(50, ge=1)
    dramas: list[DramaSource]
    base_dir: Path = Field(
        Path("."), exclude=True, description="Folder relative local paths resolve against."
    )


def load_sources(path: str | Path) -> Sources:
    """Read and validate a sources YAML (or CSV); errors are one line naming the bad entry."""
    path = Path(path)
    if not path.is_file():
        raise SourcesError(f"sources file not found: {path}")
    if path.suffix.lower() == ".csv":
        raw = _read_csv(path)
    else:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise SourcesError(f"sources file {path} is not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise SourcesError(
            f"sources file {path}: expected a mapping with 'dramas:' (and optionally 'min_episodes:')"
        )
    dramas_raw = raw.get("dramas")
    if not isinstance(dramas_raw, list) or not dramas_raw:
        raise SourcesError(f"sources file {path}: 'dramas' must be a non-empty list")
    dramas = []
    for index, entry in enumerate(dramas_raw):
        label = f"dramas[{index}]"
        if isinstance(entry, dict) and entry.get("id") is not None:
            label += f" (id {entry.get('id')!r})"
        if not isinstance(entry, dict):
            raise SourcesError(
                f"sources file {path}: {label}: expected a mapping with id, title, language, urls"
            )
        if isinstance(entry.get("urls"), str):
            entry = {**entry, "urls": [entry["urls"]]}
        try:
            dramas.append(DramaSource(**entry))
        except ValidationError as exc:
            raise SourcesError(
                f"sources file {path}: {label}: {format_validation_error(exc)}"
            ) from None
    seen: dict[str, int] = {}
    for index, drama in enumerate(dramas):
        if drama.id in seen:
            raise SourcesError(
                f"sources file {path}: dramas[{index}] repeats id {drama.id!r} of dramas[{seen[drama.id]}]"
            )
        seen[drama.id] = index
    try:
        return Sources(
            **{k: v for k, v in raw.items() if k != "dramas"},
            dramas=dramas,
            base_dir=path.resolve().parent,
        )
    except ValidationError as exc:
        raise SourcesError(f"sources file {path}: {format_validation_error(exc)}") from None


def _read_csv(path: Path) -> dict:
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    required = {"id", "title", "language", "url"}
    if not rows or not required <= set(rows[0]):
        raise SourcesError(
            f"sources file {path}: a CSV needs the columns {', '.join(sorted(required))}"
        )
    dramas: dict[str, dict] = {}
    for number, row in enumerate(rows, start=2):
        drama_id = (row.get("id") or "").strip()
        url = (row.get("url") or "").strip()
        if not drama_id or not url:
            raise SourcesError(f"sources file {path}: line {number}: id and url are required")
        drama = dramas.setdefault(
            drama_id,
            {"id": drama_id, "title": row["title"], "language": row["language"], "urls": []},
        )
        for extra in ("licence", "notes"):
            if row.get(extra):
                drama[extra] = row[extra]
        drama["urls"].append(url)
    return {"dramas": list(dramas.values())}


# --- discovery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteEntry:
    """One video a remote listing (playlist, channel, feed) contains, or the URL itself."""

    url: str
    source_key: str
    title: str | None = None


@dataclass(frozen=True)
class Problem:
    """Something discovery could not use; it becomes a failures row (stage ``discover``)."""

    item_id: str
    drama_id: str
    error: str
    message: str
    retryable: bool = False
    stage: str = "discover"


@dataclass
class Discovery:
    episodes: list[Episode] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped_dramas: list[str] = field(default_factory=list)
    dramas: list[str] = field(default_factory=list)


# A lister resolves one remote URL into its entries (raises on failure); see acquire.YtdlpClient.
Lister = Callable[[str], list[RemoteEntry]]


def episode_id_for(drama_id: str, source_key: str) -> str:
    return f"{drama_id}-{hashlib.sha1(source_key.encode('utf-8')).hexdigest()[:10]}"


def normalise_url(url: str) -> str:
    """The URL as a source key: yt-dlp's smuggled data and fragments removed."""
    from yt_dlp.utils import unsmuggle_url

    url, _ = unsmuggle_url(url)
    return urldefrag(url.strip())[0]


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def is_direct_media_url(url: str) -> bool:
    """A URL whose path ends in a media suffix is one episode; it is not listed first."""
    return Path(urlparse(url).path).suffix.lower() in MEDIA_SUFFIXES


def local_path(url: str, base_dir: Path) -> Path:
    if url.startswith("file://"):
        from urllib.parse import unquote

        url = unquote(urlparse(url).path)
    path = Path(url).expanduser()
    return (path if path.is_absolute() else base_dir / path).resolve()


def list_local(path: Path) -> list[Path]:
    """Media files under a folder (recursive, hidden files skipped, natural order), or the file."""
    if path.is_file():
        return [path]
    files = [
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.suffix.lower() in MEDIA_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    ]
    return sorted(files, key=lambda p: _natural_key(p.relative_to(path).as_posix()))


def _natural_key(text: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def discover(sources: Sources, lister: Lister | None = None) -> Discovery:
    """Resolve every drama's URLs into episodes; record problems instead of raising."""
    found = Discovery()
    claimed: dict[str, Episode] = {}  # source key -> the episode that uses it
    for drama in sources.dramas:
        found.dramas.append(drama.id)
        episodes: list[Episode] = []
        listing_failures = 0
        for url in drama.urls:
            try:
                entries = list(_resolve(url, sources.base_dir, lister))
            except _DiscoveryProblem as problem:
                listing_failures += 1
                found.problems.append(
                    Problem(url, drama.id, problem.error, str(problem), problem.retryable)
                )
                continue
            for entry in entries:
                first = claimed.get(entry.source_key)
                if first is not None:
                    found.problems.append(
                        Problem(
                            f"{drama.id} {entry.url}",
                            drama.id,
                            "DuplicateSource",
                            f"{entry.url} is the same source as episode {first.episode_id} (drama {first.drama_id}); used once",
                        )
                    )
                    continue
                episode = Episode(
                    episode_id=episode_id_for(drama.id, entry.source_key),
                    drama_id=drama.id,
                    source_url=entry.url,
                    source_key=entry.source_key,
                    source_kind="file" if entry.source_key.startswith("file:") else "url",
                    episode_index=len(episodes) + 1,
                    drama_title=drama.title,
                    language=drama.language,
                    title=entry.title,
                )
                claimed[entry.source_key] = episode
                episodes.append(episode)
        needed = drama.min_episodes or sources.min_episodes
        if len(episodes) < needed:
            note = (
                f"; {listing_failures} of its URLs could not be listed" if listing_failures else ""
            )
            found.problems.append(
                Problem(
                    drama.id,
                    drama.id,
                    "TooFewEpisodes",
                    f"drama {drama.id}: {len(episodes)} episodes found, min_episodes is {needed}{note}; skipped",
                )
            )
            found.skipped_dramas.append(drama.id)
            continue
        found.episodes.extend(episodes)
    return found


class _DiscoveryProblem(Exception):
    def __init__(self, error: str, message: str, retryable: bool = False):
        super().__init__(message)
        self.error = error
        self.retryable = retryable


def _resolve(url: str, base_dir: Path, lister: Lister | None) -> Iterable[RemoteEntry]:
    if is_local(url):
        path = local_path(url, base_dir)
        if not path.exists():
            raise _DiscoveryProblem("SourceNotFound", f"local source does not exist: {path}")
        for file in list_local(path):
            yield RemoteEntry(url=str(file), source_key=f"file:{file}", title=file.stem)
        return
    if is_direct_media_url(url):
        yield RemoteEntry(url=url, source_key=normalise_url(url))
        return
    if lister is None:
        raise _DiscoveryProblem(
            "DiscoveryFailed", f"cannot list {url}: no remote lister configured", True
        )
    try:
        yield from lister(url)
    except _DiscoveryProblem:
        raise
    except FsclapError as exc:
        raise _DiscoveryProblem(
            getattr(exc, "error_type", "DiscoveryFailed"), str(exc), getattr(exc, "retryable", True)
        ) from None
