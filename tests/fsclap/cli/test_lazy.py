"""The command modules are imported on first use: `fsclap --help` imports none of them, a command
imports its own module only, and the help lines the root lists are the commands' own."""

import importlib
import json
import os
import subprocess
import sys

import pytest
import typer

from fsclap.cli import RootGroup, main
from fsclap.cli.lazy import first_paragraph

LAZY = RootGroup.lazy_subcommands
COMMAND_MODULES = sorted({command.module for command in LAZY})

# Runs in a fresh interpreter: one invocation, then the first-party modules it imported.
INVOKE = """
import json, sys
from fsclap.cli import main
code = main(json.loads(sys.argv[1]))
heavy = ("pipeline", "model", "flows", "torch", "prefect")
loaded = [m for m in sys.modules if m.startswith("fsclap.cli.") or m.split(".")[0] in heavy]
print(json.dumps({"code": code, "loaded": loaded}))
"""


def invoke_fresh(args: list[str]) -> tuple[int, set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", INVOKE, json.dumps(args)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["code"], set(result["loaded"])


@pytest.mark.parametrize("command", LAZY, ids=lambda c: c.name)
def test_root_help_line_is_the_commands_own(command):
    assert command.help == first_paragraph(command.load().help)


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_every_command_of_a_module_is_registered(module):
    registered = [c for c in LAZY if c.module == module]
    app = importlib.import_module(module).app
    defined = set(typer.main.get_group(app).commands)
    if any(c.group for c in registered):
        assert len(registered) == 1, f"{module} is a group: its app is one command"
    else:
        assert {c.name for c in registered} == defined


def test_root_help_imports_no_command_module():
    code, loaded = invoke_fresh(["--help"])
    assert code == 0
    assert loaded == {"fsclap.cli.lazy"}


def test_a_command_imports_its_own_module_only():
    code, loaded = invoke_fresh(["synth", "style", "--help"])
    assert code == 0
    commands = {m for m in loaded if m.startswith("fsclap.cli.")}
    assert commands == {"fsclap.cli.lazy", "fsclap.cli.common", "fsclap.cli.synth"}
    assert not any(m.split(".")[0] in ("model", "flows", "torch") for m in loaded)


def test_command_modules_import_prefect_with_fsclaps_defaults():
    """Prefect reads its settings once, at import. The command modules that run a flow here
    (corpus build, the demo) import it through ``flows``, whose import sets fsclap's defaults
    first (no analytics, the library's loggers in the run logs, an ephemeral local server)."""
    check = (
        "import importlib, json, sys\n"
        "for m in json.loads(sys.argv[1]): importlib.import_module(m)\n"
        "from prefect.settings import get_current_settings\n"
        "s = get_current_settings()\n"
        "print(json.dumps(['prefect' in sys.modules, s.server.analytics_enabled,\n"
        "                  s.logging.extra_loggers, s.server.ephemeral.enabled]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    proc = subprocess.run(
        [sys.executable, "-c", check, json.dumps(COMMAND_MODULES)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported, analytics, extra_loggers, ephemeral = json.loads(proc.stdout)
    assert imported and analytics is False and ephemeral is True
    assert "fsclap" in str(extra_loggers)


def test_unknown_command_suggests_a_lazy_one(capsys):
    assert main(["trian"]) == 2
    assert "Did you mean 'train'?" in capsys.readouterr().err
