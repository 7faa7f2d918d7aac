"""``fsclap prefect demo``: the README's Prefect section as one command, kept up until Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fsclap.demo_prefect import descendants, port_in_use, run_prefect_demo
from fsclap.errors import FsclapError
from fsclap.testing.media import closed_port

FSCLAP = str(Path(sys.executable).with_name("fsclap"))


def test_a_port_in_use_or_an_unknown_run_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert port_in_use(port)
        with pytest.raises(FsclapError, match=f"port {port} is in use"):
            run_prefect_demo(tmp_path, port=port, runs=[], wait=False, say=lambda _: None)
    with pytest.raises(FsclapError, match="unknown run"):
        run_prefect_demo(tmp_path, port=closed_port(), runs=["deploy"], wait=False)
    assert not (tmp_path / "logs").exists()


@pytest.mark.server
def test_the_demo_builds_prints_the_links_and_stops_everything_on_ctrl_c(tmp_path):
    """The stack (server with auth, setup on generated dramas, a worker per pool) runs the nightly
    build, prints where to look, waits; Ctrl-C stops every process it started."""
    port = closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FSCLAP_", "PREFECT_"))}
    demo = subprocess.Popen(
        [FSCLAP, "prefect", "demo", "--folder", str(tmp_path), "--port", str(port)]
        + ["--runs", "build"],
        env={**env, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the SIGINT below is the terminal's Ctrl-C, for the demo alone
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "press Ctrl-C" in line:
                break
        output = "".join(lines)
        assert "press Ctrl-C" in output, output[-4000:]
        assert "build-corpus/nightly-refresh: Completed" in output, output[-4000:]
        assert f"Prefect UI: http://127.0.0.1:{port}  (log in with admin:" in output
        assert (tmp_path / "data" / "datasets" / "LATEST").exists()
        started = descendants(demo.pid)
        assert port_in_use(port) and len(started) >= 3  # server, two workers (and their children)
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert demo.returncode == 0, (output + rest)[-3000:]
    assert "stopping the workers and the server" in rest
    time.sleep(1)
    alive = [pid for pid in started if Path(f"/proc/{pid}").exists()]
    assert not alive, alive
    assert not port_in_use(port)
