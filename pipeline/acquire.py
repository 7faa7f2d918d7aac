"""Stage ``acquire``: get each episode's media file into ``DIR/media/<drama id>/<episode id>.<ext>``.

* Remote episodes are downloaded with yt-dlp's Python API: the format is the smallest that
  carries audio (``AcquireConfig.format``), downloads resume from ``.part`` files, transient
  errors are retried with exponential backoff, an optional rate limit applies, and a download
  archive (``DIR/manifests/download-archive.txt``, yt-dlp's format) keeps a video from ever being
  downloaded twice. yt-dlp names direct links (its ``generic`` extractor) after the file's
  basename, so two different ``ep01.mp4`` would collide; for those the archive line holds the
  URL's hash instead (``generic url-<sha1>``).
* Local episodes are **hardlinked** into the media folder by default: no extra disk space, and the
  data root stays self-contained (another machine or container sees every file under ``DIR``).
  When a hardlink is impossible (another file system) the file is registered in place (its
  absolute path is recorded); ``local_files: copy`` copies instead, ``reference`` never links.
* File names come from ids only; titles never reach a path.
* Every acquired file is hashed (SHA-256, the content key of all later stages) and probed with
  ffprobe (container, codecs, duration, the audio stream to use). Empty, unreadable or truncated
  files and files without an audio stream fail here with the reason.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from fsclap.audio import AudioError, ffprobe
from fsclap.io import sha256_file
from fsclap.log import get_logger
from pipeline.sources import RemoteEntry, normalise_url
from pipeline.stage import Stage, StageConfig, StageError, short_hash
from pipeline.tables import Episode

log = get_logger("pipeline.acquire")

# Smallest audio-only stream of speech quality, else the smallest audio-only stream, else the
# smallest format that has audio, else the smallest combined format (direct links: the file).
DEFAULT_FORMAT = "wa[abr>=?64]/wa/wa*/w"
PARTIAL_SUFFIXES = (".part", ".ytdl", ".tmp")


# --- errors ---------------------------------------------------------------------------------


class NotFound(StageError):
    """HTTP 404/410: the URL names nothing."""


class HTTPStatusError(StageError):
    """Another HTTP error status; 429 and 5xx are retried."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status == 429 or self.status >= 500


class Unreachable(StageError):
    """The host could not be reached (refused, timed out, DNS)."""

    retryable = True


class DownloadFailed(StageError):
    """yt-dlp failed for another reason."""

    retryable = True


class ArchivedButMissing(StageError):
    """The download archive says the video was fetched, but its file is gone."""


class UnsupportedSource(StageError):
    """yt-dlp found no video at the URL, the URL is a playlist where an episode was expected, or
    the URL (or a redirect) leaves http(s): permanent, never retried."""


#: The only remote schemes fsclap fetches; anything else (ftp, file, gopher, ...) is refused up
#: front, and a redirect to one fails as UnsupportedSource (permanent).
URL_SCHEMES = ("http", "https")


class SourceNotFound(StageError):
    """A local source file is gone."""


class EmptyMedia(StageError):
    """The file has 0 bytes."""


class UnreadableMedia(StageError):
    """ffprobe cannot read the file: truncated, corrupt or not a media container."""


class NoAudioStream(StageError):
    """The media has no audio stream."""


class DuplicateContent(StageError):
    """Another episode has byte-identical media."""


# --- configuration --------------------------------------------------------------------------


