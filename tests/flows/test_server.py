"""The deployment path for real: a local Prefect server (SQLite, API auth on, run logs streamed to
``--watch``) on a loopback port, ``fsclap prefect setup`` (work pools, gpu limit, the project's
prefect.yaml deployed on a data root, the automations, notifications to a loopback webhook),
workers started without any fsclap environment, and ``prefect deployment run ... --watch`` for
build-corpus, train-fsclap, evaluate-fsclap and the nightly refresh -- the commands the README
gives; then the Prefect UI of that server in headless Chromium; then a worker killed mid-build
(``kill -9``): the server marks its run Crashed, the automations close its task runs, start the
build again and notify. The tests share one server fixture. Everything started here is stopped
by its process id."""

from __future__ import annotations

import base64
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
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from flows.server_load import wait_until_healthy
from fsclap.demo_prefect import descendants
from fsclap.testing.browser import CHROMIUM, headless_chromium, prefect_ui_login, prefect_ui_tab
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
        self.timings: dict[str, float] = {}

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
        # a worker starts each flow run in a session of its own: its group is stopped too
        runs = {
            group
            for _, proc in self.procs
            if proc.poll() is None
            for group in process_groups(descendants(proc.pid))
        }
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for group in runs - {proc.pid for _, proc in self.procs}:
            try:
                os.killpg(group, signal.SIGKILL)  # a flow run its worker left behind
            except ProcessLookupError:
                pass

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]


def process_groups(pids: list[int]) -> set[int]:
    groups = set()
    for pid in pids:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    return groups


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


def flow_run(env: dict, run: subprocess.CompletedProcess) -> dict:
    """The flow run that `prefect deployment run` made (its output names the run's UUID)."""
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout).group(1)
    return json.loads(prefect(env, "flow-run", "inspect", run_id, "--output", "json").stdout)


def run_deployment(
    env: dict, name: str, params: dict, watch: bool = True
) -> subprocess.CompletedProcess:
    """`prefect deployment run NAME --param KEY=VALUE ... --watch`, one flat parameter each (the
    value as JSON, which a plain path also is to Prefect's CLI); without ``watch`` it returns
    once the run is created."""
    given = [f"{key}={json.dumps(value)}" for key, value in params.items()]
    return prefect(
        env,
        "deployment",
        "run",
        name,
        *(w for g in given for w in ("--param", g)),
        *(["--watch"] if watch else []),
    )


