"""Clip audio for the browser (whole files or WAV renderings of segments, with byte ranges) and the
request-body limit that keeps oversized uploads from being read at all."""

from __future__ import annotations

import hashlib
import io
import json
import mimetypes
import re
import threading
from collections import OrderedDict
from pathlib import Path

import soundfile as sf
from starlette.responses import Response

from fsclap.audio import load_audio

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def media_type(path: str | Path) -> str:
    kind, _ = mimetypes.guess_type(str(path))
    suffix = Path(path).suffix.lower()
    return {
        ".wav": "audio/wav",
        ".flac": "audio/flac",
        ".opus": "audio/ogg",
        ".m4a": "audio/mp4",
    }.get(suffix, kind or "application/octet-stream")


def segment_wav(path: str | Path, start_s: float | None, end_s: float | None) -> bytes:
    """``[start_s, end_s)`` of an audio (or video) file as a 16-bit WAV at the file's own rate."""
    audio, sr = load_audio(path, None, start_s, end_s, mono=False)
    buffer = io.BytesIO()
    sf.write(buffer, audio.T, sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class SegmentCache:
    """Recently rendered segments (a player asks for the same clip in several range requests)."""

    def __init__(self, max_bytes: int = 64 * 2**20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple, render) -> bytes:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        data = render()
        with self._lock:
            if key not in self._items and len(data) <= self.max_bytes:
                self._items[key] = data
                self._size += len(data)
                while self._size > self.max_bytes:
                    _, old = self._items.popitem(last=False)
                    self._size -= len(old)
        return data


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single byte range ``(first, last)`` asked for, or None to send everything.

    Malformed or multi-range headers are ignored (RFC 9110 lets a server send the whole file);
    a range that starts past the end raises :class:`RangeNotSatisfiable`.
    """
    if not header or "," in header:
        return None
    match = _RANGE.match(header)
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.groups()
    if not first:  # suffix range: the last N bytes
        count = int(last)
        if count == 0:
            raise RangeNotSatisfiable(size)
        return max(size - count, 0), size - 1
    first_i = int(first)
    last_i = min(int(last), size - 1) if last else size - 1
    if first_i >= size:
        raise RangeNotSatisfiable(size)
    if last_i < first_i:
        return None
    return first_i, last_i


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int):
        super().__init__(f"range not satisfiable (size {size})")
        self.size = size


def bytes_response(
    data: bytes,
    media: str,
    range_header: str | None,
    if_range: str | None = None,
    headers: dict | None = None,
) -> Response:
    """``data`` as a 200, or the requested part of it as a 206 (single ranges)."""
    etag = '"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"'
    base = {"accept-ranges": "bytes", "etag": etag, **(headers or {})}
    if if_range is not None and if_range != etag:
        range_header = None  # the client's copy is stale: send the whole thing
    try:
        part = parse_range(range_header, len(data))
    except RangeNotSatisfiable as exc:
        return Response(status_code=416, headers={"content-range": f"bytes */{exc.size}", **base})
    if part is None:
        return Response(data, media_type=media, headers=base)
    first, last = part
    return Response(
        data[first : last + 1],
        status_code=206,
        media_type=media,
        headers={**base, "content-range": f"bytes {first}-{last}/{len(data)}"},
    )


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with a 413, before (Content-Length)
    or while (chunked) they arrive, instead of spooling them to disk first."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def _refuse(self, send) -> None:
        body = json.dumps(
            {"error": f"the request body is larger than the limit of {self.limit / 2**20:.0f} MiB"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(send)
        state = {"received": 0, "exceeded": False, "started": False, "replaced": False}

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.limit:
                    state["exceeded"] = True
                    raise _TooLarge()
            return message

        async def guarded_send(message):
            if state[
                "exceeded"
            ]:  # the app turned our exception into its own error: answer 413 instead
                if message["type"] == "http.response.start" and not state["replaced"]:
                    state["replaced"] = True
                    await self._refuse(send)
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not state["started"] and not state["replaced"]:
                await self._refuse(send)
