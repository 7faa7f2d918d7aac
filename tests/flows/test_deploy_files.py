"""prefect.yaml, docker-compose.yml and the Dockerfile, checked for what they mean rather than what
they literally say (Docker cannot run here): every deployment runs an importable flow with
parameters that flow accepts on a pool that is created and served; the compose services reach each
other, share the data the flows need and set only settings that exist; the image installs the
project with its constraints from files that are in the build context. The documented commands
(README, docs) are checked against the same files."""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from flows.deploy import POOLS as SETUP_POOLS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from setuptools._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/design.md", "docs/orchestration.md")
FLOW_NAMES = ("build-corpus", "train-fsclap", "evaluate-fsclap", "recover-crashed-runs")


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def flow_of(entrypoint: str):
    """The object a module entrypoint (``package.module.attribute``) names."""
    assert ":" not in entrypoint, f"{entrypoint}: flows load from the package, not from a file"
    module, _, attr = entrypoint.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``; required variables get a
    placeholder (as the .env file would give them)."""
    env = env or {}

    def sub(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        if name in env:
            return env[name]
        if op == ":-":
            return arg
        return "user:secret" if op == ":?" else ""

    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:[-?])([^}]*))?\}", sub, str(value))


def doc_text() -> str:
    """The docs plus the commented commands in the deployment files, continuation lines joined."""
    parts = [(ROOT / name).read_text() for name in DOCS]
    for name in ("prefect.yaml", "docker-compose.yml"):
        parts.append(
            "\n".join(
                re.sub(r"^\s*#\s?", "", line)
                for line in (ROOT / name).read_text().splitlines()
                if line.lstrip().startswith("#")
            )
        )
    return re.sub(r"\\\n\s*", " ", "\n".join(parts))


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", "", (ROOT / "Dockerfile").read_text())
    steps = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, args = line.strip().partition(" ")
            steps.append((keyword.upper(), args.strip()))
    return steps


def docker_args() -> dict[str, str]:
    args = {}
    for keyword, rest in dockerfile():
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default.strip('"')
    return args


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` (relative to the context) out of the build context."""
    patterns = [
        p.strip()
        for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    assert not any(p.startswith("!") for p in patterns), "exceptions are not modelled here"
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        for prefix in prefixes:  # excluding a folder excludes everything in it
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and any(
                fnmatch.fnmatchcase("/".join(prefix.split("/")[i:]), pattern[3:])
                for i in range(len(prefix.split("/")))
            ):
                return True
    return False


def deployments() -> list[tuple[str, dict, object]]:
    """(flow-name/deployment-name, deployment, flow) for every deployment in prefect.yaml."""
    found = []
    for deployment in load("prefect.yaml")["deployments"]:
        flow = flow_of(deployment["entrypoint"])
        found.append((f"{flow.name}/{deployment['name']}", deployment, flow))
    return found


def volume_mounts(volumes: list[str]) -> dict[str, str]:
    """Mount target -> source of compose/docker ``source:target[:mode]`` volume strings."""
    return {v.split(":")[1]: v.split(":")[0] for v in volumes}


def pool_workers(compose: dict) -> dict[str, str]:
    """Work pool -> the compose service whose `prefect worker start --pool` serves it."""
    served = {}
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if command[:3] == ["prefect", "worker", "start"]:
            served[command[command.index("--pool") + 1]] = name
    return served


def docker_job(deployment: dict) -> dict:
    """The job variables of ``deployment`` on a docker-type pool: what ``fsclap prefect setup``
    deploys there (prefect.yaml's process-pool variables plus its ``docker_job_variables``)."""
    from flows.deploy import deployment_document

    doc = {**load("prefect.yaml"), "deployments": [deployment]}
    pool = deployment["work_pool"]["name"]
    placed = deployment_document(doc, Path("/data"), True, {pool: "docker"})["deployments"][0]
    return placed["work_pool"]["job_variables"]


def requests_gpu(job_variables: dict) -> bool:
    return any(
        "gpu" in str(request.get("capabilities"))
        for request in job_variables.get("container_create_kwargs", {}).get("device_requests", [])
    )


# --- prefect.yaml -------------------------------------------------------------------------------


def test_deployments_run_importable_flows_named_as_documented():
    from prefect import Flow

    # module entrypoints import from the installed package: workers pull no code
    assert load("prefect.yaml")["pull"] == []
    found = deployments()
    names = [name for name, _, _ in found]
    assert len(names) == len(set(names)), "two deployments with the same full name"
    for name, deployment, flow in found:
        assert isinstance(flow, Flow), f"{deployment['entrypoint']} is not a Prefect flow"
        assert flow.name in FLOW_NAMES, name
    # design.md lists the deployments (flow/deployment, the names `prefect deployment run` takes)
    flows = "|".join(FLOW_NAMES)
    documented = set(re.findall(rf"`((?:{flows})/[a-z0-9-]+)`", doc_text()))
    assert set(names) == documented


@pytest.mark.parametrize("doc", ["docs/design.md", "docs/orchestration.md"])
def test_documented_flow_files_hold_flows_of_those_names(doc):
    """Docs name each flow with its file: `build-corpus` (`flows/build_corpus.py`)."""
    from prefect import Flow

    pairs = re.findall(r"`([a-z-]+)` \(`(flows/\w+)\.py`\)", (ROOT / doc).read_text())
    assert {name for name, _ in pairs} == set(FLOW_NAMES)
    for name, path in pairs:
        module = importlib.import_module(path.replace("/", "."))
        flows = {v.name for v in vars(module).values() if isinstance(v, Flow)}
        assert name in flows, (path, flows)


def test_deployment_parameters_are_parameters_the_flow_accepts():
    from prefect.utilities.schema_tools import validate

    for name, deployment, flow in deployments():
        given = deployment.get("parameters", {})
        schema = flow.parameters.model_dump()
        assert set(given) <= set(schema["properties"]), name
        flow.validate_parameters(given)  # what a run of the deployment goes through
        # ... and what the server checks against the deployment's parameter schema
        assert validate(given, schema, raise_on_error=False) == [], name
        for schedule in deployment.get("schedules") or []:
            flow.validate_parameters({**given, **schedule.get("parameters", {})})


def test_descriptions_the_ui_shows_read_the_same_as_html():
    # the UI renders descriptions as Markdown/HTML: "<data_root>/sources.yaml" would show as
    # "/sources.yaml" (an unknown tag is dropped)
    tag = re.compile(r"<[A-Za-z_][^>]*>")
    texts = []
    for name, deployment, flow in deployments():
        texts.append((name, deployment.get("description") or ""))

        def walk(node, where):
            if isinstance(node, dict):
                if isinstance(node.get("description"), str):
                    texts.append((where, node["description"]))
                for key, value in node.items():
                    walk(value, f"{where}.{key}")
            elif isinstance(node, list):
                for item in node:
                    walk(item, where)

        walk(flow.parameters.model_dump(), name)
    bad = [(where, text) for where, text in texts if tag.search(text)]
    assert not bad, bad


def test_documented_deployment_runs_pass_valid_parameters():
    """`prefect deployment run NAME --param KEY=VALUE ...` in the README and docs: flat parameters
    of the flow, read as Prefect's CLI reads them (JSON where it parses, else a string)."""
    from prefect.cli._utilities import load_json_key_values

    by_name = {name: flow for name, _, flow in deployments()}
    commands = [
        line[line.index("prefect deployment run") :]
        for line in doc_text().splitlines()
        if "prefect deployment run " in line and "--param" in line
    ]
    checked = 0
    for command in commands:
        words = shlex.split(command.replace("$PWD", "/abs/checkout").split("`")[0])
        name = words[3]
        assert name in by_name, f"documented run of an unknown deployment: {command}"
        given = [words[i + 1] for i, word in enumerate(words) if word == "--param"]
        params = load_json_key_values(given, "parameter")
        assert params and "params" not in params, command
        assert set(params) <= set(by_name[name].parameters.properties), command
        by_name[name].validate_parameters(params)
        checked += 1
    # README 1, orchestration.md 2, design.md 1, prefect.yaml 1, docker-compose.yml 1 (the
    # deployments carry data_root since `fsclap prefect setup`: fewer runs need a --param)
    assert checked >= 6


def test_schedules_are_valid_and_scheduled_runs_do_not_overlap():
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule

    scheduled = 0
    for name, deployment, _ in deployments():
        for schedule in deployment.get("schedules") or []:
            converted = _schedule_config_to_deployment_schedule(schedule)  # as `prefect deploy`
            assert converted["schedule"].timezone, f"{name}: a schedule without a time zone"
            scheduled += converted.get("active", True)
            # a slow run must not overlap the next scheduled one on the same data root
            assert deployment.get("concurrency_limit") == 1, name
    assert scheduled >= 1, "the nightly refresh is documented, but nothing is scheduled"


def test_work_pools_are_defined_created_and_served():
    doc = load("prefect.yaml")
    compose = load("docker-compose.yml")
    defined = {pool["name"] for pool in doc["definitions"]["work_pools"].values()}
    text = doc_text()
    created_in_docs = set(re.findall(r"prefect work-pool create (\w[\w-]*)", text))
    deploy_command = " ".join(compose["services"]["deploy"]["command"])
    created_by_compose = set(re.findall(r"prefect work-pool create (\w[\w-]*)", deploy_command))
    if "fsclap prefect setup" in deploy_command:
        created_by_compose |= set(SETUP_POOLS)
    served = pool_workers(compose)
    for name, deployment, _ in deployments():
        pool = deployment["work_pool"]["name"]
        assert pool in defined, f"{name}: pool {pool} is not among the definitions"
        assert pool in created_in_docs, f"{name}: the docs never create pool {pool}"
        assert pool in created_by_compose, f"{name}: docker compose's deploy never creates {pool}"
        assert pool in served, f"{name}: no compose worker serves pool {pool}"


def test_gpu_deployments_get_a_gpu_and_the_others_do_not():
    """Deployments tagged gpu land on a pool whose jobs see a GPU (process pools: CUDA device
    env; docker pools: an NVIDIA device request) and whose compose worker reserves GPUs."""
    compose = load("docker-compose.yml")
    served = pool_workers(compose)
    for name, deployment, _ in deployments():
        pool = deployment["work_pool"]
        job = pool.get("job_variables", {})
        docker = docker_job(deployment)
        worker = compose["services"][served[pool["name"]]]
        reserved = (
            worker.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
        )
        if "gpu" in deployment.get("tags", []):
            assert requests_gpu(docker), f"{name}: a GPU deployment whose container gets no GPU"
            assert "CUDA_VISIBLE_DEVICES" in job.get("env", {}), name
            assert reserved and "gpu" in str(reserved), f"{name}: its worker reserves no GPU"
        else:
            assert not requests_gpu(docker), f"{name}: a CPU deployment holds a GPU"
        # a process pool gets only what a process worker knows: the environment
        assert set(job) == {"env"}, f"{name}: process-pool job variables {sorted(job)}"


def test_docker_job_variables_match_the_compose_stack_and_the_image():
    """Docker pools start flow containers through the Docker API: the image must be one compose
    builds (not pulled), and the volumes and networks must exist under these exact names."""
    compose = load("docker-compose.yml")
    built = {s["image"] for s in compose["services"].values() if "build" in s and "image" in s}
    image_env = dict(
        kv.split("=", 1)
        for keyword, rest in dockerfile()
        if keyword == "ENV"
        for kv in rest.split()
    )
    for name, deployment, _ in deployments():
        job = docker_job(deployment)
        assert job["env"] == deployment["work_pool"]["job_variables"]["env"], name
        assert job["image"] in built, f"{name}: image {job['image']} is built by no service"
        assert job.get("image_pull_policy") == "Never", f"{name}: a local image cannot be pulled"
        for network in job.get("networks", []):
            assert compose["networks"][network]["name"] == network, network
        mounts = volume_mounts(job["volumes"])
        for source in mounts.values():
            assert compose["volumes"][source]["name"] == source, f"{name}: {source}"
        # the flow container's settings (the image's ENV) point into the mounted volumes
        for key in ("FSCLAP_DATA_ROOT", "FSCLAP_MODELS"):
            assert image_env[key] in mounts, (name, key)


def test_heartbeat_of_job_runs_matches_the_crash_automation():
    """The zombie automation marks a run Crashed after SILENCE_S without heartbeats: the runs must
    send them (PREFECT_FLOWS_HEARTBEAT_FREQUENCY) more often than that."""
    from flows.automations import HEARTBEAT_S, SILENCE_S

    for name, deployment, _ in deployments():
        env = deployment["work_pool"]["job_variables"]["env"]
        assert int(env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]) == HEARTBEAT_S < SILENCE_S, name


