"""``fsclap prefect setup``: a Prefect server made ready to run fsclap's deployments on one data root.

What it does, idempotently (run it again after any change; existing pools and limits are kept):

* the process work pools ``cpu`` and ``gpu`` the deployments name, the ``gpu`` tag concurrency
  limit (GPU-tagged tasks, one at a time per slot) and the automation that marks runs of dead
  workers Crashed (:mod:`flows.automations`);
* every deployment of ``prefect.yaml``, as ``prefect --no-prompt deploy --all`` does (it runs that
  command on a copy of the file), each with the **parameter** ``data_root`` set to the data root.
  A parameter rather than ``FSCLAP_DATA_ROOT`` in the job variables: it shows in the UI's run form
  and in every run's parameters (which data root a run used is on record), ``--param data_root=``
  overrides it for one run, and a run that passes its own ``env`` job variable (which replaces the
  deployment's ``env`` as a whole) cannot lose it. A worker needs no fsclap environment at all;
* the sources the scheduled refresh builds from, ``DATA_ROOT/sources.yaml``: written from
  ``--sources FILE`` (validated; local paths rebased so the copy finds the same media) or from
  generated dramas (``--demo-sources``), never over an existing file. A scheduled deployment
  that builds from that file (``build-corpus/nightly-refresh``) is deployed with its schedule
  **paused** while the file is missing (setup checks on the machine it runs on): a schedule known
  to fail stays off until setup runs again with the file in place.

The module imports Prefect only inside its functions (the CLI's command modules must not import
it: :mod:`fsclap.cli.lazy`).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from flows.automations import (
    RECOVERY_AUTOMATION,
    ZOMBIE_AUTOMATION,
    ensure_recovery_automation,
    ensure_zombie_automation,
)
from flows.notifications import NOTIFY_BLOCK, ensure_notification_automations, save_webhook_block
from fsclap.errors import FsclapError
from fsclap.io import write_text
from fsclap.layout import DataRoot
from pipeline.sources import is_local, load_sources, local_path
from pipeline.synth import generate_dramas

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Work pools the deployments of prefect.yaml name (process type: a worker runs each flow run as a
#: subprocess of its own environment).
POOLS = ("cpu", "gpu")
GPU_TAG = "gpu"
BUILD_ENTRYPOINT = "flows.build_corpus.build_corpus"
#: The flows that take a data root (the recovery flow does not).
DATA_ROOT_ENTRYPOINTS = (
    BUILD_ENTRYPOINT,
    "flows.train.train_fsclap",
    "flows.evaluate.evaluate_fsclap",
)
#: ``--demo-sources``: generated dramas under DATA_ROOT/demo-dramas (DataRoot.demo_dramas), enough for a dataset split by
#: drama (3 dramas: train, val, test) that builds and trains in minutes on a CPU.
DEMO_DRAMAS, DEMO_EPISODES, DEMO_EPISODE_SECONDS = 3, 3, 40.0


@dataclass
class SetupReport:
    """What setup found and did, printed as its summary."""

    api_url: str = ""
    ui_url: str = ""
    data_root: Path = Path()
    sources: str = ""
    lines: list[str] = field(default_factory=list)
    deployments: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def render(self) -> str:
        out = [
            f"Prefect API {self.api_url} (UI {self.ui_url})",
            *self.lines,
            f"data root {self.data_root}: sources.yaml {self.sources}",
            "deployments (parameter data_root = the data root):",
        ]
        width = max((len(d["name"]) for d in self.deployments), default=0)
        for d in self.deployments:
            schedule = f"  {d['schedule']}" if d["schedule"] else ""
            out.append(f"  {d['name']:<{width}}  pool {d['pool']}{schedule}")
        out += [f"warning: {w}" for w in self.warnings]
        out.append(
            "next: start workers (prefect worker start --pool cpu; prefect worker start --pool gpu)"
        )
        return "\n".join(out)


# --- checks that need no server -----------------------------------------------------------------


def check_data_root(data_root: Path | None) -> Path:
    """The data root the deployments run on: given, absolute (it is a path on the workers)."""
    if data_root is None or not str(data_root).strip():
        raise FsclapError(
            "give --data-root DIR (an absolute path on the workers) or set FSCLAP_DATA_ROOT"
        )
    data_root = Path(data_root).expanduser()
    if not data_root.is_absolute():
        raise FsclapError(
            f"--data-root must be absolute (got {data_root}): flow runs start in a temporary folder on the worker"
        )
    return data_root


def find_prefect_file(given: Path | None) -> Path:
    """``--prefect-file``, else ``prefect.yaml`` of the current folder, else the repository's."""
    candidates = (
        [given] if given is not None else [Path("prefect.yaml"), PROJECT_ROOT / "prefect.yaml"]
    )
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise FsclapError(
        f"deployment file not found: {candidates[0]} (give --prefect-file, or run from the fsclap repository)"
    )


