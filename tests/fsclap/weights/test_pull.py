"""fsclap models pull: from the ecosystems' caches (their real clients, offline), from a loopback
Demucs server (with resume), hand-copied files, and the offline fail-fast message."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from fsclap.cli import main
from fsclap.config import load_settings
from fsclap.io import sha256_file
from fsclap.model_store.registry import LOCK_NAME, PAPER_MODELS
from fsclap.weights import pull_models
from fsclap.weights import sources as weight_sources
from pipeline.synth.serve import serving

NOT_DEMUCS = [m for m in PAPER_MODELS if m != "demucs"]


def only(ids):
    return [arg for model_id in ids for arg in ("--only", model_id)]


def read_lock(root: Path) -> dict:
    return json.loads((root / LOCK_NAME).read_text())["models"]


def test_pull_from_the_modelscope_and_hf_caches_locks_every_file(fake_hubs, capsys, monkeypatch):
    monkeypatch.setattr(
        weight_sources, "modelscope_download", lambda *a, **k: pytest.fail("no download expected")
    )
    assert main(["models", "pull", *only(NOT_DEMUCS)]) == 0
    out = capsys.readouterr().out
    root = Path(os.environ["FSCLAP_MODELS"])
    lock = read_lock(root)
    assert sorted(lock) == sorted(NOT_DEMUCS)
    for model_id in NOT_DEMUCS:
        assert f"{model_id}" in out and "installed" in out
        entry = lock[model_id]
        assert entry["path"] == model_id and entry["pulled"].endswith("Z")
        for rel, record in entry["files"].items():
            assert sha256_file(root / model_id / rel) == record["sha256"]
            assert (root / model_id / rel).stat().st_size == record["size"]
        assert not (root / model_id / "example").exists()  # hub examples are not models
    assert (
        lock["sensevoice"]["via"].startswith("ModelScope cache")
        and "hub/models/iic/SenseVoiceSmall" in lock["sensevoice"]["via"]
    )
    assert (
        lock["paraformer"]["revision"] == "master" and lock["paraformer"]["source"] == "modelscope"
    )
    assert set(lock["paraformer"]["files"]) == {
        "configuration.json",
        "config.yaml",
        "model.pt",
        "tokens.json",
        "seg_dict",
        "am.mvn",
    }
    assert lock["laion_clap"]["via"].startswith("HF cache lukewys/laion_clap@1f0c3e5a")
    assert set(lock["laion_clap"]["files"]) == {
        "630k-audioset-best.pt",
        "roberta-base/config.json",
        "roberta-base/vocab.json",
        "roberta-base/merges.txt",
        "roberta-base/tokenizer.json",
    }
    # the HF cache holds symlinks to blobs; the layout holds real files
    assert not (root / "laion_clap" / "630k-audioset-best.pt").is_symlink()

    # a second pull has nothing to do
    assert main(["models", "pull", *only(NOT_DEMUCS)]) == 0
    assert capsys.readouterr().out.count("up to date") == len(NOT_DEMUCS)


def test_pull_to_another_root(fake_hubs, tmp_path, capsys):
    target = tmp_path / "elsewhere"
    assert main(["models", "pull", "--to", str(target), "--only", "campplus"]) == 0
    assert (target / "campplus" / "campplus_cn_common.bin").is_file()
    assert read_lock(target)["campplus"]["path"] == "campplus"
    assert not (Path(os.environ["FSCLAP_MODELS"]) / "campplus").exists()


def test_demucs_downloads_over_http_resuming_a_partial_file(fake_hubs, tmp_path):
    weights = next(fake_hubs.demucs_served.rglob("*.th"))
    root = Path(os.environ["FSCLAP_MODELS"])
    part = root / "demucs" / (weights.name + ".part")
    part.parent.mkdir(parents=True)
    data = weights.read_bytes()
    part.write_bytes(data[: len(data) // 2])  # an interrupted earlier pull
    with serving(fake_hubs.demucs_served) as (url, requests):
        settings = load_settings(overrides={"model_hubs": {"demucs_url": url}})
        report = pull_models(settings, ["demucs"], demucs_listing=fake_hubs.demucs_listing)
        assert report.ok, report.render()
        assert [r.status for r in report.results] == ["installed"] and report.results[
            0
        ].via == f"network {url}"
        assert any(r.startswith(f"GET /hybrid_transformer/{weights.name} 206") for r in requests), (
            requests
        )
        assert (root / "demucs" / weights.name).read_bytes() == data and not part.exists()
        assert (root / "demucs" / "htdemucs.yaml").read_text() == (
            fake_hubs.demucs_listing / "htdemucs.yaml"
        ).read_text()
        before = len(requests)
        again = pull_models(settings, ["demucs"], demucs_listing=fake_hubs.demucs_listing)
        assert [r.status for r in again.results] == ["up to date"] and len(requests) == before
    entry = read_lock(root)["demucs"]
    assert (
        entry["files"][weights.name]["sha256"] == sha256_file(weights)
        and entry["source"] == "demucs"
    )


def test_demucs_download_whose_content_does_not_match_its_name_is_not_installed(fake_hubs):
    served = next(fake_hubs.demucs_served.rglob("*.th"))
    served.write_bytes(served.read_bytes()[:-10] + b"0123456789")  # same size, wrong content
    with serving(fake_hubs.demucs_served) as (url, _):
        settings = load_settings(overrides={"model_hubs": {"demucs_url": url}})
        report = pull_models(settings, ["demucs"], demucs_listing=fake_hubs.demucs_listing)
    [result] = report.results
    assert result.status == "failed" and f"{served.name}: sha256 starts with" in result.detail
    assert not (Path(os.environ["FSCLAP_MODELS"]) / LOCK_NAME).exists()


def test_demucs_from_the_torch_hub_cache(fake_hubs, tiny_release):
    checkpoints = fake_hubs.torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    weights = next(tiny_release["demucs"].glob("*.th"))
    shutil.copy(weights, checkpoints / weights.name)  # where Demucs' own downloader leaves it
    report = pull_models(load_settings(), ["demucs"], demucs_listing=fake_hubs.demucs_listing)
    assert [r.status for r in report.results] == ["installed"] and report.results[0].via.startswith(
        "torch hub cache"
    )


def test_offline_pull_fails_fast_with_every_file_to_copy(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "empty_ms"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch"))
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("FSCLAP_MODEL_HUBS__DEMUCS_URL", "http://127.0.0.1:9/demucs/")
    for name in (
        "modelscope_download",
        "hf_download",
        "demucs_download",
    ):  # the clients' long retries never start
        monkeypatch.setattr(
            weight_sources, name, lambda *a, **k: pytest.fail("an unreachable hub was tried")
        )
    assert main(["models", "pull"]) == 2
    captured = capsys.readouterr()
    root = Path(os.environ["FSCLAP_MODELS"])
    assert captured.err.strip() == (
        "error: 7 model(s) could not be downloaded here (demucs, paraformer, fsmn_vad, "
        "ct_punc, campplus, sensevoice, laion_clap): copy the files listed above by hand"
    )
    out = captured.out
    assert "127.0.0.1:9: cannot connect" in out and "huggingface.co: HF_HUB_OFFLINE is set" in out
    expected = [
        f"http://127.0.0.1:9/demucs/hybrid_transformer/955717e8-8726e21a.th  ->  {root}/demucs/955717e8-8726e21a.th",
        "http://127.0.0.1:9/api/v1/models/iic/SenseVoiceSmall/repo?Revision=master&FilePath=model.pt  ->  "
        f"{root}/sensevoice/model.pt",
        "http://127.0.0.1:9/api/v1/models/iic/speech_campplus_sv_zh-cn_16k-common/repo?Revision=master&"
        f"FilePath=campplus_cn_common.bin  ->  {root}/campplus/campplus_cn_common.bin",
        f"https://huggingface.co/lukewys/laion_clap/resolve/main/630k-audioset-best.pt  ->  {root}/laion_clap/630k-audioset-best.pt",
        f"https://huggingface.co/FacebookAI/roberta-base/resolve/main/merges.txt  ->  {root}/laion_clap/roberta-base/merges.txt",
    ]
    for line in expected:
        assert line in out
    assert f"{root}/demucs/htdemucs.yaml" in out and "models: ['955717e8']" in out
    assert out.count("  ->  ") == 2 + 6 + 4 + 5 + 3 + 5 + 5
    assert not root.exists()


def test_hand_copied_models_are_locked_as_found(installed, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "empty_ms"))
    assert main(["models", "pull", "--offline", "--only", "fsmn_vad", "--only", "sensevoice"]) == 0
    assert "locked as found (not checked against the hub)" in capsys.readouterr().out
    lock = read_lock(installed)
    assert lock["fsmn_vad"]["via"] == "local files"
    assert set(lock["fsmn_vad"]["files"]) == {
        "configuration.json",
        "config.yaml",
        "model.pt",
        "am.mvn",
    }


def test_pull_rejects_wheel_models_and_unknown_ids(capsys):
    assert main(["models", "pull", "--profile", "offline"]) == 2
    assert "ship in their wheels" in capsys.readouterr().err
    assert main(["models", "pull", "--only", "whisper"]) == 2
    assert "unknown model id(s): whisper" in capsys.readouterr().err


def test_http_download_restarts_when_the_server_ignores_ranges(tmp_path):
    """A server without byte ranges answers 200 to a resumed request: the .part is rewritten, not appended."""
    import http.server
    import threading
    from functools import partial

    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "w.bin").write_bytes(b"0123456789" * 1000)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = partial(Quiet, directory=str(tmp_path / "web"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target = tmp_path / "out" / "w.bin"
        target.parent.mkdir()
        (tmp_path / "out" / "w.bin.part").write_bytes(b"garbage")
        weight_sources.http_download(f"http://127.0.0.1:{server.server_address[1]}/w.bin", target)
    finally:
        server.shutdown()
        server.server_close()
    assert target.read_bytes() == b"0123456789" * 1000


def test_probe_reports_a_closed_port_at_once():
    assert (
        weight_sources.probe("http://127.0.0.1:9/", timeout=2)
        == "cannot connect (Connection refused)"
    )


def test_pull_downloads_with_the_hubs_own_clients_then_verifies(
    tmp_path, tiny_release, modelscope_server, hf_server, monkeypatch, capsys
):
    """Empty caches, hubs answering on loopback: modelscope.snapshot_download and hf_hub_download
    fetch into the layout (hub examples skipped), the lock records the commits, verify passes."""
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "empty_ms"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hf"))
    for model_id in ("sensevoice", "campplus"):
        served = tmp_path / "ms" / model_id
        shutil.copytree(tiny_release[model_id], served)
        (served / "example").mkdir()
        (served / "example" / "en.mp3").write_bytes(b"ID3")
        modelscope_server["repos"][
            f"iic/{'SenseVoiceSmall' if model_id == 'sensevoice' else 'speech_campplus_sv_zh-cn_16k-common'}"
        ] = served
    clap = tiny_release["laion_clap"]
    hf_server["repos"]["lukewys/laion_clap"] = clap
    hf_server["repos"]["FacebookAI/roberta-base"] = clap / "roberta-base"

    assert (
        main(
            ["models", "pull", "--only", "sensevoice", "--only", "campplus", "--only", "laion_clap"]
        )
        == 0
    )
    root = Path(os.environ["FSCLAP_MODELS"])
    lock = read_lock(root)
    assert lock["sensevoice"]["via"].startswith("network http://127.0.0.1:")
    assert (
        lock["laion_clap"]["via"]
        == f"network lukewys/laion_clap@{'1f0c3e5a' * 5}, FacebookAI/roberta-base@{'e2da8e2f' * 5}"
    )
    for model_id in ("sensevoice", "campplus", "laion_clap"):
        for rel, record in lock[model_id]["files"].items():
            assert record["sha256"] == sha256_file(root / model_id / rel)
    assert set(lock["sensevoice"]["files"]) == {
        p.name for p in tiny_release["sensevoice"].iterdir()
    }
    assert not any("example" in r for r in modelscope_server["requests"])
    assert any(
        r.startswith("GET /lukewys/laion_clap/resolve/main/630k-audioset-best.pt")
        for r in hf_server["requests"]
    )
    capsys.readouterr()
    assert (
        main(
            [
                "models",
                "verify",
                "--only",
                "sensevoice",
                "--only",
                "campplus",
                "--only",
                "laion_clap",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip().endswith("3/3 models verified")


def test_revision_pins(fake_hubs, capsys):
    commit = "1f0c3e5a" * 5
    assert (
        main(["models", "pull", "--only", "laion_clap", "--revision", f"laion_clap={commit}"]) == 0
    )
    entry = read_lock(Path(os.environ["FSCLAP_MODELS"]))["laion_clap"]
    assert entry["revision"] == commit and entry["via"].startswith(
        f"HF cache lukewys/laion_clap@{commit}"
    )
    # a pinned ModelScope revision that is not cached is not taken from the cached master
    # (a pre-1.38 cache has no revisions: the client serves it for any, as sensevoice's would be)
    assert main(["models", "pull", "--only", "campplus", "--revision", "campplus=v2.0.2"]) == 2
    assert (
        "speech_campplus_sv_zh-cn_16k-common/repo?Revision=v2.0.2&FilePath=config.yaml"
        in capsys.readouterr().out
    )
    assert main(["models", "pull", "--only", "demucs", "--revision", "sensevoice=v2.0.4"]) == 2
    assert "--revision for a model not being pulled: sensevoice" in capsys.readouterr().err


def test_a_hub_that_answers_but_fails_still_gets_the_manual_list(
    tmp_path, modelscope_server, monkeypatch, capsys
):
    """E.g. a proxy answering for the hub with 404s: the model is listed for copying by hand."""
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "empty_ms"))
    assert main(["models", "pull", "--only", "fsmn_vad"]) == 2
    captured = capsys.readouterr()
    assert "fsmn_vad    failed" in captured.out and "HTTPError" in captured.out
    assert "Cannot download 1 model(s) here (download failed: fsmn_vad)" in captured.out
    assert (
        "speech_fsmn_vad_zh-cn-16k-common-pytorch/repo?Revision=master&FilePath=model.pt  ->  "
        in captured.out
    )
    assert (
        "error: 1 model(s) could not be downloaded here (fsmn_vad)" in captured.err
    )  # after the log lines


def test_an_offline_pull_never_relocks_a_changed_file(installed, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "empty_ms"))
    assert main(["models", "pull", "--offline", "--only", "fsmn_vad"]) == 0
    locked = read_lock(installed)["fsmn_vad"]
    mvn = installed / "fsmn_vad" / "am.mvn"
    mvn.write_text(mvn.read_text().replace("0", "1"))
    capsys.readouterr()
    assert main(["models", "pull", "--offline", "--only", "fsmn_vad"]) == 2
    out = capsys.readouterr().out
    assert "fsmn_vad    failed" in out and "checksum mismatch in am.mvn" in out and "--force" in out
    assert "FilePath=am.mvn  ->  " in out
    assert read_lock(installed)["fsmn_vad"] == locked
    assert main(["models", "pull", "--offline", "--force", "--only", "fsmn_vad"]) == 0
    assert read_lock(installed)["fsmn_vad"]["files"]["am.mvn"]["sha256"] == sha256_file(mvn)
