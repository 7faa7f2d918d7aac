"""fsclap models verify / verify_models: every model through its real loader and a forward pass on
silence; one clear line per failure (missing file, checksum mismatch, weights that do not load)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from fsclap.cli import main
from fsclap.config import load_settings
from fsclap.errors import FsclapError
from fsclap.model_store.registry import LOCK_NAME, PAPER_MODELS
from fsclap.weights import verify_models


def test_verify_succeeds_for_every_paper_model(installed, capsys):
    assert main(["models", "pull", "--offline"]) == 0  # hand-copied: locked as found
    capsys.readouterr()
    assert main(["models", "verify"]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("7/7 models verified")
    for model_id in PAPER_MODELS:
        line = next(line for line in out.splitlines() if line.startswith(f"ok    {model_id} "))
        assert "checksums ok; loads;" in line
    assert "htdemucs: 4 sources, 1 s separated" in out and "32-d speaker embedding" in out
    assert "punctuated:" in out and "token features" in out


def test_verify_json_without_a_lock(installed, capsys):
    assert main(["models", "verify", "--only", "campplus", "--only", "fsmn_vad", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and [m["id"] for m in report["models"]] == ["fsmn_vad", "campplus"]
    assert all(
        m["checksums"] == "not locked" and m["loaded"] and m["present"] for m in report["models"]
    )


def test_checksum_mismatch_names_the_file(installed, capsys):
    assert main(["models", "pull", "--offline", "--only", "paraformer"]) == 0
    weights = installed / "paraformer" / "model.pt"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte, same size
    weights.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["models", "verify", "--only", "paraformer"]) == 2
    captured = capsys.readouterr()
    fail = [line for line in captured.out.splitlines() if line.startswith("FAIL")]
    assert len(fail) == 1 and fail[0].startswith(
        "FAIL  paraformer  checksum mismatch in model.pt: sha256 "
    )
    assert "but the lock says" in fail[0]
    assert captured.err.startswith(
        "error: 1 of 1 models failed verification — paraformer: checksum mismatch in model.pt"
    )
    assert "\n" not in captured.err.strip()


def test_missing_file_is_named(installed, capsys):
    (installed / "sensevoice" / "am.mvn").unlink()
    assert main(["models", "verify", "--only", "sensevoice", "--only", "fsmn_vad"]) == 2
    out = capsys.readouterr().out
    assert (
        f"FAIL  sensevoice  not installed: missing am.mvn in {installed / 'sensevoice'} (run 'fsclap models pull')"
        in out
    )
    assert "ok    fsmn_vad" in out and out.strip().endswith("1/2 models verified")


def test_a_locked_file_that_disappeared_is_named(installed, capsys):
    assert main(["models", "pull", "--offline", "--only", "ct_punc"]) == 0
    (
        installed / "ct_punc" / "jieba_usr_dict"
    ).unlink()  # optional for the loader, but part of the locked release
    capsys.readouterr()
    assert main(["models", "verify", "--only", "ct_punc", "--no-load"]) == 2
    assert "FAIL  ct_punc     jieba_usr_dict is missing (locked at" in capsys.readouterr().out


@pytest.mark.parametrize("model_id", ["campplus", "demucs", "laion_clap", "sensevoice"])
def test_corrupt_weights_fail_to_load_with_one_line(installed, model_id):
    """Weights replaced by garbage of the same size: not locked, so only the load can tell."""
    weights = {
        "campplus": "campplus_cn_common.bin",
        "laion_clap": "630k-audioset-best.pt",
        "sensevoice": "model.pt",
    }.get(model_id)
    path = installed / model_id / weights if weights else next((installed / "demucs").glob("*.th"))
    path.write_bytes(os.urandom(path.stat().st_size))
    report = verify_models(load_settings(), [model_id])
    [check] = report.checks
    assert (
        not report.ok
        and check.present
        and check.loaded is False
        and check.checksums == "not locked"
    )
    assert check.problems[0].startswith(
        f"does not load from {installed / model_id} (weights {path.name}): "
    )
    assert "\n" not in check.problems[0]
    with pytest.raises(
        FsclapError, match=f"1 of 1 models failed verification — {model_id}: does not load"
    ):
        report.raise_for_failures()


def test_weights_of_another_model_fail_to_load(installed, tiny_release):
    """Right file names, wrong model (fsmn-vad's weights in the Paraformer dir): FunASR only warns;
    the project's loader refuses, and verify says so."""
    shutil.copy(tiny_release["fsmn_vad"] / "model.pt", installed / "paraformer" / "model.pt")
    [check] = verify_models(load_settings(), ["paraformer"]).checks
    assert check.loaded is False and "does not match its config.yaml" in check.problems[0]


def test_model_paths_override_is_where_verify_looks(installed, tmp_path, capsys):
    moved = tmp_path / "elsewhere" / "sv"
    shutil.move(installed / "sensevoice", moved)
    assert main(["models", "verify", "--only", "sensevoice", "--no-load"]) == 2
    capsys.readouterr()
    assert (
        main(
            [
                "--set",
                f"model_paths.sensevoice={moved}",
                "models",
                "verify",
                "--only",
                "sensevoice",
                "--no-load",
            ]
        )
        == 0
    )
    assert f"ok    sensevoice  {moved}" in capsys.readouterr().out


def test_offline_profile_models_verify_from_their_wheels(capsys):
    assert main(["models", "verify", "--profile", "offline"]) == 0
    out = capsys.readouterr().out
    assert "checksums ok; loads; " in out and out.strip().endswith("3/3 models verified")


def test_corpus_build_verifies_its_models_before_any_work(installed, tmp_path, capsys):
    """The runner's pre-flight: a Demucs repo whose weights do not load stops the paper-profile
    build before anything is acquired or written."""
    episodes = tmp_path / "eps"
    episodes.mkdir()
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        f"min_episodes: 1\ndramas:\n  - id: d\n    title: t\n    language: en\n    urls: [{episodes}]\n"
    )
    weights = next((installed / "demucs").glob("*.th"))
    weights.write_bytes(os.urandom(weights.stat().st_size))
    data_root = tmp_path / "data"
    code = main(
        [
            "corpus",
            "build",
            "--sources",
            str(sources),
            "--data-root",
            str(data_root),
            "--profile",
            "paper",
            "--stage",
            "separate",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith("error: 1 of 1 models failed verification — demucs: does not load from")
    assert not data_root.exists()


def test_list_shows_presence_and_validity(installed, capsys):
    (installed / "fsmn_vad" / "am.mvn").unlink()
    assert main(["models", "pull", "--offline", "--only", "campplus", "--only", "ct_punc"]) == 0
    tokens = installed / "ct_punc" / "tokens.json"
    tokens.write_text(tokens.read_text().replace("<unk>", "<UNK>"))  # same size, edited
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == 0
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert (
        len(rows) == 10
        and rows["minilm"]["profiles"] == ["offline"]
        and rows["minilm"]["source"] == "wheel"
    )
    assert (
        rows["campplus"]["present"]
        and rows["campplus"]["valid"] == "ok"
        and rows["campplus"]["pulled"]
    )
    assert rows["ct_punc"]["valid"] == "mismatch: tokens.json"
    assert not rows["fsmn_vad"]["present"] and rows["fsmn_vad"]["missing"] == ["am.mvn"]
    assert rows["sensevoice"]["valid"] == "not locked" and rows["sensevoice"]["path"] == str(
        installed / "sensevoice"
    )
    assert rows["sensevoice"]["origin"] == "$FSCLAP_MODELS/sensevoice"
    assert (
        rows["laion_clap"]["files"][0] == "630k-audioset-best.pt"
        and rows["demucs"]["licence"] == "MIT"
    )
    assert main(["models", "list", "--profile", "paper"]) == 0
    table = capsys.readouterr().out
    assert "ct_punc" in table and "mismatch: tokens.json" in table and "silero_vad" not in table
    assert (installed / LOCK_NAME).is_file()