def load_deployment_file(path: Path) -> dict:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise FsclapError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("deployments"), list)
        or not doc["deployments"]
    ):
        raise FsclapError(f"{path} lists no deployments")
    return doc


def builds_from_data_root_sources(deployment: dict) -> bool:
    """A build-corpus deployment without a ``sources`` parameter reads DATA_ROOT/sources.yaml."""
    return deployment.get("entrypoint") == BUILD_ENTRYPOINT and "sources" not in (
        deployment.get("parameters") or {}
    )


def deployment_document(
    doc: dict, data_root: Path, sources_ready: bool, pool_types: dict[str, str] | None = None
) -> dict:
    """``doc`` (prefect.yaml, loaded) with ``data_root`` as the parameter of every deployment whose
    flow takes one (unless it sets one) and the schedules of builds from DATA_ROOT/sources.yaml active only when
    ``sources_ready``; a deployment on a pool of type docker (``pool_types``: pool name -> type)
    also gets that pool's ``definitions.docker_job_variables`` (image, volumes, ...), which a
    process pool does not know."""
    doc = copy.deepcopy(doc)
    docker_jobs = (doc.get("definitions") or {}).get("docker_job_variables") or {}
    for deployment in doc["deployments"]:
        pool = deployment.get("work_pool") or {}
        if (pool_types or {}).get(pool.get("name")) == "docker":
            pool["job_variables"] = {
                **(pool.get("job_variables") or {}),
                **docker_jobs.get(pool["name"], {}),
            }
        parameters = deployment.get("parameters") or {}
        if deployment.get("entrypoint") in DATA_ROOT_ENTRYPOINTS:
            parameters.setdefault("data_root", str(data_root))
        deployment["parameters"] = parameters
        if builds_from_data_root_sources(deployment) and not sources_ready:
            for schedule in deployment.get("schedules") or []:
                schedule["active"] = False
    return doc


def flow_name(entrypoint: str) -> str:
    """The flow's name from a module entrypoint (``flows.train.train_fsclap`` -> ``train-fsclap``)."""
    return entrypoint.rsplit(".", 1)[-1].replace("_", "-")


# --- the sources of the data root --------------------------------------------------------------