class AcquireConfig(StageConfig):
    operational: ClassVar[frozenset[str]] = frozenset(
        {
            "workers",
            "local_files",
            "rate_limit",
            "retries",
            "backoff_s",
            "socket_timeout_s",
            "sleep_requests_s",
            "cookies",
        }
    )

    format: str = Field(DEFAULT_FORMAT, description="yt-dlp format selector.")
    local_files: Literal["hardlink", "copy", "reference"] = "hardlink"
    rate_limit: str | None = Field(None, description="Download rate limit, e.g. '2M' (bytes/s).")
    retries: int = Field(3, ge=0, description="Retries of a transient failure (network, 5xx, 429).")
    backoff_s: float = Field(2.0, ge=0, description="First retry delay; doubles each retry.")
    socket_timeout_s: float = Field(30.0, gt=0)
    sleep_requests_s: float = Field(
        0.0, ge=0, description="Pause between yt-dlp's requests (politeness)."
    )
    cookies: Path | None = Field(None, description="Netscape cookies file passed to yt-dlp.")
    workers: int = Field(2, ge=1)

    @field_validator("rate_limit")
    @classmethod
    def _parse_rate(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from yt_dlp.utils import parse_bytes

        if parse_bytes(str(value)) is None:
            raise ValueError(f"not a byte rate: {value!r} (e.g. 500K, 2M)")
        return str(value)


# --- yt-dlp ---------------------------------------------------------------------------------


class DownloadArchive:
    """yt-dlp's download archive (one ``extractor id`` line per finished download), shared by all
    downloads of a run and safe to use from several threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        if self.path.exists():
            self._ids = {
                line.strip()
                for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip()
            }

    def __contains__(self, archive_id: str) -> bool:
        with self._lock:
            return archive_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, archive_id: str) -> None:
        with self._lock:
            if archive_id in self._ids:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(archive_id + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            self._ids.add(archive_id)

    def for_url(self, url: str) -> _ArchiveView:
        return _ArchiveView(self, url)


def archive_id(source_key: str) -> str:
    """The archive line of a source: yt-dlp's ``<extractor> <id>``, or the URL hash for direct links."""
    extractor, sep, video_id = source_key.partition(":")
    if sep and re.fullmatch(r"[a-z0-9_]+", extractor) and not video_id.startswith("//"):
        return f"{extractor} {video_id}"
    return "generic url-" + hashlib.sha1(source_key.encode()).hexdigest()[:16]


class _ArchiveView:
    """What one yt-dlp instance sees. Lookups of generic-extractor ids use the URL's hash; yt-dlp's
    own ``add`` is ignored because the stage records a download only after it probed and hashed
    the file (a file that turns out to be broken is deleted and can be fetched again)."""

    def __init__(self, archive: DownloadArchive, url: str):
        self._archive = archive
        self._generic_id = archive_id(normalise_url(url))

    def _map(self, yt_dlp_id: str) -> str:
        return self._generic_id if yt_dlp_id.lower().startswith("generic ") else yt_dlp_id

    def __contains__(self, yt_dlp_id: str | None) -> bool:
        return yt_dlp_id is not None and self._map(yt_dlp_id) in self._archive

    def __len__(self) -> int:
        return max(len(self._archive), 1)  # yt-dlp skips the archive check when it is falsy

    def add(self, yt_dlp_id: str) -> None:
        log.debug("yt-dlp finished %s", yt_dlp_id)


class _YtdlpLog:
    """Routes yt-dlp's messages to our debug log; failures surface as exceptions instead."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    info = debug
    warning = debug
    error = debug


class YtdlpClient:
    """Listing and downloading through yt-dlp with the stage's retry/rate settings."""

    def __init__(self, config: AcquireConfig, archive: DownloadArchive | None = None):
        self.config = config
        self.archive = archive

    def params(self, **extra: Any) -> dict[str, Any]:
        from yt_dlp.utils import parse_bytes

        backoff = self.config.backoff_s

        def sleep(n: int) -> float:
            return backoff * (2 ** max(n - 1, 0))

        params: dict[str, Any] = {
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "logger": _YtdlpLog(),
            "format": self.config.format,
            "retries": self.config.retries,
            "fragment_retries": self.config.retries,
            "extractor_retries": self.config.retries,
            "retry_sleep_functions": {"http": sleep, "fragment": sleep, "extractor": sleep},
            "socket_timeout": self.config.socket_timeout_s,
            "noplaylist": True,
            "updatetime": False,
            "continuedl": True,
            "restrictfilenames": True,
            "color": {"stdout": "no_color", "stderr": "no_color"},
        }
        if self.config.rate_limit:
            params["ratelimit"] = parse_bytes(self.config.rate_limit)
        if self.config.sleep_requests_s:
            params["sleep_interval_requests"] = self.config.sleep_requests_s
        if self.config.cookies:
            params["cookiefile"] = str(self.config.cookies)
        params.update(extra)
        return params

    def _extract(self, url: str, params: dict[str, Any], download: bool) -> dict:
        """``extract_info`` with retries and backoff on transient errors; errors classified."""
        from yt_dlp import YoutubeDL
        from yt_dlp.networking.exceptions import RequestError
        from yt_dlp.utils import DownloadError

        scheme = urlsplit(url).scheme.lower()
        if scheme not in URL_SCHEMES:
            raise UnsupportedSource(
                f"{url}: only http(s) URLs and local files are fetched"
                + (f" (not {scheme}://)" if scheme else " (not a URL)")
            )
        attempt = 0
        while True:
            try:
                with YoutubeDL(params) as ydl:
                    info = ydl.extract_info(url, download=download)
                if info is None:
                    raise DownloadFailed(f"{url}: yt-dlp returned nothing")
                return ydl.sanitize_info(info) if not download else info
            except (DownloadError, RequestError) as exc:
                error = classify_download_error(exc, url)
            if not error.retryable or attempt >= self.config.retries:
                raise error
            delay = self.config.backoff_s * (2**attempt)
            log.info(
                "%s: %s; retry %d/%d in %.1f s",
                url,
                error.error_type,
                attempt + 1,
                self.config.retries,
                delay,
            )
            time.sleep(delay)
            attempt += 1

    def list_entries(self, url: str) -> list[RemoteEntry]:
        """The videos of a playlist/channel/feed URL (flat listing), or the URL's own video."""
        info = self._extract(
            url,
            self.params(extract_flat="in_playlist", skip_download=True, noplaylist=False),
            False,
        )
        if info.get("_type") == "playlist":
            entries = []
            for entry in info.get("entries") or []:
                if not entry:
                    continue
                entry_url = entry.get("webpage_url") or entry.get("url")
                if not entry_url:
                    continue
                entries.append(
                    RemoteEntry(
                        url=normalise_url(entry_url),
                        source_key=_source_key(entry, entry_url),
                        title=entry.get("title"),
                    )
                )
            return entries
        return [RemoteEntry(url=url, source_key=_source_key(info, url), title=info.get("title"))]

    def download(self, url: str, out_dir: Path, stem: str) -> Path:
        """Download ``url`` to ``out_dir/<stem>.<ext>``; an already finished file is reused."""
        out_dir = Path(out_dir).absolute()  # yt-dlp joins a relative temp path onto its home
        existing = finished_file(out_dir, stem)
        if existing is not None:
            return existing
        out_dir.mkdir(parents=True, exist_ok=True)
        params = self.params(
            outtmpl={"default": f"{stem}.%(ext)s"},
            paths={"home": str(out_dir), "temp": str(out_dir)},
            playlist_items="0",  # an episode URL that turns out to be a playlist downloads nothing
        )
        if self.archive is not None:
            params["download_archive"] = self.archive.for_url(url)
        info = self._extract(url, params, True)
        if info.get("_type") == "playlist":
            raise UnsupportedSource(
                f"{url} is a playlist, not an episode: list it under the drama's urls"
            )
        for item in info.get("requested_downloads") or []:
            path = item.get("filepath")
            if path and Path(path).exists():
                return Path(path)
        existing = finished_file(out_dir, stem)
        if existing is not None:
            return existing
        raise ArchivedButMissing(
            f"{url} is in the download archive ({self.archive.path if self.archive else '-'}) but its file "
            f"{out_dir / stem}.* is missing; remove its line from the archive to download it again"
        )


def _source_key(info: dict, url: str) -> str:
    extractor = (info.get("extractor_key") or info.get("ie_key") or "").lower()
    video_id = info.get("id")
    if extractor and extractor != "generic" and video_id:
        return f"{extractor}:{video_id}"
    return normalise_url(url)


def classify_download_error(exc: Exception, url: str) -> StageError:
    """yt-dlp's DownloadError (or a networking RequestError it let through) as one of this stage's
    errors, with a one-line reason. Transient (retried): unreachable hosts, timeouts, connection
    resets, HTTP 429 and 5xx. Permanent: other 4xx, unsupported URLs and schemes, redirects out of
    http(s)."""
    from yt_dlp.networking.exceptions import HTTPError, RequestError, TransportError

    cause = exc.exc_info[1] if getattr(exc, "exc_info", None) else None
    if cause is None and isinstance(exc, RequestError):
        cause = exc
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).removeprefix("ERROR: ").strip()
    if isinstance(cause, HTTPError):
        status = cause.status
        reason = cause.reason or ""
        if status in (404, 410):
            return NotFound(f"HTTP {status} {reason}: {url}".replace("  ", " "))
        return HTTPStatusError(f"HTTP {status} {reason}: {url}", status)
    if isinstance(cause, TransportError):
        detail = str(cause).split(": ")[-1] or type(cause).__name__
        return Unreachable(f"cannot reach {url}: {detail}")
    if isinstance(cause, RequestError):  # no handler for the scheme, e.g. a redirect to file://
        detail = " ".join(str(cause).split())[:160]
        return UnsupportedSource(f"{url}: cannot be fetched over http(s): {detail}")
    lowered = text.lower()
    if "is not a valid url" in lowered:
        return UnsupportedSource(f"{url} is not a valid URL")
    if "did not get any data blocks" in lowered or "downloaded file is empty" in lowered:
        return EmptyMedia(f"{url} returned an empty file (0 bytes)")
    if "unsupported url" in lowered:
        return UnsupportedSource(f"no video found at {url} (yt-dlp: unsupported URL)")
    match = re.search(r"HTTP Error (\d+)", text)
    if match:
        status = int(match.group(1))
        if status in (404, 410):
            return NotFound(f"HTTP {status}: {url}")
        return HTTPStatusError(f"HTTP {status}: {url}", status)
    return DownloadFailed(f"{url}: {text.splitlines()[0] if text else type(exc).__name__}")