# --- docker-compose.yml ---------------------------------------------------------------------------


def test_compose_services_reach_each_other():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    compose = load("docker-compose.yml")
    services = compose["services"]
    for name, service in services.items():
        for other, condition in (service.get("depends_on") or {}).items():
            assert other in services, f"{name} depends on an unknown service {other}"
            if condition.get("condition") == "service_healthy":
                assert services[other].get("healthcheck", {}).get("test"), (name, other)
        for network in service.get("networks", []):
            assert network in compose["networks"], (name, network)
        # the project's images are on no registry: a service using one needs a service building it
        if re.match(rf"{project}(-\w+)?:", service.get("image", "")) and "build" not in service:
            assert any(
                s.get("image") == service["image"] and "build" in s for s in services.values()
            ), f"{name}: image {service['image']} is built by no service"
    # the API: workers and tools talk to the server's service name on the port it listens on
    server = services["prefect-server"]
    port = server["command"][server["command"].index("--port") + 1]
    assert any(p.endswith(f":{port}") for p in server["ports"])
    assert f":{port}/" in " ".join(server["healthcheck"]["test"])
    server_env = server["environment"]
    for name, service in services.items():
        env = service.get("environment") or {}
        if "PREFECT_API_URL" in env:
            url = urlsplit(interpolate(env["PREFECT_API_URL"]))
            assert (url.hostname, str(url.port)) == ("prefect-server", port), name
            # the server has API auth on: every client sends the same credentials
            auth = {"FSCLAP_PREFECT_AUTH": "admin:pw"}
            assert interpolate(env["PREFECT_API_AUTH_STRING"], auth) == interpolate(
                server_env["PREFECT_SERVER_API_AUTH_STRING"], auth
            ), name
    # the database: the server's connection URL points at the postgres service and its database
    postgres = services["postgres"]
    secrets = {"POSTGRES_PASSWORD": "pw"}
    db = urlsplit(interpolate(server_env["PREFECT_SERVER_DATABASE_CONNECTION_URL"], secrets))
    pg_env = {k: interpolate(v, secrets) for k, v in postgres["environment"].items()}
    assert (db.hostname, db.port) == ("postgres", 5432)
    assert (db.username, db.password, db.path.lstrip("/")) == (
        pg_env["POSTGRES_USER"],
        pg_env["POSTGRES_PASSWORD"],
        pg_env["POSTGRES_DB"],
    )