def rebased_sources(source: Path, dest_dir: Path) -> str:
    """``source`` (a validated sources file, YAML or CSV) as YAML to be written into ``dest_dir``:
    local paths inside ``dest_dir`` relative to it, other local paths absolute, URLs as they are."""

    loaded = load_sources(source)
    root = dest_dir.resolve()

    def rebase(url: str) -> str:
        if not is_local(url):
            return url
        path = local_path(url, loaded.base_dir)
        return os.path.relpath(path, root) if path.is_relative_to(root) else str(path)

    doc = {
        "min_episodes": loaded.min_episodes,
        "dramas": [
            {**d.model_dump(exclude_none=True), "urls": [rebase(u) for u in d.urls]}
            for d in loaded.dramas
        ],
    }
    header = (
        f"# Written by fsclap prefect setup from {source.resolve()}: what the scheduled refresh of\n"
        "# this data root builds from. Local paths are relative to this folder, or absolute.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def install_sources(source: Path | None, demo: bool, data_root: Path, workers: int = 2) -> str:
    """Write DATA_ROOT/sources.yaml from ``source`` or generated dramas unless it exists; returns
    what the summary says about it."""
    target = DataRoot(data_root).sources_file
    if demo:
        generated = generate_dramas(
            DataRoot(data_root).demo_dramas,
            dramas=DEMO_DRAMAS,
            episodes=DEMO_EPISODES,
            duration_s=DEMO_EPISODE_SECONDS,
            workers=workers,
        )
        source = generated.sources_path
    if source is None:
        return "exists" if target.is_file() else "missing"
    text = rebased_sources(source, data_root)  # validates first: nothing is written for a bad file
    if target.is_file():
        return f"exists (kept; not replaced by {source})"

    write_text(target, text)
    return f"written from {source}"


# --- the server ------------------------------------------------------------------------------


def api_url_or_default(api_url: str | None) -> str:
    """``--api-url``, else the configured PREFECT_API_URL (environment or Prefect profile)."""
    if api_url:
        return api_url.rstrip("/")
    from prefect.settings import get_current_settings

    configured = get_current_settings().api.url
    if not configured:
        raise FsclapError(
            "no Prefect server: give --api-url http://HOST:4200/api or set PREFECT_API_URL "
            "(prefect config set PREFECT_API_URL=...)"
        )
    return configured.rstrip("/")


def pool_types(client) -> dict[str, str]:
    """Type of each of the deployments' work pools (after :func:`ensure_pools_and_limit`)."""
    return {name: client.read_work_pool(name).type for name in POOLS}


def ensure_pools_and_limit(client, gpu_slots: int) -> list[str]:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    done = []
    for name in POOLS:
        try:
            pool = client.read_work_pool(name)
            done.append(f"{name} ({pool.type}, exists)")
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            client.create_work_pool(
                WorkPoolCreate(name=name, type=ProcessWorker.type, base_job_template=template)
            )
            done.append(f"{name} ({ProcessWorker.type}, created)")
    try:
        limit = client.read_concurrency_limit_by_tag(GPU_TAG)
        slots = f"{limit.concurrency_limit} slot(s), exists"
    except ObjectNotFound:
        client.create_concurrency_limit(GPU_TAG, gpu_slots)
        slots = f"{gpu_slots} slot(s), created"
    return [f"work pools: {', '.join(done)}", f"concurrency limit: tag {GPU_TAG}, {slots}"]


def deploy(doc: dict, prefect_file: Path, api_url: str) -> None:
    """``prefect --no-prompt deploy --all`` on ``doc`` written next to ``prefect_file`` (its folder is
    the project the deployments come from), against ``api_url``."""
    env = {**os.environ, "PREFECT_API_URL": api_url}
    with tempfile.TemporaryDirectory(prefix="fsclap-deploy-") as tmp:
        patched = Path(tmp) / "prefect.yaml"
        patched.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "prefect",
                "--no-prompt",
                "deploy",
                "--all",
                "--prefect-file",
                str(patched),
            ],
            cwd=prefect_file.parent,
            env=env,
            capture_output=True,
            text=True,
        )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise FsclapError("prefect deploy --all failed:\n" + "\n".join(tail))


def deployed(client, doc: dict) -> list[dict]:
    """Each deployment of ``doc`` as the server has it: name, pool, data_root, schedules."""
    rows = []
    for spec in doc["deployments"]:
        name = f"{flow_name(spec['entrypoint'])}/{spec['name']}"
        found = client.read_deployment_by_name(name)
        schedules = ", ".join(
            f"{getattr(s.schedule, 'cron', s.schedule)} {getattr(s.schedule, 'timezone', '') or ''} "
            f"{'active' if s.active else 'PAUSED'}".replace("  ", " ")
            for s in found.schedules
        )
        rows.append(
            {
                "name": name,
                "pool": found.work_pool_name,
                "data_root": (found.parameters or {}).get("data_root"),
                "schedule": f"schedule {schedules}" if schedules else "",
                "active": [s.active for s in found.schedules],
            }
        )
    return rows