def finished_file(out_dir: Path, stem: str) -> Path | None:
    """A completed download ``<stem>.<ext>`` (no partial-download suffix), if any."""
    if not out_dir.is_dir():
        return None
    for path in sorted(out_dir.glob(f"{glob_escape(stem)}.*")):
        if (
            path.is_file()
            and not path.name.endswith(PARTIAL_SUFFIXES)
            and ".part-" not in path.name
        ):
            return path
    return None


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


# --- local files and probing ----------------------------------------------------------------


def register_local(source: Path, out_dir: Path, stem: str, mode: str) -> Path:
    """Make ``source`` an episode's media file: hardlink (default), copy, or in place."""
    if not source.is_file():
        raise SourceNotFound(f"local source file is gone: {source}")
    if mode == "reference":
        return source
    suffix = (
        source.suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", source.suffix) else ".media"
    )
    target = out_dir / f"{stem}{suffix}"
    out_dir.mkdir(parents=True, exist_ok=True)
    if target.exists() and os.path.samefile(target, source):
        return target
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        if mode == "hardlink":
            try:
                os.link(source, tmp)
            except OSError as exc:  # another file system, or links not allowed: use it in place
                log.debug("cannot hardlink %s (%s); registering it in place", source, exc)
                return source
        else:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def probe_media(path: Path) -> dict[str, Any]:
    """ffprobe facts about a media file; raises EmptyMedia / UnreadableMedia / NoAudioStream."""
    if path.stat().st_size == 0:
        raise EmptyMedia(f"{path.name} is empty (0 bytes)")
    try:
        meta = ffprobe(path)
    except AudioError as exc:
        raise UnreadableMedia(f"{path.name}: {_probe_reason(str(exc), path)}") from None
    streams = meta.get("streams") or []
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    video = [s for s in streams if s.get("codec_type") == "video"]
    if not audio:
        kinds = ", ".join(f"{s.get('codec_type')} {s.get('codec_name')}" for s in streams) or "none"
        raise NoAudioStream(f"{path.name} has no audio stream (streams: {kinds})")
    chosen = next(
        (i for i, s in enumerate(audio) if (s.get("disposition") or {}).get("default")), 0
    )
    stream = audio[chosen]
    duration = _float(meta.get("format", {}).get("duration")) or _float(stream.get("duration"))
    if not duration or duration <= 0:
        raise UnreadableMedia(f"{path.name}: no duration (empty or broken stream)")
    return {
        "container": meta.get("format", {}).get("format_name"),
        "video_codec": video[0].get("codec_name") if video else None,
        "audio_codec": stream.get("codec_name"),
        "audio_stream": chosen,
        "source_sample_rate": int(stream["sample_rate"]) if stream.get("sample_rate") else None,
        "source_channels": stream.get("channels"),
        "media_duration_s": duration,
        "duration_s": duration,
    }


