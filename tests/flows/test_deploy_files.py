"""prefect.yaml, docker-compose.yml and the Dockerfile, checked for what they promise (Docker
cannot run here: the compose file's structure is validated instead, and every Prefect setting
they name must exist in the installed Prefect)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = {
    "build-corpus/nightly-refresh": "cpu",
    "build-corpus/adhoc": "cpu",
    "build-corpus/paper-gpu": "gpu",
    "train-fsclap/gpu": "gpu",
    "evaluate-fsclap/gpu": "gpu",
}


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def flow_of(entrypoint: str):
    module, _, attr = entrypoint.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def test_prefect_yaml_deployments():
    doc = load("prefect.yaml")
    assert doc["pull"] == [], "flows load from the installed package; workers pull no code"
    found = {}
    for deployment in doc["deployments"]:
        flow = flow_of(deployment["entrypoint"])  # a module entrypoint that imports
        found[f"{flow.name}/{deployment['name']}"] = deployment
        params_model = flow.fn.__annotations__["params"]
        model = (
            importlib.import_module(flow.fn.__module__).__dict__[params_model]
            if isinstance(params_model, str)
            else params_model
        )
        model(
            **deployment["parameters"]["params"]
        )  # the deployment's defaults are valid parameters
    assert {name: d["work_pool"]["name"] for name, d in found.items()} == DEPLOYMENTS
    nightly = found["build-corpus/nightly-refresh"]
    assert (
        nightly["schedules"][0]["cron"] == "0 3 * * *" and nightly["schedules"][0]["active"] is True
    )
    assert "schedules" not in found["build-corpus/adhoc"]
    assert found["train-fsclap/gpu"]["concurrency_limit"] == 1
    gpu = found["train-fsclap/gpu"]["work_pool"]["job_variables"]
    assert gpu["env"]["CUDA_VISIBLE_DEVICES"] == "0"  # process pools
    request = gpu["container_create_kwargs"]["device_requests"][0]  # docker pools
    assert (
        request["driver"] == "nvidia"
        and request["capabilities"] == [["gpu"]]
        and request["count"] >= 1
    )
    assert gpu["image"] == "fsclap-gpu:latest" and "fsclap-data:/data" in gpu["volumes"]
    assert (
        "container_create_kwargs" not in found["build-corpus/adhoc"]["work_pool"]["job_variables"]
    )


def test_docker_compose_structure():
    doc = load("docker-compose.yml")
    services = doc["services"]
    assert {"postgres", "prefect-server", "cpu-worker", "gpu-worker", "deploy", "cli"} <= set(
        services
    )

    def healthy_dependency(service: str, on: str) -> None:
        assert services[service]["depends_on"][on]["condition"] == "service_healthy", (service, on)
        assert services[on]["healthcheck"]["test"], on

    postgres, server = services["postgres"], services["prefect-server"]
    assert postgres["image"].startswith("postgres:") and "pg_isready" in " ".join(
        postgres["healthcheck"]["test"]
    )
    healthy_dependency("prefect-server", "postgres")
    server_env = server["environment"]
    assert server_env["PREFECT_SERVER_DATABASE_CONNECTION_URL"].startswith(
        "postgresql+asyncpg://prefect:"
    )
    assert "@postgres:5432/" in server_env["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert server_env["PREFECT_SERVER_API_AUTH_STRING"].startswith("${FSCLAP_PREFECT_AUTH")
    assert "/api/health" in " ".join(server["healthcheck"]["test"])  # the probe auth lets through
    assert server["command"][:3] == ["prefect", "server", "start"]

    for name, pool in (("cpu-worker", "cpu"), ("gpu-worker", "gpu")):
        worker = services[name]
        healthy_dependency(name, "prefect-server")
        assert worker["command"][:5] == ["prefect", "worker", "start", "--pool", pool]
        env = worker["environment"]
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert env["PREFECT_API_AUTH_STRING"] == server_env["PREFECT_SERVER_API_AUTH_STRING"]
        assert env["FSCLAP_DATA_ROOT"] == "/data" and env["FSCLAP_MODELS"] == "/models"
        assert {"fsclap-data:/data", "fsclap-models:/models"} <= set(worker["volumes"])
        assert "build" in worker and worker["build"]["context"] == "."
    devices = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert services["gpu-worker"]["build"]["args"]["EXTRAS"] == "gpu"
    assert "gpu" in services["gpu-worker"]["profiles"]  # a machine without GPUs starts the rest
    assert "deploy --all" in services["deploy"]["command"][0]
    assert {"prefect-db", "fsclap-data", "fsclap-models"} <= set(doc["volumes"])
    # docker work pools mount the volumes and join the network by these names (prefect.yaml)
    assert (
        doc["volumes"]["fsclap-data"]["name"] == "fsclap-data"
        and doc["networks"]["fsclap"]["name"] == "fsclap"
    )


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


def test_dockerfile_builds_the_worker_image():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[0-9]", text, re.M)
    assert (
        "ffmpeg" in text and "pip install" in text and "ENTRYPOINT" not in text
    )  # runs fsclap and prefect alike
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", ".env", "data"} <= set(ignored) and "prefect.yaml" not in ignored


@pytest.mark.parametrize("name", ["build-corpus", "train-fsclap", "evaluate-fsclap"])
def test_flow_names_are_the_contract(name):
    module = {
        "build-corpus": "flows.build_corpus.build_corpus",
        "train-fsclap": "flows.train.train_fsclap",
        "evaluate-fsclap": "flows.evaluate.evaluate_fsclap",
    }[name]
    assert flow_of(module).name == name