def test_compose_workers_have_the_data_and_a_health_endpoint():
    compose = load("docker-compose.yml")
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if command[:3] != ["prefect", "worker", "start"]:
            continue
        env = service["environment"]
        mounts = volume_mounts(service["volumes"])
        for key in ("FSCLAP_DATA_ROOT", "FSCLAP_MODELS"):
            assert env[key] in mounts, f"{name}: {key}={env[key]} is not a mounted volume"
        if "healthcheck" in service:  # the probe needs the worker's health server
            assert "--with-healthcheck" in command, name
        if "gpu" in str(service.get("deploy", {}).get("resources", {})):
            # a machine without GPUs must still `docker compose up` the rest
            assert service.get("profiles"), f"{name} reserves GPUs but is started by default"


def test_fsclap_environment_of_compose_and_image_sets_real_settings(monkeypatch):
    """pydantic-settings ignores unknown FSCLAP_* variables: each one set must change the
    setting it is meant for."""
    from fsclap.config import Settings, load_settings

    env_names = {}
    for field, info in Settings.model_fields.items():
        names = {f"FSCLAP_{field.upper()}"}
        alias = info.validation_alias
        names |= {c for c in getattr(alias, "choices", []) if str(c).startswith("FSCLAP_")}
        for env_name in names:
            env_names[env_name] = field
    compose = load("docker-compose.yml")
    blocks = [s.get("environment") or {} for s in compose["services"].values()]
    blocks.append(
        dict(kv.split("=", 1) for k, rest in dockerfile() if k == "ENV" for kv in rest.split())
    )
    checked = 0
    for env in blocks:
        for key, value in env.items():
            if not key.startswith("FSCLAP_"):
                continue
            assert key in env_names, f"{key} is not a setting (typo?)"
            monkeypatch.setenv(key, interpolate(value))
            settings = load_settings()
            assert str(getattr(settings, env_names[key])) == interpolate(value), key
            monkeypatch.delenv(key)
            checked += 1
    assert checked >= 5


