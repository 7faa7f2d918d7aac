"""The console script as users run it: a real subprocess for --help, in-process for the rest."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

from fsclap.cli import main

CONTRACT_COMMANDS = [
    "corpus",
    "caption",
    "synth",
    "train",
    "eval",
    "index",
    "search",
    "serve",
    "demo",
    "models",
]


def test_console_script_help_lists_commands():
    proc = subprocess.run(
        [sys.executable, "-m", "fsclap.cli", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    for command in CONTRACT_COMMANDS:
        assert command in proc.stdout


def test_version_is_the_installed_distribution_version():
    """`fsclap --version` (the console script on PATH) reports the version pip installed."""
    script = Path(sys.executable).with_name("fsclap")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "fsclap.cli"]
    proc = subprocess.run([*command, "--version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"fsclap {importlib.metadata.version('fsclap')}"


def test_bad_setting_is_one_line_error(capsys):
    assert main(["--set", "profile=cloud", "config"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: invalid settings: profile") and "\n" not in err


def test_usage_error_exit_code(capsys):
    assert main(["train"]) == 2  # missing required options
    assert "Missing option" in capsys.readouterr().err
