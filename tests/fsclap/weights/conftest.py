"""Fake model hubs on disk: the paper profile's models as tiny random-weight models in their real
layouts, placed where the ecosystems' own clients look for them offline:

* a ModelScope cache (``MODELSCOPE_CACHE``): ``models/iic--<name>/snapshots/master/...`` (current
  client) and, for SenseVoiceSmall, the pre-1.38 ``hub/models/iic/<name>/`` layout;
* a HuggingFace cache (``HF_HUB_CACHE``): ``models--org--name/{refs/main, blobs/<sha256>,
  snapshots/<commit>/<file> -> blob}``;
* a Demucs release: a listing folder (``files.txt`` + ``htdemucs.yaml``, the format of
  ``demucs/remote/``) and a folder to serve over loopback HTTP (``hybrid_transformer/<sig>-<sha>.th``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from fsclap.model_store.registry import CLAP_CHECKPOINT, CLAP_REPO, MODELS, ROBERTA_REPO
from fsclap.testing import tiny_models as tm

COMMITS = {CLAP_REPO: "1f0c3e5a" * 5, ROBERTA_REPO: "e2da8e2f" * 5}


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory) -> dict[str, Path]:
    """Tiny models written once per session, one folder per registry id (the release file sets)."""
    root = tmp_path_factory.mktemp("tiny_release")
    dirs = dict(tm.write_funasr_model_dirs(root))
    dirs["sensevoice"] = tm.write_sensevoice_small_dir(root / "sensevoice")
    dirs["demucs"] = tm.write_htdemucs_repo(root / "demucs")
    # LAION-CLAP as the hubs serve it: the checkpoint alone, and roberta-base's own file set
    clap = root / "laion_clap_build"
    tm.write_tiny_clap_original(clap)
    release = root / "laion_clap"
    (release / "roberta-base").mkdir(parents=True)
    shutil.copy(clap / CLAP_CHECKPOINT, release / CLAP_CHECKPOINT)
    for name in ("vocab.json", "merges.txt", "tokenizer.json"):
        shutil.copy(clap / "roberta-base" / name, release / "roberta-base" / name)
    (release / "roberta-base" / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    dirs["laion_clap"] = release
    return dirs


@dataclass
class FakeHubs:
    modelscope: Path
    hf: Path
    demucs_listing: Path
    demucs_served: Path
    torch_home: Path


def write_modelscope_snapshot(cache: Path, repo: str, source: Path, legacy: bool = False) -> Path:
    owner, name = repo.split("/")
    snapshot = (
        cache / "hub" / "models" / owner / name.replace(".", "___")
        if legacy
        else cache / "models" / f"{owner}--{name}" / "snapshots" / "master"
    )
    shutil.copytree(source, snapshot)
    (snapshot / "example").mkdir()
    (snapshot / "example" / "asr_example.wav").write_bytes(
        b"RIFF...."
    )  # hubs ship examples: not pulled
    return snapshot


def write_hf_snapshot(cache: Path, repo: str, files: dict[str, Path]) -> Path:
    """The HF cache layout hf_hub_download(local_files_only=True) resolves."""
    owner, name = repo.split("/")
    base = cache / f"models--{owner}--{name}"
    commit = COMMITS[repo]
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(commit)
    snapshot = base / "snapshots" / commit
    for remote, source in files.items():
        data = source.read_bytes()
        blob = base / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / remote
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def write_demucs_release(tiny_repo: Path, listing: Path, served: Path) -> str:
    """A Demucs release of the tiny model under the real name ``htdemucs``; returns the weights' file name."""
    weights = next(tiny_repo.glob("*.th"))
    listing.mkdir(parents=True, exist_ok=True)
    (served / "hybrid_transformer").mkdir(parents=True, exist_ok=True)
    shutil.copy(weights, served / "hybrid_transformer" / weights.name)
    shutil.copy(tiny_repo / "htdemucs.yaml", listing / "htdemucs.yaml")
    (listing / "files.txt").write_text(
        f"# Hybrid Transformer models\nroot: hybrid_transformer/\n{weights.name}\n"
    )
    return weights.name


