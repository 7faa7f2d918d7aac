"""Stage acquire: yt-dlp downloads from a loopback server, local files, probing and bad inputs."""

from __future__ import annotations

import http.server
import os
import re
import socketserver
import threading
from pathlib import Path

import pytest

from fsclap.testing.media import LoopbackServer, closed_port, make_episode_mp4, truncate_file
from pipeline.acquire import (
    Acquire,
    AcquireConfig,
    EmptyMedia,
    NoAudioStream,
    NotFound,
    Unreachable,
    UnreadableMedia,
    UnsupportedSource,
    YtdlpClient,
    archive_id,
    classify_download_error,
)
from pipeline.sources import episode_id_for
from pipeline.stage import StageContext, StageError
from pipeline.tables import Episode


@pytest.fixture(scope="module")
def web(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("web")
    make_episode_mp4(root / "ep01.mp4", seconds=2, seed=1)
    (root / "other").mkdir()
    make_episode_mp4(root / "other" / "ep01.mp4", seconds=2, seed=2)  # same basename, other content
    make_episode_mp4(root / "noaudio.mp4", seconds=2, audio="none")
    truncate_file(root / "ep01.mp4", root / "truncated.mp4", 0.5)
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.mp4").write_text("this is a text file, not a video\n")
    return root


@pytest.fixture()
def server(web):
    with LoopbackServer(web) as running:
        yield running


def remote(url: str, drama: str = "d") -> Episode:
    return Episode(
        episode_id=episode_id_for(drama, url), drama_id=drama, source_url=url, source_key=url
    )


def stage(tmp_path, **config) -> Acquire:
    config = {"retries": 1, "backoff_s": 0.01, **config}
    return Acquire(config, context=StageContext(data_root=tmp_path / "data"))


def test_download_names_by_id_hashes_probes_and_archives(tmp_path, server, web):
    acquire = stage(tmp_path)
    ep = remote(server.url("ep01.mp4"))
    done = acquire.run(ep)
    assert done.media_path == f"media/d/{ep.episode_id}.mp4"
    path = tmp_path / "data" / done.media_path
    assert path.read_bytes() == (web / "ep01.mp4").read_bytes()
    import hashlib

    assert done.media_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert done.media_bytes == path.stat().st_size
    assert (done.container, done.video_codec, done.audio_codec) == (
        "mov,mp4,m4a,3gp,3g2,mj2",
        "h264",
        "aac",
    )
    assert done.source_sample_rate == 44100 and done.source_channels == 2
    assert done.media_duration_s == pytest.approx(2.0, abs=0.1)
    archive = (tmp_path / "data" / "manifests" / "download-archive.txt").read_text().split("\n")
    assert archive_id(ep.source_key) in archive
    assert acquire.is_done(done)


def test_never_downloads_twice(tmp_path, server):
    ep = remote(server.url("ep01.mp4"))
    stage(tmp_path).run(ep)
    requests = len(server.requests)
    again = stage(tmp_path).run(ep)  # a fresh stage, e.g. after the episodes table was lost
    assert len(server.requests) == requests
    assert again.media_path is not None


def test_an_interrupted_download_resumes_from_its_part_file(tmp_path, server, web):
    ep = remote(server.url("ep01.mp4"))
    media_dir = tmp_path / "data" / "media" / "d"
    media_dir.mkdir(parents=True)
    whole = (web / "ep01.mp4").read_bytes()
    (media_dir / f"{ep.episode_id}.mp4.part").write_bytes(
        whole[: len(whole) // 2]
    )  # a killed download
    done = stage(tmp_path).run(ep)
    assert (tmp_path / "data" / done.media_path).read_bytes() == whole
    assert any(line.endswith(" 206") for line in server.log), (
        "the rest was fetched with a range request"
    )
    assert not list(media_dir.glob("*.part"))


def test_archive_refuses_a_re_download_and_says_why(tmp_path, server):
    ep = remote(server.url("ep01.mp4"))
    done = stage(tmp_path).run(ep)
    (tmp_path / "data" / done.media_path).unlink()
    with pytest.raises(StageError, match="in the download archive .* is missing") as info:
        stage(tmp_path).run(ep)
    assert info.value.error_type == "ArchivedButMissing" and not info.value.retryable


def test_a_playlist_where_an_episode_was_expected_downloads_nothing(tmp_path, server, web):
    feed = web / "feed.xml"
    feed.write_text(
        "<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>"
        f"<item><title>a</title><enclosure url='{server.url('ep01.mp4')}' type='video/mp4' length='1'/></item>"
        "</channel></rss>"
    )
    try:
        with pytest.raises(UnsupportedSource, match="is a playlist"):
            stage(tmp_path).run(remote(server.url("feed.xml")))
    finally:
        feed.unlink()
    assert not list((tmp_path / "data" / "media" / "d").iterdir())


def test_same_basename_at_two_urls_are_two_downloads(tmp_path, server, web):
    acquire = stage(tmp_path)
    first = acquire.run(remote(server.url("ep01.mp4")))
    second = acquire.run(remote(server.url("other/ep01.mp4")))
    assert first.media_sha256 != second.media_sha256
    assert (tmp_path / "data" / second.media_path).read_bytes() == (
        web / "other" / "ep01.mp4"
    ).read_bytes()


@pytest.mark.parametrize(
    "name, error, message",
    [
        ("missing.mp4", NotFound, "HTTP 404"),
        ("empty.mp4", EmptyMedia, "empty file"),
        ("truncated.mp4", UnreadableMedia, "truncated or corrupt MP4"),
        ("notes.mp4", UnreadableMedia, "not a media file"),
        ("noaudio.mp4", NoAudioStream, "no audio stream"),
    ],
)
def test_bad_remote_inputs(tmp_path, server, name, error, message):
    ep = remote(server.url(name))
    with pytest.raises(error, match=message) as info:
        stage(tmp_path).run(ep)
    assert not info.value.retryable
    media_dir = tmp_path / "data" / "media" / "d"
    assert not list(media_dir.glob(f"{ep.episode_id}*")), "a broken download is not kept"
    archive = tmp_path / "data" / "manifests" / "download-archive.txt"
    assert not archive.exists() or archive_id(ep.source_key) not in archive.read_text()


def test_unreachable_host_is_retried_then_fails(tmp_path, caplog):
    url = f"http://127.0.0.1:{closed_port()}/ep.mp4"
    with caplog.at_level("INFO", logger="fsclap"):
        with pytest.raises(Unreachable, match="cannot reach") as info:
            stage(tmp_path, retries=2).run(remote(url))
    assert info.value.retryable
    assert sum("retry" in r.getMessage() for r in caplog.records) == 2


def local(path: Path, drama: str = "d") -> Episode:
    key = f"file:{path}"
    return Episode(
        episode_id=episode_id_for(drama, key),
        drama_id=drama,
        source_url=str(path),
        source_key=key,
        source_kind="file",
    )


def test_local_file_is_hardlinked_by_default(tmp_path, web):
    source = tmp_path / "第1集 ../x.mp4".replace("/", "_")
    source.write_bytes((web / "ep01.mp4").read_bytes())
    done = stage(tmp_path).run(local(source))
    linked = tmp_path / "data" / done.media_path
    assert linked.parent == tmp_path / "data" / "media" / "d" and linked.name.startswith("d-")
    assert os.path.samefile(linked, source)
    assert done.source_mtime_ns == source.stat().st_mtime_ns


def test_local_file_reference_and_copy_modes(tmp_path, web):
    source = tmp_path / "ep.mp4"
    source.write_bytes((web / "ep01.mp4").read_bytes())
    referenced = stage(tmp_path, local_files="reference").run(local(source))
    assert referenced.media_path == str(source)
    copied = stage(tmp_path / "c", local_files="copy").run(local(source))
    path = tmp_path / "c" / "data" / copied.media_path
    assert path.read_bytes() == source.read_bytes() and not os.path.samefile(path, source)


def test_changed_local_file_is_acquired_again(tmp_path, web):
    source = tmp_path / "ep.mp4"
    source.write_bytes((web / "ep01.mp4").read_bytes())
    acquire = stage(tmp_path, local_files="copy")
    done = acquire.run(local(source))
    assert acquire.is_done(done)
    source.write_bytes((web / "other" / "ep01.mp4").read_bytes())
    assert not acquire.is_done(done)


def test_zero_byte_local_file(tmp_path):
    source = tmp_path / "empty.mp4"
    source.write_bytes(b"")
    with pytest.raises(EmptyMedia, match="0 bytes"):
        stage(tmp_path).run(local(source))
    assert source.exists(), "the user's own file is never deleted"


def test_rate_limit_is_validated(tmp_path):
    from fsclap.errors import FsclapError

    assert stage(tmp_path, rate_limit="500K").client.params()["ratelimit"] == 500 * 1024
    with pytest.raises(FsclapError, match="rate_limit"):
        stage(tmp_path, rate_limit="fast")


def test_server_errors_are_retryable_and_client_errors_are_not():
    import io
    import sys

    from yt_dlp.networking import Response
    from yt_dlp.networking.exceptions import HTTPError
    from yt_dlp.utils import DownloadError

    def error(status):
        try:
            raise HTTPError(Response(io.BytesIO(b""), "http://h/x", {}, status=status, reason="r"))
        except HTTPError:
            return DownloadError("ERROR: failed", sys.exc_info())

    assert classify_download_error(error(503), "http://h/x").retryable
    assert classify_download_error(error(429), "http://h/x").retryable
    assert not classify_download_error(error(403), "http://h/x").retryable
    assert isinstance(classify_download_error(error(410), "http://h/x"), NotFound)


class Redirects(http.server.BaseHTTPRequestHandler):
    """Redirects out of http(s), and plain HTTP errors."""

    def do_GET(self):
        target = {"/to-file": "file:///etc/passwd", "/to-ftp": "ftp://127.0.0.1/x.mp4"}.get(
            self.path
        )
        if target:
            self.send_response(302)
            self.send_header("Location", target)
        else:
            self.send_response(int(self.path.strip("/")))
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def redirects():
    with socketserver.TCPServer(("127.0.0.1", 0), Redirects) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()


def test_permanent_url_errors_are_never_retried(redirects):
    client = YtdlpClient(AcquireConfig(retries=3, backoff_s=30))  # a retry would hang the test
    permanent = {
        "ftp://127.0.0.1:1/x.mp4": "not ftp://",
        "gopher://host/x": "not gopher://",
        "file:///etc/passwd": "not file://",
        "not a url": "not a URL",
        f"{redirects}/to-file": "cannot be fetched over http(s)",
        f"{redirects}/to-ftp": "cannot be fetched over http(s)",
    }
    for url, reason in permanent.items():
        with pytest.raises(UnsupportedSource, match=re.escape(reason)) as caught:
            client.list_entries(url)
        assert not caught.value.retryable, url
    with pytest.raises(StageError) as caught:
        client.list_entries(f"{redirects}/403")
    assert caught.value.error_type == "HTTPStatusError" and not caught.value.retryable
    transient = YtdlpClient(AcquireConfig(retries=0))
    with pytest.raises(StageError) as caught:
        transient.list_entries(f"{redirects}/503")
    assert caught.value.retryable


def test_a_relative_data_root_keeps_media_flat_and_drops_failed_downloads(
    tmp_path, server, monkeypatch
):
    from fsclap.config import load_settings
    from pipeline.runner import run_build

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(
        "min_episodes: 1\ndramas:\n  - {id: d1, title: t, language: en, urls: ["
        + ", ".join(f"'{server.url(n)}'" for n in ("notes.mp4", "missing.mp4", "ep01.mp4"))
        + "]}\n"
    )
    settings = load_settings(overrides={"data_root": "data", "stages": {"acquire": {"retries": 0}}})
    summary = run_build(settings, "s.yaml", only=["acquire"])
    assert (summary.finished, summary.failures) == (1, 2)
    media = [
        p.relative_to(tmp_path / "data" / "media") for p in (tmp_path / "data" / "media").rglob("*")
    ]
    # one folder for the drama, the good episode's file in it; no nested copy of the data root
    assert len(media) == 2 and media[0].as_posix() == "d1" and media[1].suffix == ".mp4"
