"""Small media files and a loopback HTTP server for tests and benchmarks of the corpus builder.

Everything is generated with ffmpeg's lavfi sources (``testsrc2`` picture, ``sine``/``anoisesrc``
sound) and served from 127.0.0.1 on an ephemeral port: no outside network is involved.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from pipeline.synth.serve import serving

AudioKind = str  # "tone" | "silence" | "none"


def make_episode_mp4(
    path: str | Path,
    seconds: float = 4.0,
    audio: AudioKind = "tone",
    seed: int = 0,
    faststart: bool = False,
    size: str = "96x64",
    fps: int = 5,
    sample_rate: int = 44100,
    channels: int = 2,
) -> Path:
    """An H.264 + AAC MP4 with a test picture and ``tone`` (a seed-dependent chord with a little
    noise), ``silence`` or ``none`` (no audio stream at all)."""
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg is required to generate test media")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    layout = "stereo" if channels == 2 else "mono"
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={fps}:duration={seconds}",
    ]
    if audio == "tone":
        f1, f2 = 180 + 37 * (seed % 11), 410 + 53 * (seed % 7)
        expr = f"0.3*sin(2*PI*{f1}*t)*(0.6+0.4*sin(2*PI*0.5*t))+0.2*sin(2*PI*{f2}*t)"
        cmd += [
            "-f",
            "lavfi",
            "-i",
            f"aevalsrc={expr}|{expr}:s={sample_rate}:d={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"anoisesrc=color=pink:amplitude=0.02:seed={seed + 1}:r={sample_rate}:d={seconds}",
            "-filter_complex",
            f"[1:a][2:a]amix=inputs=2:normalize=0,aformat=channel_layouts={layout}[a]",
            "-map",
            "0:v",
            "-map",
            "[a]",
        ]
    elif audio == "silence":
        cmd += [
            "-f",
            "lavfi",
            "-i",
            f"anullsrc=r={sample_rate}:cl={layout}",
            "-map",
            "0:v",
            "-map",
            "1:a",
        ]
    elif audio != "none":
        raise ValueError(f"unknown audio kind {audio!r}")
    cmd += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio != "none":
        cmd += ["-c:a", "aac", "-b:a", "96k"]
    if faststart:
        cmd += ["-movflags", "+faststart"]
    subprocess.run([*cmd, str(path)], check=True, capture_output=True)
    return path


def truncate_file(source: str | Path, target: str | Path, keep: float = 0.5) -> Path:
    """The first ``keep`` fraction of ``source``'s bytes (a download cut short)."""
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[: int(len(data) * keep)])
    return Path(target)


class LoopbackServer:
    """Serve a folder on 127.0.0.1 (ephemeral port) for the duration of a ``with`` block, through
    :func:`pipeline.synth.serve.serving` (threaded, byte ranges for resumed downloads).

    >>> with LoopbackServer(folder) as server:
    ...     url = server.url("ep01.mp4")   # server.requests: the paths asked for so far
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._context = None
        self.base_url = ""
        self.log: list[str] = []  # "GET /ep01.mp4 206" lines

    def __enter__(self) -> LoopbackServer:
        self._context = serving(self.directory)
        self.base_url, self.log = self._context.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._context.__exit__(*exc)

    @property
    def requests(self) -> list[str]:
        return [line.split()[1] for line in list(self.log) if len(line.split()) > 1]

    def url(self, name: str = "") -> str:
        from urllib.parse import quote

        return f"{self.base_url}/{quote(name)}"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
