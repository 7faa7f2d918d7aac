"""The deployment path for real: a local Prefect server (SQLite, API auth on, run logs streamed to
``--watch``) on a loopback port, ``fsclap prefect setup`` (work pools, gpu limit, the project's
prefect.yaml deployed on a data root), workers started without any fsclap environment, and
``prefect deployment run ... --watch`` for build-corpus, train-fsclap, evaluate-fsclap and the
nightly refresh -- the commands the README gives. Everything started here is stopped by its
process id."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from fsclap.testing.webhook import webhook_receiver

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
FSCLAP = str(Path(sys.executable).with_name("fsclap"))
AUTH = "fsclap:test-secret"
TINY = [
    "model.d_model=32",
    "model.embed_dim=32",
    "model.heads=4",
    "model.dropout=0.0",
    "model.audio={dim: 32, blocks: 2, n_mels: 32, max_seconds: 2.0, dropout: 0.1}",
    "freeze_text=true",
    "workers=0",
    "epochs=1",
    "batch_size=4",
    "grad_accum=1",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """Background processes of the test, each in its own process group (a worker's flow-run
    processes go with it), stopped by process id."""

    def __init__(self, env: dict, logs: Path):
        self.env, self.logs, self.procs = env, logs, []

    def start(self, name: str, *args: str, extra_env: dict | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")
        proc = subprocess.Popen(
            [PREFECT, *args],
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]


def prefect(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PREFECT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def fsclap(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FSCLAP, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def inspect_deployment(env: dict, name: str) -> dict:
    return json.loads(prefect(env, "deployment", "inspect", name, "--output", "json").stdout)


def run_deployment(env: dict, name: str, params: dict) -> subprocess.CompletedProcess:
    """`prefect deployment run NAME --param KEY=VALUE ... --watch`, one flat parameter each (the
    value as JSON, which a plain path also is to Prefect's CLI)."""
    given = [f"{key}={json.dumps(value)}" for key, value in params.items()]
    return prefect(
        env, "deployment", "run", name, *(w for g in given for w in ("--param", g)), "--watch"
    )


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 90) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if server.poll() is not None:
            raise RuntimeError("prefect server exited")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise TimeoutError(f"no answer from {url} within {timeout} s")