def test_every_prefect_setting_named_exists():
    from prefect.settings import Settings
    from prefect.settings.legacy import _get_valid_setting_names

    valid = set(_get_valid_setting_names(Settings))
    text = "\n".join(
        (ROOT / name).read_text() for name in ("docker-compose.yml", "prefect.yaml", "Dockerfile")
    )
    named = set(re.findall(r"\b(PREFECT_[A-Z_]+)\b", text))
    assert {"PREFECT_SERVER_API_AUTH_STRING", "PREFECT_API_AUTH_STRING", "PREFECT_API_URL"} <= named
    assert named - valid == set()


def test_compose_deploy_service_can_run_its_commands():
    """`docker compose run deploy` runs `fsclap prefect setup` (`prefect deploy --all` on
    ./prefect.yaml, the automation module) in the image's working directory, with the data root
    mounted (setup checks its sources.yaml): prefect.yaml and the modules must be there."""
    compose = load("docker-compose.yml")
    workdir = next(rest for keyword, rest in dockerfile() if keyword == "WORKDIR")
    for name in ("deploy", "cli"):
        assert compose["services"][name]["working_dir"] == workdir, name
    command = " ".join(compose["services"]["deploy"]["command"])
    assert "fsclap prefect setup --data-root /data" in command and not dockerignored("prefect.yaml")
    assert "fsclap-data:/data" in compose["services"]["deploy"]["volumes"]
    for module in re.findall(r"python -m ([\w.]+)", command):
        spec = importlib.util.find_spec(module)
        assert spec and "__main__" in Path(spec.origin).read_text(), module


