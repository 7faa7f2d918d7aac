"""The load a flow puts on a Prefect API server: a local server to run flows against, what that
server's processes use (CPU, peak memory), and what this process sends it (``benchmarks/scale.py
--executor prefect``).

Since Prefect 3 the flow's process creates task runs itself and reports every state change as an
*event* over a websocket; the server's task-run recorder turns those events into task-run rows. So
the load has two parts, counted by :class:`ApiCalls`: HTTP requests (flow run, artifacts, logs,
result and cache look-ups) and events. Nothing here imports Prefect at module level: a process
must set ``PREFECT_API_URL`` before Prefect reads its settings.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

#: UUIDs in API paths, replaced so that requests are counted per route.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(
    url: str, process: subprocess.Popen, timeout_s: float, every_s: float = 0.3
) -> str:
    """Poll a server's health ``url`` until it answers 200: ``"healthy"``, or ``"exited"`` when
    its ``process`` ended first, or ``"timeout"`` after ``timeout_s`` (callers say why)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return "exited"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return "healthy"
        except (urllib.error.URLError, OSError):
            time.sleep(every_s)
    return "timeout"


class LocalServer:
    """``prefect server start`` on a free loopback port over a SQLite database in ``home``, without
    the UI, in a process group of its own (stopped by its id on exit)."""

    def __init__(self, home: Path, startup_timeout_s: float = 120.0):
        self.home = Path(home)
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self.startup_s = 0.0

    def env(self) -> dict[str, str]:
        """The environment of a process that runs flows against this server."""
        return {
            "PREFECT_API_URL": self.api_url,
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }

    def __enter__(self) -> LocalServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **self.env(),
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{self.home / 'prefect.db'}",
            "PREFECT_SERVER_UI_ENABLED": "false",
        }
        env.pop("PREFECT_API_URL")  # the server's own settings name no server to talk to
        log = open(self.home / "server.log", "w")  # noqa: SIM115 - the server writes it until stopped
        start = time.monotonic()
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("prefect")), "server", "start"]
            + ["--host", "127.0.0.1", "--port", str(self.port), "--no-ui", "--analytics-off"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - start
        return self

    def _wait_healthy(self) -> None:
        outcome = wait_until_healthy(f"{self.api_url}/health", self.process, self.startup_timeout_s)
        if outcome == "exited":
            tail = (self.home / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"prefect server exited ({self.process.returncode}):\n{tail}")
        if outcome == "timeout":
            raise TimeoutError(f"prefect server: no answer within {self.startup_timeout_s:.0f} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def __exit__(self, *exc) -> None:
        self.stop()


def process_group_usage(pgid: int) -> dict[str, float]:
    """CPU seconds (user + system, with waited-for children) and the sum of the peak resident
    memories (VmHWM, MB) of the processes of group ``pgid`` that are alive now (Linux /proc)."""
    cpu_s, peak_mb = 0.0, 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) != pgid:  # fields[0] is the state: pgrp is the 5th field of stat
                continue
            cpu_s += sum(int(f) for f in fields[11:15]) / ticks  # utime stime cutime cstime
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_mb += int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
    return {"cpu_s": cpu_s, "peak_mb": peak_mb}


class ApiCalls:
    """Counts what this process sends to the Prefect API while installed (restored on exit).

    HTTP: every request of Prefect's clients goes through ``PrefectHttpxAsyncClient.send`` or
    ``PrefectHttpxSyncClient.send``, wrapped here at class level (so clients made before or after,
    in any thread, count); a request is counted once, however often Prefect's client retries it.
    Events: ``EventsClient.emit``, which Prefect's events worker calls once per event. Task runs:
    the distinct task runs the events are about (what the server will record)."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.task_run_ids: set[str] = set()
        self._lock = threading.Lock()
        self._saved: list[tuple[type, str, object]] = []

    def __enter__(self) -> ApiCalls:
        from prefect.client.base import PrefectHttpxAsyncClient, PrefectHttpxSyncClient
        from prefect.events.clients import EventsClient

        calls = self
        async_send = PrefectHttpxAsyncClient.send
        sync_send = PrefectHttpxSyncClient.send
        emit = EventsClient.emit

        async def counted_async_send(client, request, *args, **kwargs):
            calls._request(request)
            return await async_send(client, request, *args, **kwargs)

        def counted_sync_send(client, request, *args, **kwargs):
            calls._request(request)
            return sync_send(client, request, *args, **kwargs)

        async def counted_emit(client, event):
            calls._event(event)
            return await emit(client, event)

        for owner, name, replacement in (
            (PrefectHttpxAsyncClient, "send", counted_async_send),
            (PrefectHttpxSyncClient, "send", counted_sync_send),
            (EventsClient, "emit", counted_emit),
        ):
            self._saved.append((owner, name, owner.__dict__[name]))
            setattr(owner, name, replacement)
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()

    def _request(self, request) -> None:
        route = _UUID.sub("{id}", request.url.path)
        with self._lock:
            self.requests[f"{request.method} {route}"] += 1

    def _event(self, event) -> None:
        resource = event.resource.id
        with self._lock:
            self.events[event.event] += 1
            if resource.startswith("prefect.task-run."):
                self.task_run_ids.add(resource.removeprefix("prefect.task-run."))

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "http_requests": sum(self.requests.values()),
                "events": sum(self.events.values()),
                "task_runs_reported": len(self.task_run_ids),
                "requests_by_route": dict(self.requests.most_common()),
                "events_by_name": dict(self.events.most_common()),
            }


def recorded_task_runs(flow_run_id, expected: int, timeout_s: float = 600.0) -> tuple[int, float]:
    """The task runs the server has recorded for ``flow_run_id``, waiting until there are
    ``expected`` (it records them from events, behind the flow), and how long that wait took."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    start = time.monotonic()
    flow_runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    body = {"flow_runs": flow_runs.model_dump(mode="json", exclude_unset=True)}
    with get_client(sync_client=True) as client:
        while True:  # the client has no count_task_runs; the route it would call
            count = client.request("POST", "/task_runs/count", json=body).json()
            waited = time.monotonic() - start
            if count >= expected or waited > timeout_s:
                return count, waited
            time.sleep(0.5)