@pytest.mark.server
def test_deploy_and_run_every_flow_through_a_local_server(
    tmp_path, served, episode_urls, sources_file
):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FSCLAP_")},  # workers need none
        "CI": "1",
        "COLUMNS": "250",  # --watch output unwrapped
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_API_AUTH_STRING": AUTH,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "fsclap",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    stack = Stack(env, tmp_path)
    webhook = webhook_receiver()  # the notifications of the second setup go here
    hook_url, posted = webhook.__enter__()
    data_root = tmp_path / "data"
    sources = sources_file(tmp_path / "sources.yaml", episode_urls(served)[:2])
    timings = {}
    try:
        start = time.monotonic()
        server = stack.start(
            "server",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            extra_env={
                "PREFECT_SERVER_API_AUTH_STRING": AUTH,
                # `deployment run --watch` shows the run's logs (a failure's reason) only with these
                "PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "true",
                "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED": "true",
            },
        )
        timings["server healthy"] = wait_healthy(f"{api}/health", server)
        # API auth is on: anything but the health probe needs the credentials
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(
                urllib.request.Request(f"{api}/flows/filter", data=b"{}", method="POST"), timeout=5
            )
        assert denied.value.code == 401

        # pools, gpu limit, automation, every deployment on the data root; no sources.yaml there
        # yet: the nightly refresh is deployed with its schedule paused
        setup = fsclap(env, "prefect", "setup", "--data-root", str(data_root))
        assert setup.returncode == 0, f"{setup.stdout[-3000:]}\n{setup.stderr[-3000:]}"
        assert "cpu (process, created), gpu (process, created)" in setup.stdout, setup.stdout
        assert "tag gpu, 1 slot(s), created" in setup.stdout
        assert "schedule 0 3 * * * UTC PAUSED" in setup.stdout and "warning:" in setup.stdout
        for pool in ("cpu", "gpu"):
            assert prefect(env, "work-pool", "inspect", pool).returncode == 0
        automation = subprocess.run(
            [sys.executable, "-m", "flows.automations"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )  # setup created it; idempotent
        assert automation.returncode == 0 and automation.stdout.startswith("exists"), (
            automation.stderr[-2000:]
        )
        for name in (
            "build-corpus/nightly-refresh",
            "build-corpus/adhoc",
            "build-corpus/paper-gpu",
            "train-fsclap/gpu",
            "evaluate-fsclap/gpu",
        ):
            assert inspect_deployment(env, name)["parameters"]["data_root"] == str(data_root), name
        nightly = inspect_deployment(env, "build-corpus/nightly-refresh")
        assert nightly["schedules"][0]["schedule"]["cron"] == "0 3 * * *"
        assert nightly["schedules"][0]["active"] is False
        # the form the UI shows: flat parameters, each described (the flow's docstring)
        fields = nightly["parameter_openapi_schema"]["properties"]
        assert "params" not in fields and fields["sources"]["description"].startswith("Sources")
        timings["setup"] = time.monotonic() - start - timings["server healthy"]

        # a value of the wrong type is refused by the server against the flow's schema: no run
        refused = run_deployment(
            env, "build-corpus/adhoc", {"sources": str(sources), "profile": "gpu"}
        )
        assert refused.returncode == 1 and "profile" in refused.stdout + refused.stderr

        stack.start("cpu-worker", "worker", "start", "--pool", "cpu")
        stack.start("gpu-worker", "worker", "start", "--pool", "gpu")
        # a value the flow's model refuses: the run fails first thing, with a one-line reason
        # that --watch shows (the run's logs) and the run's state carries
        never = tmp_path / "never"
        failed = run_deployment(
            env,
            "build-corpus/adhoc",
            {"sources": str(sources), "data_root": str(never), "acquire_retries": -1},
        )
        reason = "invalid parameters: acquire_retries: Input should be greater than or equal to 0"
        assert failed.returncode == 1 and "Failed" in failed.stdout, failed.stdout[-3000:]
        assert f"FsclapError: {reason}" in failed.stdout, failed.stdout[-3000:]
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", failed.stdout).group(1)
        state = json.loads(prefect(env, "flow-run", "inspect", run_id, "--output", "json").stdout)
        assert state["state"]["message"] == (
            f"Flow run encountered an exception: FsclapError: {reason}"
        ), state["state"]
        assert not never.exists()
        # the deployments' data_root parameter: no data_root given, no FSCLAP_DATA_ROOT anywhere
        for name, params in (
            ("build-corpus/adhoc", {"sources": str(sources)}),
            ("train-fsclap/gpu", {"train_overrides": TINY}),
            ("evaluate-fsclap/gpu", {"split": "val", "plot": False}),
        ):
            began = time.monotonic()
            done = run_deployment(env, name, params)
            timings[name] = time.monotonic() - began
            assert done.returncode == 0 and "Completed" in done.stdout, (
                f"{name}:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}\n"
                f"cpu worker:\n{stack.log('cpu-worker')}\ngpu worker:\n{stack.log('gpu-worker')}"
            )

        for key in (
            "build-corpus-summary",
            "train-fsclap-summary",
            "train-fsclap-curves",
            "evaluate-fsclap-report",
        ):
            shown = prefect(env, "artifact", "inspect", key, "--output", "json")
            assert shown.returncode == 0, f"{key}: {shown.stderr[-2000:]}"
            latest = json.loads(shown.stdout)[0]
            if key == "build-corpus-summary":
                assert "through all stages: **2**" in latest["data"]
        check_trained_data_root(data_root)

        # setup on a second data root with a sources file of local episodes: written to
        # DATA_ROOT/sources.yaml, the schedule active; the nightly refresh (triggered now) builds it
        began = time.monotonic()
        nightly_root = tmp_path / "nightly"
        local = sources_file(tmp_path / "local.yaml", episode_urls(None)[:1])
        setup = fsclap(
            env, "prefect", "setup", "--data-root", str(nightly_root), "--sources", str(local),
            "--notify-url", hook_url,
        )  # fmt: skip
        assert setup.returncode == 0, f"{setup.stdout[-3000:]}\n{setup.stderr[-3000:]}"
        assert "(process, exists)" in setup.stdout and "warning:" not in setup.stdout
        assert "'fsclap: recover after a crashed run' (exists)" in setup.stdout
        assert "'fsclap: notify on new datasets' (created)" in setup.stdout
        # (read through the API: `prefect deployment inspect -o json` of a deployment that an
        # automation runs fails in Prefect 3.9 — its JSON dump meets the trigger's timedelta)
        recovery = subprocess.run(
            [sys.executable, "-c", "from prefect import get_client\n"
             "with get_client(sync_client=True) as c:\n"
             "    print(c.read_deployment_by_name('recover-crashed-runs/recovery').parameters)"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert recovery.returncode == 0 and recovery.stdout.strip() == "{}", recovery.stderr[-2000:]
        nightly = inspect_deployment(env, "build-corpus/nightly-refresh")
        assert nightly["schedules"][0]["active"] is True
        assert nightly["parameters"]["data_root"] == str(nightly_root)
        refreshed = run_deployment(env, "build-corpus/nightly-refresh", {})
        timings["setup + nightly-refresh"] = time.monotonic() - began
        assert refreshed.returncode == 0 and "Completed" in refreshed.stdout, (
            f"{refreshed.stdout[-3000:]}\ncpu worker:\n{stack.log('cpu-worker')}"
        )
        # the refresh published a dataset: the notification automation posted it to the webhook
        deadline = time.monotonic() + 60
        while not any("published" in p.get("subject", "") for p in posted):
            assert time.monotonic() < deadline, f"no dataset notification: {posted}"
            time.sleep(1)
    finally:
        stack.stop()
        webhook.__exit__(None, None, None)
    assert all(proc.poll() is not None for _, proc in stack.procs)
    print("\n".join(f"{k}: {v:.1f} s" for k, v in timings.items()))
    refreshed = pd.read_parquet(nightly_root / "manifests" / "episodes.parquet")
    assert (refreshed["status"] == "published").sum() == 1


def check_trained_data_root(data_root: Path) -> None:
    """Two episodes built and published, a run trained on the dataset and evaluated."""
    episodes = pd.read_parquet(data_root / "manifests" / "episodes.parquet")
    assert (episodes["status"] == "published").sum() == 2
    clips = pd.read_parquet(data_root / "manifests" / "clips.parquet")
    assert len(clips) >= 2 and clips["caption"].str.len().gt(10).all()
    version = (data_root / "datasets" / "LATEST").read_text().strip()
    run_dir = data_root / "runs" / f"fsclap-{version}"
    assert (run_dir / "checkpoints" / "best" / "model.safetensors").is_file()
    metrics = json.loads((run_dir / "eval" / "val" / "metrics.json").read_text())
    assert metrics["n"] == len(pd.read_parquet(data_root / "datasets" / version / "val.parquet"))