# --- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_copies_files_that_exist_and_are_in_the_context():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    copies = [rest.split() for keyword, rest in dockerfile() if keyword == "COPY"]
    assert copies
    for *sources, _dest in copies:
        for source in sources:
            if source == ".":
                continue
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not dockerignored(source), f"COPY {source}: excluded by .dockerignore"
    # `COPY . .` then `pip install -e .`: what the install and the services read must be there
    needed = ["pyproject.toml", pyproject["readme"], "prefect.yaml"]
    for package in ("fsclap", "pipeline", "model", "flows"):
        needed += [
            str(p.relative_to(ROOT))
            for p in (ROOT / package).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        ]
    assert [p for p in needed if dockerignored(p)] == []
    # ... and what must not be: secrets, the local environment, data
    for path in (".env", ".venv/bin/python", ".git/HEAD", "data/x.parquet"):
        assert dockerignored(path), path


def test_dockerfile_installs_with_the_projects_constraints():
    steps = dockerfile()
    args = docker_args()
    makefile = (ROOT / "Makefile").read_text()
    make_constraints = re.search(r"^CONSTRAINTS \?= (\S+)", makefile, re.M).group(1)
    # the image pins what `make setup` pins, from a file that exists
    assert args["CONSTRAINTS"] == make_constraints and (ROOT / make_constraints).is_file()
    install = next(
        i for i, (k, rest) in enumerate(steps) if k == "RUN" and "-r /tmp/requirements.txt" in rest
    )
    assert re.search(r"-c \$\{?CONSTRAINTS", steps[install][1]), steps[install][1]
    copied_before = [
        rest.split()[:-1] for k, rest in steps[:install] if k == "COPY" and "." not in rest.split()
    ]
    assert any(
        make_constraints.startswith(src.rstrip("/")) for srcs in copied_before for src in srcs
    ), "the constraints file is not in the image when the dependencies are installed"


