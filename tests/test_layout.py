"""The repository layout contract: the user's folders exist, every module of the four packages
imports in a fresh interpreter outside the checkout (as an installed package), the console
scripts and package data that pyproject.toml declares resolve, and the CI entry point can run."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from setuptools._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fsclap", "pipeline", "model", "flows")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def package_modules() -> list[str]:
    """Every module under the four packages, found by walking their folders (not by importing)."""
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join(parts))
    return names


# Runs in a fresh interpreter: imports each module in turn and reports the ones that fail.
IMPORT_ALL = """
import importlib, json, sys, traceback
failed = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=-3)
print(json.dumps(failed))
"""


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


def test_every_module_imports_in_a_fresh_interpreter(tmp_path):
    modules = package_modules()
    assert len(modules) > 50 and {"fsclap.cli", "flows.train", "model.training"} <= set(modules)
    # cwd outside the checkout: the modules must come from the installed package, not from ./
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, json.dumps(modules)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert failed == {}, "\n".join(f"{name}:\n{tb}" for name, tb in failed.items())


def test_console_scripts_resolve_to_callables():
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts, "pyproject.toml declares no console script"
    installed = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        assert callable(obj), target
        # the installed metadata (what puts `fsclap` on PATH) points at the same function
        assert installed.get(name) == target, (name, installed.get(name))


def test_declared_package_data_exists():
    """A package-data glob that matches nothing ships a wheel without the file the code loads."""
    for package, patterns in PYPROJECT["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            assert [p for p in (ROOT / package).glob(pattern) if p.is_file()], (
                f"{package}: {pattern} matches no file"
            )


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


def test_ci_entry_point_is_an_executable_valid_script():
    run = ROOT / ".ci" / "run"
    assert os.access(run, os.X_OK), "CI cannot execute .ci/run"
    proc = subprocess.run(["bash", "-n", str(run)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # parses as bash (nothing is run)
