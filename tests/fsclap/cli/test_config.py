"""`fsclap config`: the effective settings."""

from fsclap.cli import main


def test_config_shows_effective_settings(capsys, tmp_path):
    assert main(["--set", "seed=7", "config", "--profile", "paper"]) == 0
    out = capsys.readouterr().out
    assert "seed: 7" in out and "profile: paper" in out
