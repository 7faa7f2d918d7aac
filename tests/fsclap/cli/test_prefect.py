"""`fsclap prefect setup` without a server: its options are checked before anything changes, the
deployment file it deploys and the sources file it writes (tests/flows/test_server.py runs it
against a real server)."""

from pathlib import Path

import pytest
import yaml

from flows.deploy import (
    DATA_ROOT_ENTRYPOINTS,
    PROJECT_ROOT,
    deployment_document,
    install_sources,
    load_deployment_file,
    run_setup,
)
from fsclap.cli import main
from fsclap.errors import FsclapError
from fsclap.testing.media import closed_port

SPEC = load_deployment_file(PROJECT_ROOT / "prefect.yaml")


def write_sources(path: Path, urls: list[str]) -> Path:
    doc = {
        "min_episodes": 1,
        "dramas": [{"id": "d1", "title": "T", "language": "en", "urls": urls}],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def setup_error(capsys, *args: str) -> str:
    assert main(["prefect", "setup", *args]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_data_root_is_required_and_absolute(capsys, monkeypatch):
    monkeypatch.delenv("FSCLAP_DATA_ROOT", raising=False)
    assert "--data-root" in setup_error(capsys)
    assert "must be absolute" in setup_error(capsys, "--data-root", "data")
    monkeypatch.setenv("FSCLAP_DATA_ROOT", "rel/data")  # the environment's is checked alike
    assert "must be absolute" in setup_error(capsys)


def test_sources_or_demo_not_both(capsys, tmp_path):
    err = setup_error(capsys, "--data-root", str(tmp_path), "--sources", "s.yaml", "--demo-sources")
    assert "not both" in err


def test_bad_sources_stop_setup_before_the_server(capsys, tmp_path):
    api = f"http://127.0.0.1:{closed_port()}/api"
    err = setup_error(
        capsys,
        "--data-root",
        str(tmp_path / "d"),
        "--sources",
        str(tmp_path / "no.yaml"),
        "--api-url",
        api,
    )
    assert "sources file not found" in err
    assert not (tmp_path / "d").exists()


def test_unreachable_server_is_one_line(capsys, tmp_path):
    api = f"http://127.0.0.1:{closed_port()}/api"
    err = setup_error(capsys, "--data-root", str(tmp_path), "--api-url", api)
    assert err.startswith(f"error: no answer from the Prefect API at {api}")


def test_no_api_url_configured(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with pytest.raises(FsclapError, match="no Prefect server"):
            run_setup(tmp_path)


def test_every_deployment_whose_flow_takes_one_gets_the_data_root(tmp_path):
    doc = deployment_document(SPEC, tmp_path, sources_ready=True)
    takes = [d for d in doc["deployments"] if d["entrypoint"] in DATA_ROOT_ENTRYPOINTS]
    assert {d["parameters"]["data_root"] for d in takes} == {str(tmp_path)} and len(takes) == 5
    recovery = [d for d in doc["deployments"] if d not in takes]
    assert [d["name"] for d in recovery] == ["recovery"]  # its flow takes no data root
    assert "data_root" not in recovery[0]["parameters"]
    assert "data_root" not in (SPEC["deployments"][0]["parameters"] or {})  # a copy


def test_nightly_schedule_active_only_with_sources(tmp_path):
    def nightly(ready: bool) -> dict:
        doc = deployment_document(SPEC, tmp_path, sources_ready=ready)
        return next(d for d in doc["deployments"] if d["name"] == "nightly-refresh")

    assert [s["active"] for s in nightly(True)["schedules"]] == [True]
    assert [s["active"] for s in nightly(False)["schedules"]] == [False]


def test_sources_written_once_with_paths_rebased(tmp_path):
    media = tmp_path / "media"
    (media / "inside").mkdir(parents=True)
    data_root = tmp_path / "data"
    given = write_sources(
        media / "sources.yaml",
        ["inside/ep1.mp4", str(tmp_path / "ep2.mp4"), "https://x.org/ep3.mp4"],
    )
    assert install_sources(given, False, data_root).startswith("written from")
    written = yaml.safe_load((data_root / "sources.yaml").read_text())
    assert written["dramas"][0]["urls"] == [
        str(media / "inside" / "ep1.mp4"),  # relative to the given file: absolute in the copy
        str(tmp_path / "ep2.mp4"),
        "https://x.org/ep3.mp4",
    ]
    other = write_sources(tmp_path / "other.yaml", ["https://x.org/other.mp4"])
    assert install_sources(other, False, data_root).startswith("exists (kept")
    assert yaml.safe_load((data_root / "sources.yaml").read_text()) == written
    assert install_sources(None, False, tmp_path / "none") == "missing"


def test_sources_inside_the_data_root_stay_relative(tmp_path):
    data_root = tmp_path / "data"
    (data_root / "media").mkdir(parents=True)
    given = write_sources(data_root / "media" / "sources.yaml", ["ep1.mp4"])
    install_sources(given, False, data_root)
    written = yaml.safe_load((data_root / "sources.yaml").read_text())
    assert written["dramas"][0]["urls"] == ["media/ep1.mp4"]


def test_notification_options_are_checked_before_any_change(tmp_path):
    with pytest.raises(FsclapError, match="not both"):
        run_setup(tmp_path, notify_url="http://x/hook", notify_block="slack-webhook/team")
    with pytest.raises(FsclapError, match="http"):
        run_setup(tmp_path, notify_url="ftp://x/hook")


def test_docker_pools_get_the_docker_job_variables_and_process_pools_only_env(tmp_path):
    process = deployment_document(SPEC, tmp_path, True, {"cpu": "process", "gpu": "process"})
    docker = deployment_document(SPEC, tmp_path, True, {"cpu": "process", "gpu": "docker"})
    for plain, placed in zip(process["deployments"], docker["deployments"]):
        job = placed["work_pool"]["job_variables"]
        assert set(plain["work_pool"]["job_variables"]) == {"env"}
        if placed["work_pool"]["name"] == "gpu":
            assert job["image"] == "fsclap-gpu:latest" and "container_create_kwargs" in job
            assert job["env"] == plain["work_pool"]["job_variables"]["env"]
        else:
            assert set(job) == {"env"}