def ensure_automations(notify_url: str | None, notify_block: str | None) -> list[str]:
    """The crash and recovery automations (flows/automations.py) and, with a webhook URL or a
    saved notification block, the notification automations (flows/notifications.py)."""
    made = [
        (ZOMBIE_AUTOMATION, ensure_zombie_automation()[1]),
        (RECOVERY_AUTOMATION, ensure_recovery_automation()[1]),
    ]
    if notify_url is not None:
        save_webhook_block(notify_url)
        notify_block = NOTIFY_BLOCK
    if notify_block is not None:
        made += ensure_notification_automations(notify_block)
    lines = [f"automation: {name!r} ({'created' if new else 'exists'})" for name, new in made]
    if notify_url is not None:
        lines.append(f"notifications: webhook block {NOTIFY_BLOCK} -> {notify_url}")
    return lines


def run_setup(
    data_root: Path | None,
    sources: Path | None = None,
    demo_sources: bool = False,
    api_url: str | None = None,
    prefect_file: Path | None = None,
    gpu_slots: int = 1,
    workers: int = 2,
    say=print,
    notify_url: str | None = None,
    notify_block: str | None = None,
) -> SetupReport:
    """Everything ``fsclap prefect setup`` does; the options are checked before anything changes."""
    if sources is not None and demo_sources:
        raise FsclapError("give --sources FILE or --demo-sources, not both")
    if notify_url is not None and notify_block is not None:
        raise FsclapError("give --notify-url URL or --notify-block SLUG/NAME, not both")
    if notify_url is not None and not notify_url.startswith(("http://", "https://")):
        raise FsclapError(f"--notify-url must be an http(s) URL (got {notify_url!r})")
    data_root = check_data_root(data_root)
    if sources is not None:
        rebased_sources(sources, data_root)  # a bad sources file stops setup before any change
    path = find_prefect_file(prefect_file)
    spec = load_deployment_file(path)
    api_url = api_url_or_default(api_url)

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    report = SetupReport(api_url=api_url, data_root=data_root)
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        report.ui_url = PREFECT_UI_URL.value() or api_url
        with get_client(sync_client=True) as client:
            try:
                client.hello()
            except Exception as exc:
                raise FsclapError(f"no answer from the Prefect API at {api_url}: {exc}") from None
            report.lines += ensure_pools_and_limit(client, gpu_slots)
            types = pool_types(client)
        if demo_sources:
            say(
                f"generating {DEMO_DRAMAS} dramas x {DEMO_EPISODES} episodes under {DataRoot(data_root).demo_dramas} ..."
            )
        report.sources = install_sources(sources, demo_sources, data_root, workers)
        ready = DataRoot(data_root).sources_file.is_file()
        doc = deployment_document(spec, data_root, ready, types)
        say(f"deploying {len(doc['deployments'])} deployments of {path} ...")
        deploy(doc, path, api_url)
        report.lines += ensure_automations(notify_url, notify_block)
        with get_client(sync_client=True) as client:
            report.deployments = deployed(client, doc)
    paused = [
        d["name"]
        for d, s in zip(report.deployments, doc["deployments"])
        if builds_from_data_root_sources(s) and not all(d["active"])
    ]
    if paused:
        report.warnings.append(
            f"{DataRoot(data_root).sources_file} does not exist here: the schedule of {', '.join(paused)} "
            "is PAUSED (it would fail); write that file (or run setup with --sources FILE or "
            "--demo-sources), then run setup again"
        )
    return report