@pytest.mark.parametrize("extras", ["", "gpu", "dask", "gpu,dask"])
def test_dockerfile_requirement_list_is_the_projects_dependencies(tmp_path, extras):
    """Run the Dockerfile's requirements step here: it must list exactly the project's
    dependencies plus the chosen extras (compose's gpu-worker builds with EXTRAS=gpu)."""
    steps = dockerfile()
    run = next(rest for k, rest in steps if k == "RUN" and "/tmp/requirements.txt" in rest)
    out = tmp_path / "requirements.txt"
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    env = {
        **os.environ,
        "EXTRAS": extras,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.run(
        ["sh", "-c", run.replace("/tmp/requirements.txt", str(out))],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = list(project["dependencies"])
    for extra in filter(None, extras.split(",")):
        expected += project["optional-dependencies"][extra]
    assert out.read_text().splitlines() == expected


def test_compose_build_args_are_dockerfile_args():
    args = docker_args()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for name, service in load("docker-compose.yml")["services"].items():
        build = service.get("build") or {}
        assert build.get("context", ".") == ".", f"{name}: the Dockerfile's context is the checkout"
        for arg, value in (build.get("args") or {}).items():
            assert arg in args, f"{name}: build arg {arg} is no ARG of the Dockerfile"
            if arg == "EXTRAS":
                assert set(filter(None, value.split(","))) <= set(extras), (name, value)


def test_dockerfile_base_and_system_packages_fit_the_project():
    from packaging.specifiers import SpecifierSet

    steps = dockerfile()
    base = next(rest for k, rest in steps if k == "FROM")
    version = re.match(r"python:(\d+\.\d+)", base).group(1)
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"{version}.0" in SpecifierSet(requires), (base, requires)
    apt = " ".join(rest for k, rest in steps if k == "RUN" and "apt-get install" in rest).split()
    makefile = (ROOT / "Makefile").read_text()
    system = re.search(r"^SYSTEM_PACKAGES := (.+)$", makefile, re.M).group(1).split()
    assert set(system) <= set(apt), "the image lacks system packages `make setup` installs"
    # compose runs `prefect ...` and `fsclap ...` as the command: the image has no entrypoint
    assert not any(k == "ENTRYPOINT" for k, _ in steps)


def test_prefect_is_pinned_to_the_minor_version_the_deployments_name():
    import importlib.metadata as md

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (pin,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "prefect"]
    installed = md.version("prefect")
    deployed = load("prefect.yaml")["prefect-version"]
    assert installed in pin.specifier and deployed in pin.specifier
    minor = ".".join(installed.split(".")[:2])
    # a minor range: the next minor is outside it
    assert f"{minor}.99" in pin.specifier
    assert f"{minor.split('.')[0]}.{int(minor.split('.')[1]) + 1}.0" not in pin.specifier