def _probe_reason(ffprobe_error: str, path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(12)
    # ISO-BMFF (MP4/MOV/M4A) files start with a box such as ftyp; anything else is not one
    if head[4:8] in {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"styp"}:
        return "truncated or corrupt MP4 (ffprobe cannot read it)"
    if "invalid data found" in ffprobe_error.lower():
        return (
            f"not a media file ffmpeg can read (unrecognised content, {path.stat().st_size} bytes)"
        )
    return ffprobe_error.split(": ", 1)[-1]


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --- the stage ------------------------------------------------------------------------------


class Acquire(Stage):
    name = "acquire"
    version = "1"
    Config = AcquireConfig
    done_status = "acquired"

    def __init__(self, config=None, *, context):
        super().__init__(config, context=context)
        self.archive = DownloadArchive(self.context.layout.download_archive)
        self.client = YtdlpClient(self.config, self.archive)

    def input_hash(self, episode: Episode) -> str | None:
        if episode.source_kind == "file":
            path = Path(episode.source_url)
            try:
                stat = path.stat()
            except OSError:
                return short_hash({"source": episode.source_key, "missing": True})
            return short_hash(
                {"source": episode.source_key, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
            )
        return short_hash({"source": episode.source_key})

    def outputs(self, episode: Episode) -> list[Path]:
        return (
            [self.context.abs(episode.media_path)] if episode.media_path else [Path("/nonexistent")]
        )

    def is_done(self, episode: Episode, key: str | None = None) -> bool:
        if not super().is_done(episode, key):
            return False
        return self.context.abs(episode.media_path).stat().st_size == episode.media_bytes

    def media_dir(self, episode: Episode) -> Path:
        return self.context.layout.media_dir(episode.drama_id)

    def process(self, episode: Episode) -> Episode:
        media_dir = self.media_dir(episode)
        if episode.source_kind == "file":
            source = Path(episode.source_url)
            path = register_local(source, media_dir, episode.episode_id, self.config.local_files)
            source_mtime = source.stat().st_mtime_ns
        else:
            path = self.client.download(episode.source_url, media_dir, episode.episode_id)
            source_mtime = None
        try:
            meta = probe_media(path)
        except StageError:
            if path.absolute().parent == media_dir.absolute():  # ours, never the user's own file
                path.unlink(missing_ok=True)
            raise
        if episode.source_kind != "file":
            self.archive.add(archive_id(episode.source_key))
        result = episode.copy()
        result.media_path = self.context.rel(path)
        result.media_bytes = path.stat().st_size
        result.media_sha256 = sha256_file(path)
        result.source_mtime_ns = source_mtime
        for name, value in meta.items():
            setattr(result, name, value)
        return result
