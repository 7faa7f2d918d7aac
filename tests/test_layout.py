"""The user's layout and the deployment files exist and are well-formed."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_user_layout_exists():
    for name in (
        "flows",
        "pipeline",
        "model",
        "data_manifests",
        "tests",
        "pyproject.toml",
        "docker-compose.yml",
    ):
        assert (ROOT / name).exists(), name


def test_compose_file_structure():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services, "no services"
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/", "$")):
                assert source in compose.get("volumes", {}), f"{name}: undeclared volume {source}"
    assert (ROOT / "Dockerfile").is_file()


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
