"""Serve a folder over loopback HTTP, so acquisition (yt-dlp) can be tested on generated episodes.

``serve_directory(path)`` is a context manager yielding the base URL of a threaded
``http.server`` bound to 127.0.0.1 on an ephemeral port. It answers GET and HEAD, honours single
byte-range requests (``Range: bytes=a-b`` -> 206 with ``Content-Range``; unsatisfiable -> 416) the
way yt-dlp's HTTP downloader uses them to resume, sends ``Accept-Ranges: bytes`` and serves MP4 as
``video/mp4``. Request logs are kept in memory (``server.requests``), not printed.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from fsclap.errors import FsclapError

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _RangeRequestHandler(SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus single byte ranges."""

    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".mp4": "video/mp4",
        ".flac": "audio/flac",
        ".rttm": "text/plain",
        ".yaml": "text/yaml",
    }

    def send_head(self):
        path = Path(self.translate_path(self.path))
        header = self.headers.get("Range")
        if not path.is_file() or not header:
            return super().send_head()
        match = _RANGE.match(header.strip())
        size = path.stat().st_size
        if not match or (not match.group(1) and not match.group(2)):
            return (
                super().send_head()
            )  # malformed or multi-range: serve the whole file (allowed by RFC 9110)
        first, last = match.group(1), match.group(2)
        if first:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
        else:  # suffix range: the last N bytes
            start, end = max(0, size - int(last)), size - 1
        if start >= size or start > end:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        handle = open(path, "rb")
        handle.seek(start)
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Last-Modified", self.date_time_string(int(path.stat().st_mtime)))
        self.end_headers()
        return _Limited(handle, end - start + 1)

    def end_headers(self):
        if not any(
            h.lower().startswith(b"accept-ranges") for h in getattr(self, "_headers_buffer", [])
        ):
            self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        self.server.requests.append(
            f"{self.command} {self.path} {args[1] if len(args) > 1 else ''}".strip()
        )


class _Limited:
    """A file object that yields at most ``remaining`` bytes (what copyfile reads for a range)."""

    def __init__(self, handle, remaining: int):
        self.handle, self.remaining = handle, remaining

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self.handle.read(size)
        self.remaining -= len(data)
        return data

    def close(self) -> None:
        self.handle.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # a client that stops reading mid-file (yt-dlp probing, a cancelled download) is normal here
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

    def __init__(self, *args, **kwargs):
        self.requests: list[str] = []
        super().__init__(*args, **kwargs)


@contextmanager
def serving(path: str | Path, host: str = "127.0.0.1") -> Iterator[tuple[str, list[str]]]:
    """Serve ``path`` for the duration of the block; yields ``(base_url, request_log)``."""
    root = Path(path)
    if not root.is_dir():
        raise FsclapError(f"cannot serve {root}: not a folder")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise FsclapError(f"this server is for loopback tests only, not {host}")
    server = _Server((host, 0), partial(_RangeRequestHandler, directory=os.fspath(root)))
    thread = threading.Thread(
        target=server.serve_forever, name="fsclap-serve-directory", daemon=True
    )
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}", server.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def serve_directory(path: str | Path, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``path`` at ``http://127.0.0.1:<free port>`` for the duration of the block; yields the base URL."""
    with serving(path, host) as (base_url, _):
        yield base_url