@pytest.fixture
def fake_hubs(tmp_path, tiny_release, monkeypatch) -> FakeHubs:
    """Every paper model in a local cache or the Demucs listing; the real hubs are unreachable."""
    hubs = FakeHubs(
        tmp_path / "modelscope",
        tmp_path / "hf",
        tmp_path / "demucs_listing",
        tmp_path / "demucs_web",
        tmp_path / "torch_home",
    )
    for model_id in ("paraformer", "fsmn_vad", "ct_punc", "campplus", "sensevoice"):
        write_modelscope_snapshot(
            hubs.modelscope,
            MODELS[model_id].repo,
            tiny_release[model_id],
            legacy=model_id == "sensevoice",
        )
    clap = tiny_release["laion_clap"]
    write_hf_snapshot(hubs.hf, CLAP_REPO, {CLAP_CHECKPOINT: clap / CLAP_CHECKPOINT})
    write_hf_snapshot(
        hubs.hf,
        ROBERTA_REPO,
        {
            n: clap / "roberta-base" / n
            for n in ("config.json", "vocab.json", "merges.txt", "tokenizer.json")
        },
    )
    write_demucs_release(tiny_release["demucs"], hubs.demucs_listing, hubs.demucs_served)
    monkeypatch.setenv("MODELSCOPE_CACHE", str(hubs.modelscope))
    monkeypatch.setenv("HF_HUB_CACHE", str(hubs.hf))
    monkeypatch.setenv("TORCH_HOME", str(hubs.torch_home))
    # nothing answers on the discard port: a hub pointed there is offline, whatever the machine's network
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("FSCLAP_MODEL_HUBS__DEMUCS_URL", "http://127.0.0.1:9/demucs/")
    monkeypatch.setenv("FSCLAP_MODEL_HUBS__CONNECT_TIMEOUT_S", "2")
    return hubs


@pytest.fixture
def installed(tmp_path, tiny_release) -> Path:
    """All seven paper models copied into the default layout ($FSCLAP_MODELS/<id>), not locked."""
    root = Path(os.environ["FSCLAP_MODELS"])
    for model_id, folder in tiny_release.items():
        shutil.copytree(folder, root / model_id)
    return root


# --- loopback hubs speaking the ModelScope and HuggingFace protocols ----------------------------


class _HubHandler:
    """Shared bits of the fake hubs: byte ranges and a request log."""

    def _send(self, code: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(code)
        for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _file(self, path: Path, headers: dict) -> None:
        import re

        data = path.read_bytes()
        match = re.match(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match:
            start = int(match.group(1))
            headers = {**headers, "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            return self._send(206, data[start:], headers)
        self._send(200, data, headers)

    def log_message(self, *args):
        pass


@pytest.fixture
def modelscope_server(monkeypatch):
    """A loopback ModelScope (``/api/v1/models/<repo>/repo/files`` listing with SHA-256s, files at
    ``/repo?FilePath=``) serving folders registered in the yielded dict ``repo -> folder``."""
    import http.server
    import threading
    from urllib.parse import parse_qs, urlparse

    repos: dict[str, Path] = {}
    requests: list[str] = []

    class Handler(_HubHandler, http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            url = urlparse(self.path)
            requests.append(f"{self.command} {self.path}")
            query = parse_qs(url.query)
            repo = next((r for r in repos if url.path.startswith(f"/api/v1/models/{r}/")), None)
            if repo is None:
                return self._send(404, b'{"Code": 10010205001, "Message": "not found"}')
            root = repos[repo]
            if url.path.endswith("/repo/files"):
                files = [
                    {
                        "Path": p.relative_to(root).as_posix(),
                        "Name": p.name,
                        "Type": "blob",
                        "Size": p.stat().st_size,
                        "Sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                    }
                    for p in sorted(root.rglob("*"))
                    if p.is_file()
                ]
                return self._send(
                    200,
                    json.dumps({"Code": 200, "Success": True, "Data": {"Files": files}}).encode(),
                )
            path = root / query.get("FilePath", [""])[0]
            if not path.is_file():
                return self._send(404, b'{"Code": 404, "Message": "no such file"}')
            self._file(path, {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"})

        do_HEAD = do_GET

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    repos_and_log = {"repos": repos, "requests": requests}
    yield repos_and_log
    server.shutdown()
    server.server_close()


@pytest.fixture
def hf_server(monkeypatch):
    """A loopback HuggingFace hub (``/<repo>/resolve/<rev>/<file>`` with commit and ETag headers)
    serving ``repo -> folder``; HF offline mode is lifted for the test."""
    import http.server
    import re
    import threading
    from urllib.parse import urlparse

    from huggingface_hub import constants

    repos: dict[str, Path] = {}
    requests: list[str] = []

    class Handler(_HubHandler, http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            requests.append(f"{self.command} {self.path}")
            match = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", urlparse(self.path).path)
            path = (
                repos[match.group(1)] / match.group(3)
                if match and match.group(1) in repos
                else None
            )
            if path is None or not path.is_file():
                return self._send(404, b"", {"X-Error-Code": "EntryNotFound"})
            etag = f'"{hashlib.sha256(path.read_bytes()).hexdigest()}"'
            self._file(
                path,
                {
                    "X-Repo-Commit": COMMITS.get(match.group(1), "0" * 40),
                    "ETag": etag,
                    "X-Linked-Etag": etag,
                    "X-Linked-Size": str(path.stat().st_size),
                    "Accept-Ranges": "bytes",
                },
            )

        do_HEAD = do_GET

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield {"repos": repos, "requests": requests}
    server.shutdown()
    server.server_close()
