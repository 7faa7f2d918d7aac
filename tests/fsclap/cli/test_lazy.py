"""The command modules are imported on first use: `fsclap --help` imports none of them, a command
imports its own module only, and the help lines the root lists are the commands' own."""

import importlib
import json
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


def test_no_command_module_imports_prefect():
    """Prefect reads its settings once, at import; `corpus build` and the demo set them first
    (flows.runtime.prepare_local_prefect), so only the command body may import a Prefect flow."""
    check = (
        "import importlib, json, sys\n"
        "for m in json.loads(sys.argv[1]): importlib.import_module(m)\n"
        "print('prefect' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", check, json.dumps(COMMAND_MODULES)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "False"


def test_unknown_command_suggests_a_lazy_one(capsys):
    assert main(["trian"]) == 2
    assert "Did you mean 'train'?" in capsys.readouterr().err
