"""``fsclap prefect demo`` (``make prefect-demo``): the README's "Running it from Prefect" as one
command. It starts a local Prefect server with API auth, sets it up (``fsclap prefect setup
--demo-sources``: work pools, limits, automations, every deployment on a data root of generated
dramas), starts a worker per pool, runs the nightly build, training and evaluation deployments one
after another (``prefect deployment run ... --watch``, their output shown as it comes), prints
where to look in the UI, and keeps the stack up until Ctrl-C, then stops everything it started.

Everything runs as the commands a user would type, in subprocesses of their own session (so the
terminal's Ctrl-C reaches only this process, which stops them in order: workers with the flow
runs they started, then the server). The server's database and settings live in
``FOLDER/prefect-home``, not ``~/.prefect``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flows.server_load import wait_until_healthy
from fsclap.errors import FsclapError

#: The demo's training overrides: a small corpus trains in about a minute and a half on a CPU.
DEMO_TRAIN_OVERRIDES = ["epochs=15", "freeze_text=true"]
#: What the demo runs, in order: name -> (deployment, flat parameters as JSON values).
DEMO_RUNS: dict[str, tuple[str, dict[str, str]]] = {
    "build": ("build-corpus/nightly-refresh", {}),
    "train": ("train-fsclap/gpu", {"train_overrides": json.dumps(DEMO_TRAIN_OVERRIDES)}),
    "evaluate": ("evaluate-fsclap/gpu", {}),
}
HEALTH_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def descendants(pid: int) -> list[int]:
    """Every living process under ``pid`` (a worker's flow-run processes start sessions of their
    own, so stopping the worker's process group does not reach them)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


@dataclass
class PrefectDemo:
    """The stack of the demo: one server, one worker per pool, on ``folder``."""

    folder: Path
    port: int = 4200
    say: Callable[[str], None] = print
    auth: str = field(default_factory=lambda: f"admin:{secrets.token_urlsafe(12)}")
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder).expanduser().absolute()
        self.data_root = self.folder / "data"
        self.logs = self.folder / "logs"
        self.ui = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.ui}/api"
        bin_dir = Path(sys.executable).parent
        self.prefect, self.fsclap = str(bin_dir / "prefect"), str(bin_dir / "fsclap")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
            "PREFECT_HOME": str(self.folder / "prefect-home"),
            "PREFECT_API_URL": self.api,
            "PREFECT_API_AUTH_STRING": self.auth,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }

    # --- the stack ------------------------------------------------------------------------------

    def start(self) -> None:
        if port_in_use(self.port):
            raise FsclapError(
                f"port {self.port} is in use (another Prefect server?); choose one with --port"
            )
        self.logs.mkdir(parents=True, exist_ok=True)
        self.say(f"starting a Prefect server on {self.ui} (logs in {self.logs})")
        server = self._background(
            "server",
            [self.prefect, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            extra_env={
                "PREFECT_SERVER_API_AUTH_STRING": self.auth,
                # `deployment run --watch` shows a run's logs (a failure's reason) only so
                "PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "true",
                "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED": "true",
            },
        )
        self._wait_healthy(server)
        self.say("setting it up: work pools, limits, automations, deployments, generated dramas")
        setup = subprocess.run(
            [self.fsclap, "prefect", "setup", "--data-root", str(self.data_root), "--demo-sources"],
            env=self.env,
            capture_output=True,
            text=True,
        )
        if setup.returncode != 0:
            raise FsclapError(f"fsclap prefect setup failed: {_last_line(setup.stderr)}")
        for pool in ("cpu", "gpu"):
            self._background(f"{pool}-worker", [self.prefect, "worker", "start", "--pool", pool])

    def run(self, name: str) -> bool:
        """Run one of :data:`DEMO_RUNS` with ``--watch``, its output shown; whether it Completed."""
        deployment, params = DEMO_RUNS[name]
        command = [self.prefect, "deployment", "run", deployment, "--watch"]
        for key, value in params.items():
            command += ["--param", f"{key}={value}"]
        self.say(f"\n$ prefect deployment run {deployment} --watch")
        started = time.monotonic()
        shown: list[str] = []
        # through a pipe Prefect would wrap at 80 columns: give it this terminal's width
        width = str(shutil.get_terminal_size().columns)
        with subprocess.Popen(
            command,
            env={**self.env, "COLUMNS": width},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as watch:
            for line in watch.stdout:  # as it comes: the run's events and logs
                shown.append(line)
                sys.stdout.write(line)
                sys.stdout.flush()
        ok = watch.returncode == 0 and "Completed" in "".join(shown)
        status = "Completed" if ok else "did not complete"
        self.say(f"{deployment}: {status} in {time.monotonic() - started:.0f} s")
        return ok

    def stop(self) -> None:
        """Stop everything started here: workers (and the flow runs they started), then the server."""
        for _, proc in reversed(self.procs):
            if proc.poll() is not None:
                continue
            below = descendants(proc.pid)
            _signal_group(proc.pid, signal.SIGTERM)
            for pid in below:  # flow-run processes in sessions of their own
                _signal_group(pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)
        self.procs.clear()

    def links(self) -> str:
        return "\n".join(
            [
                f"Prefect UI: {self.ui}  (log in with {self.auth})",
                f"  flow runs:   {self.ui}/runs",
                f"  deployments: {self.ui}/deployments",
                f"  artifacts:   {self.ui}/artifacts",
                f"data root: {self.data_root}",
                "from another shell: "
                f"export PREFECT_API_URL={self.api} PREFECT_API_AUTH_STRING={self.auth}",
            ]
        )

    # --- helpers -----------------------------------------------------------------------------

    def _background(
        self, name: str, command: list[str], extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "w") as log:  # the child keeps its own handle
            proc = subprocess.Popen(
                command,
                env={**self.env, **(extra_env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops this in order
            )
        self.procs.append((name, proc))
        return proc

    def _wait_healthy(self, server: subprocess.Popen) -> None:
        outcome = wait_until_healthy(f"{self.api}/health", server, HEALTH_TIMEOUT_S, every_s=0.5)
        if outcome == "exited":
            log = (self.logs / "server.log").read_text(errors="replace")
            raise FsclapError(f"prefect server exited: {_last_line(log)}")
        if outcome == "timeout":
            raise FsclapError(f"the Prefect server did not answer within {HEALTH_TIMEOUT_S:.0f} s")


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        pass


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def run_prefect_demo(
    folder: Path,
    port: int = 4200,
    runs: list[str] | None = None,
    wait: bool = True,
    say: Callable[[str], None] = print,
) -> int:
    """Start the stack, run ``runs`` (default: build, train, evaluate; a failed one stops the
    rest), print the links and wait for Ctrl-C (``wait``), then stop everything. Exit code: 0
    when every run Completed."""
    runs = list(DEMO_RUNS) if runs is None else runs
    unknown = sorted(set(runs) - set(DEMO_RUNS))
    if unknown:
        raise FsclapError(f"unknown run(s): {', '.join(unknown)} (runs: {', '.join(DEMO_RUNS)})")
    demo = PrefectDemo(Path(folder), port=port, say=say)
    failed = False
    previous = _stop_on_sigterm()
    try:
        demo.start()
        for name in runs:
            if not demo.run(name):
                failed = True
                say(f"stopping here: see the run's page in the UI ({demo.ui}/runs)")
                break
        say("\n" + demo.links())
        if wait:
            say("\nThe stack keeps running; press Ctrl-C to stop the server and the workers.")
            while all(proc.poll() is None for _, proc in demo.procs):
                time.sleep(1)
            say("a process of the stack exited on its own; stopping the rest")
            failed = True
    except KeyboardInterrupt:
        say("\nstopping the workers and the server")
    finally:
        demo.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 1 if failed else 0


def _stop_on_sigterm():
    """``kill PID`` stops the stack like Ctrl-C does (only the main thread may set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)