def api(stack: Stack, path: str, body: dict | None = None):
    """The server's REST API with the auth string (what the Prefect client sends): POST ``body``
    to ``path``, or GET it; the JSON answer. Cheap enough to poll, unlike the CLI."""
    token = base64.b64encode(AUTH.encode()).decode()
    request = urllib.request.Request(
        f"{stack.api}/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for(what: str | Callable[[], str], check, timeout: float, every: float = 1.0):
    """Poll ``check()`` until it returns something true, and return that; fail after ``timeout``
    seconds naming ``what`` (a callable: what it says then)."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not within {timeout:.0f} s: {what() if callable(what) else what}"
            )
        time.sleep(every)
    return found


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 90) -> float:
    start = time.monotonic()
    outcome = wait_until_healthy(url, server, timeout)
    if outcome == "exited":
        raise RuntimeError("prefect server exited")
    if outcome == "timeout":
        raise TimeoutError(f"no answer from {url} within {timeout} s")
    return time.monotonic() - start


@pytest.fixture(scope="module")
def prefect_stack(tmp_path_factory, served, episode_urls, sources_file) -> Iterator[Stack]:
    """The server (API auth on), `fsclap prefect setup` on a data root with notifications to a
    loopback webhook (``stack.posted`` collects them), a worker for each pool and one
    build-corpus/adhoc run of two served episodes: what the tests of this module share (the
    server start and the first build are the slow part). Their output is kept on the stack for
    the tests to check; everything is stopped by process id at the end of the module."""
    tmp = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FSCLAP_")},  # workers need none
        "CI": "1",
        "COLUMNS": "250",  # --watch output unwrapped
        "PREFECT_HOME": str(tmp / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_API_AUTH_STRING": AUTH,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "fsclap",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    stack = Stack(env, tmp)
    stack.api, stack.ui, stack.tmp = api, api.removesuffix("/api"), tmp
    stack.data_root = tmp / "data"
    stack.sources = sources_file(tmp / "sources.yaml", episode_urls(served)[:2])
    with webhook_receiver() as (stack.hook_url, stack.posted):
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
                    # `deployment run --watch` shows the run's logs (a failure's reason) only so
                    "PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "true",
                    "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED": "true",
                },
            )
            stack.timings["server healthy"] = wait_healthy(f"{api}/health", server)
            # pools, gpu limit, automations, every deployment on the data root; no sources.yaml
            # there yet: the nightly refresh is deployed with its schedule paused
            stack.setup = fsclap(
                env, "prefect", "setup", "--data-root", str(stack.data_root),
                "--notify-url", stack.hook_url,
            )  # fmt: skip
            stack.timings["setup"] = time.monotonic() - start - stack.timings["server healthy"]
            stack.start("cpu-worker", "worker", "start", "--pool", "cpu")
            stack.start("gpu-worker", "worker", "start", "--pool", "gpu")
            # no data_root given (the deployment's parameter), no FSCLAP_DATA_ROOT anywhere
            began = time.monotonic()
            stack.adhoc = run_deployment(env, "build-corpus/adhoc", {"sources": str(stack.sources)})
            stack.timings["build-corpus/adhoc"] = time.monotonic() - began
            yield stack
        finally:
            stack.stop()
    assert all(proc.poll() is not None for _, proc in stack.procs)
    print("\n".join(f"{k}: {v:.1f} s" for k, v in stack.timings.items()))


def check_completed(stack: Stack, name: str, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0 and "Completed" in done.stdout, (
        f"{name}:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}\n"
        f"cpu worker:\n{stack.log('cpu-worker')}\ngpu worker:\n{stack.log('gpu-worker')}"
    )


@pytest.mark.server
def test_deploy_and_run_every_flow_through_a_local_server(
    prefect_stack, episode_urls, sources_file
):
    stack = prefect_stack
    env, data_root, sources, tmp_path = stack.env, stack.data_root, stack.sources, stack.tmp
    timings = stack.timings
    # API auth is on: anything but the health probe needs the credentials
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(
            urllib.request.Request(f"{stack.api}/flows/filter", data=b"{}", method="POST"),
            timeout=5,
        )
    assert denied.value.code == 401

    setup = stack.setup
    assert setup.returncode == 0, f"{setup.stdout[-3000:]}\n{setup.stderr[-3000:]}"
    assert "cpu (process, created), gpu (process, created)" in setup.stdout, setup.stdout
    assert "tag gpu, 1 slot(s), created" in setup.stdout
    assert "schedule 0 3 * * * UTC PAUSED" in setup.stdout and "warning:" in setup.stdout
    assert "'fsclap: notify on failed or crashed runs' (created)" in setup.stdout
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
    assert automation.returncode == 0, automation.stderr[-2000:]
    assert automation.stdout.startswith("exists"), automation.stdout
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

    # a value of the wrong type is refused by the server against the flow's schema: no run
    refused = run_deployment(env, "build-corpus/adhoc", {"sources": str(sources), "profile": "gpu"})
    assert refused.returncode == 1 and "profile" in refused.stdout + refused.stderr

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
    state = flow_run(env, failed)
    assert state["state"]["message"] == (
        f"Flow run encountered an exception: FsclapError: {reason}"
    ), state["state"]
    assert not never.exists()
    # the deployments' data_root parameter: no data_root given, no FSCLAP_DATA_ROOT anywhere
    # (build-corpus/adhoc ran in the fixture)
    check_completed(stack, "build-corpus/adhoc", stack.adhoc)
    for name, params in (
        ("train-fsclap/gpu", {"train_overrides": TINY}),
        ("evaluate-fsclap/gpu", {"split": "val", "plot": False}),
    ):
        began = time.monotonic()
        done = run_deployment(env, name, params)
        timings[name] = time.monotonic() - began
        check_completed(stack, name, done)

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
        "--notify-url", stack.hook_url,
    )  # fmt: skip
    assert setup.returncode == 0, f"{setup.stdout[-3000:]}\n{setup.stderr[-3000:]}"
    assert "(process, exists)" in setup.stdout and "warning:" not in setup.stdout
    assert "'fsclap: recover after a crashed run' (exists)" in setup.stdout
    assert "'fsclap: notify on new datasets' (exists)" in setup.stdout
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
    wait_for(
        lambda: f"a notification of the dataset published in {nightly_root}: {stack.posted}",
        lambda: [
            p for p in stack.posted
            if "published" in p.get("subject", "") and str(nightly_root) in p.get("body", "")
        ],
        timeout=60,
    )  # fmt: skip
    refreshed = pd.read_parquet(nightly_root / "manifests" / "episodes.parquet")
    assert (refreshed["status"] == "published").sum() == 1

    # the failed run (long over): notified with its reason, and its log holds the traceback
    # once (Prefect's engine logs it twice; flows/run_logs.py keeps the second line without it)
    subject = f"fsclap: build-corpus run {state['name']} Failed"
    wait_for(
        lambda: f"{subject!r} posted: {stack.posted}",
        lambda: [p for p in stack.posted if p.get("subject") == subject and reason in p["body"]],
        timeout=60,
    )
    logs = wait_for(
        "the failed run's last log line",
        lambda: (
            shown.stdout
            if "traceback above" in (shown := prefect(env, "flow-run", "logs", state["id"])).stdout
            else None
        ),
        timeout=60,
    )
    assert logs.count("Traceback (most recent call last)") == 1, logs
    assert f"fsclap.errors.FsclapError: {reason}" in logs, logs


@pytest.mark.server
@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make system-deps)")
def test_the_prefect_ui_shows_the_build_its_summary_and_the_run_form(prefect_stack, artifacts_dir):
    """The Prefect UI as its users see it, in headless Chromium: log in with the auth string, the
    build-corpus run's page (name, state, task runs), its summary artifact, and the deployment's
    custom run form (the flow's flat parameters, each with its docstring's description)."""
    stack = prefect_stack
    check_completed(stack, "build-corpus/adhoc", stack.adhoc)
    run = flow_run(stack.env, stack.adhoc)
    assert re.fullmatch(
        rf"build-corpus {stack.data_root.name} \d{{4}}-\d\d-\d\d \d\d:\d\d", run["name"]
    )
    deployment = inspect_deployment(stack.env, "build-corpus/adhoc")
    fields = deployment["parameter_openapi_schema"]["properties"]
    began = time.monotonic()
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)  # a single-page app on 2 busy cores
        prefect_ui_login(page, stack.ui, AUTH)

        # the run's page: its name, its state, its task runs named stage/drama/episode
        page.goto(f"{stack.ui}/runs/flow-run/{run['id']}")
        heading = page.locator(".page-heading")
        heading.get_by_text(run["name"], exact=True).wait_for()
        heading.get_by_text("Completed", exact=True).wait_for()
        prefect_ui_tab(page, "Task Runs")
        for episode in (1, 2):
            for stage in ("acquire", "diarize", "caption"):
                page.get_by_text(f"{stage}/drama01/{episode}", exact=True).first.wait_for()
        page.screenshot(path=str(artifacts_dir / "prefect_flow_run.png"), full_page=True)

        # its artifacts: the build summary, rendered from its markdown
        prefect_ui_tab(page, "Artifacts")
        page.get_by_text("build-corpus-failures", exact=True).wait_for()
        page.get_by_text("build-corpus-summary", exact=True).click()
        page.get_by_text("through all stages: 2").wait_for()
        assert "/artifacts/artifact/" in page.url
        page.screenshot(path=str(artifacts_dir / "prefect_artifacts.png"), full_page=True)

        # the deployment's custom run form: the flow's flat parameters, each described
        page.goto(f"{stack.ui}/deployments/deployment/{deployment['id']}/run")
        page.get_by_text("Parameters", exact=True).wait_for()
        assert "params" not in fields and {"sources", "data_root", "stages"} <= set(fields)
        for name, field in fields.items():
            page.get_by_text(re.compile(rf"^{name}( \(Optional\))?$")).wait_for()
            shown = field["description"].replace("`", "")  # markdown: `code` shows as code
            described = page.locator(".p-label__description", has_text=shown)
            assert described.count() == 1, (name, field["description"])
        assert page.get_by_text(re.compile(r"^params( \(Optional\))?$")).count() == 0
        # the page scrolls inside its own frame: a viewport tall enough for every field
        page.set_viewport_size({"width": 1400, "height": 1900})
        page.screenshot(path=str(artifacts_dir / "prefect_run_form.png"), full_page=True)
    stack.timings["browser"] = time.monotonic() - began


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


def flow_runs(stack: Stack, **filters) -> list[dict]:
    """Flow runs through the API's filter (``flow_runs={...}``, ``flows={...}``)."""
    return api(stack, "flow_runs/filter", filters)


def task_runs_of(stack: Stack, flow_run_id: str) -> list[dict]:
    return api(stack, "task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})


@pytest.mark.server
def test_a_killed_worker_s_build_is_crashed_closed_started_again_and_notified(
    prefect_stack, served, episode_urls, sources_file
):
    """A worker is lost mid-build (``kill -9`` of the worker and of its flow-run process: nothing
    is left to report anything) and a replacement worker comes up, as a supervisor would start
    one. Without heartbeats the server marks the run Crashed (flows/automations.py: 90 s of
    silence), its automations run the recovery flow on the replacement worker, which closes the
    task run left Running and starts the build again once with its parameters, and notify the
    crash to the webhook."""
    stack, env = prefect_stack, prefect_stack.env
    began = time.monotonic()
    # a download over a slow link (the acquire stage's rate limit): one episode takes about a
    # minute, so the build is caught with its acquire task running
    params = {
        "sources": str(sources_file(stack.tmp / "slow.yaml", episode_urls(served)[2:3])),
        "data_root": str(stack.tmp / "killed"),
        "overrides": ["stages.acquire.rate_limit=20K"],
    }
    started = run_deployment(env, "build-corpus/adhoc", params, watch=False)
    assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", started.stdout).group(1)

    def running_task():
        return [t for t in task_runs_of(stack, run_id) if t["state_type"] == "RUNNING"]

    running = wait_for(
        lambda: f"a running task of the build\n{stack.log('cpu-worker')}", running_task, 180
    )
    assert running[0]["name"].startswith("acquire/"), running
    run = flow_runs(stack, flow_runs={"id": {"any_": [run_id]}})[0]
    flow_pid = int(str(run["infrastructure_pid"]).rsplit(":", 1)[-1])
    # the stack's worker whose process tree holds the flow run
    worker = next(proc for _, proc in stack.procs if flow_pid in descendants(proc.pid))
    # the worker first (alive, it would report its flow run's death), then the flow run, which
    # runs in a session of its own
    os.killpg(worker.pid, signal.SIGKILL)
    os.killpg(os.getpgid(flow_pid), signal.SIGKILL)
    worker.wait(timeout=10)
    killed = time.monotonic()
    stack.start("cpu-worker-replacement", "worker", "start", "--pool", "cpu")

    def crashed_and_closed():
        run = flow_runs(stack, flow_runs={"id": {"any_": [run_id]}})[0]
        tasks = task_runs_of(stack, run_id)
        closed = all(t["state_type"] not in ("RUNNING", "PENDING") for t in tasks)
        return (run, tasks) if run["state_type"] == "CRASHED" and closed else None

    run, tasks = wait_for("the killed run Crashed, its task runs closed", crashed_and_closed, 300)
    stack.timings["kill -> run Crashed, task runs closed"] = time.monotonic() - killed
    assert "no heartbeat" in run["state"]["message"], run["state"]
    left = next(t for t in tasks if t["id"] == running[0]["id"])
    assert left["state"]["name"] == "Crashed", left["state"]
    assert "process running it is gone" in left["state"]["message"], left["state"]

    # the recovery flow ran (once: nothing else crashed on this server) and started the build
    # again with the same parameters, once
    recovery = wait_for(
        "the recovery flow's run Completed",
        lambda: [
            r
            for r in flow_runs(stack, flows={"name": {"any_": ["recover-crashed-runs"]}})
            if r["state_type"] == "COMPLETED"
        ],
        120,
    )
    assert len(recovery) == 1, recovery
    again = flow_runs(stack, flow_runs={"idempotency_key": {"any_": [f"rerun-of-{run_id}"]}})
    assert len(again) == 1, again
    assert again[0]["parameters"] == run["parameters"] == params
    assert again[0]["deployment_id"] == run["deployment_id"] and "fsclap-rerun" in again[0]["tags"]
    stack.timings["kill -> build started again"] = time.monotonic() - killed

    # the crash was notified, with its reason
    subject = f"fsclap: build-corpus run {run['name']} Crashed"
    wait_for(
        lambda: f"{subject!r} posted: {stack.posted}",
        lambda: [p for p in stack.posted if p.get("subject") == subject and "no heartbeat" in p["body"]],
        timeout=60,
    )  # fmt: skip

    # the re-run would download for another minute: cancelled, as its user could
    cancel = prefect(env, "flow-run", "cancel", again[0]["id"])
    assert cancel.returncode == 0, cancel.stdout[-2000:] + cancel.stderr[-2000:]
    wait_for(
        "the re-run Cancelled",
        lambda: (
            flow_runs(stack, flow_runs={"id": {"any_": [again[0]["id"]]}})[0]["state_type"]
            == "CANCELLED"
        ),
        60,
    )
    stack.timings["kill test"] = time.monotonic() - began
