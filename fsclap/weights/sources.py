"""Getting model files: from the ecosystems' local caches and from their hubs, with their own clients.

* ModelScope (FunASR models, SenseVoice): ``modelscope.hub.snapshot_download`` — from the local
  ModelScope cache (``MODELSCOPE_CACHE``) with ``local_files_only=True``, else from the hub straight
  into the model folder (``local_dir``; the client resumes partial files and checks each file's
  SHA-256 against the hub's listing).
* HuggingFace (LAION-CLAP, roberta-base tokenizer): ``huggingface_hub.hf_hub_download`` — from the
  HF cache (``HF_HUB_CACHE``) with ``local_files_only=True``, else into the model folder.
* Demucs: the release files Demucs itself lists (``demucs/remote/files.txt`` + ``<name>.yaml``);
  the weights come from the torch hub cache (where Demucs' own downloader puts them) or over HTTP
  with byte-range resume, and must match the SHA-256 prefix in their name, as Demucs checks.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from fsclap.errors import FsclapError
from fsclap.io import atomic_path, sha256_file
from fsclap.log import get_logger, progress_enabled
from fsclap.model_store.lock import model_files
from fsclap.model_store.registry import (
    DEMUCS_URL,
    HubFile,
    ModelSpec,
    hf_endpoint,
    modelscope_endpoint,
)

log = get_logger("weights")

# files of a hub repo that no loader reads (examples, figures): not pulled
MODELSCOPE_IGNORE = [
    "example/*",
    "examples/*",
    "fig/*",
    "figs/*",
    "*.wav",
    "*.mp3",
    "*.png",
    "*.jpg",
    "*.gif",
]


class SourceUnavailable(Exception):
    """The files are not in the local cache / the hub cannot be reached (reason in the message)."""


# --- Demucs release ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DemucsRelease:
    name: str
    bag: Path  # the <name>.yaml Demucs ships in its package
    weights: tuple[
        HubFile, ...
    ]  # remote = path below the Demucs URL root, e.g. hybrid_transformer/955717e8-8726e21a.th

    def files(self) -> tuple[HubFile, ...]:
        yaml_file = HubFile(self.bag.name, self.name, str(self.bag), None, source="demucs")
        return (*self.weights, yaml_file)


def demucs_release(name: str, listing: Path | None = None) -> DemucsRelease:
    """The files of released Demucs model ``name`` from Demucs' own remote listing (a folder with
    ``files.txt`` and ``<name>.yaml``; default: the installed demucs package's ``remote/``)."""
    import yaml

    if listing is None:
        from demucs.pretrained import REMOTE_ROOT

        listing = REMOTE_ROOT
    listing = Path(listing)
    bag = listing / f"{name}.yaml"
    if not bag.is_file():
        raise FsclapError(
            f"{name!r} is not a released Demucs model (no {bag}); pull can only fetch released models"
        )
    paths: dict[str, str] = {}
    root = ""
    for line in (
        (listing / "files.txt").read_text().splitlines()
    ):  # same format as demucs.pretrained._parse_remote_files
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("root:"):
            root = line.split(":", 1)[1].strip()
        else:
            paths[line.split("-")[0]] = root + line
    weights = []
    for sig in yaml.safe_load(bag.read_text())["models"]:
        if sig not in paths:
            raise FsclapError(
                f"Demucs model {name}: signature {sig} is not in {listing / 'files.txt'}"
            )
        weights.append(HubFile(Path(paths[sig]).name, name, paths[sig], None, source="demucs"))
    return DemucsRelease(name, bag, tuple(weights))


def demucs_checksum_prefix(file_name: str) -> str | None:
    stem = Path(file_name).stem
    return stem.rsplit("-", 1)[1] if "-" in stem else None


def check_demucs_weights(path: Path) -> None:
    """Demucs names weights ``<sig>-<sha256 prefix>.th``; a file whose content does not match is corrupt."""
    prefix = demucs_checksum_prefix(path.name)
    if prefix:
        actual = sha256_file(path)[: len(prefix)]
        if actual != prefix:
            raise FsclapError(
                f"{path.name}: sha256 starts with {actual}, its name says {prefix} (corrupt or truncated)"
            )


# --- installing files into the layout ----------------------------------------------------------


def install_file(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` atomically: a hard link when on the same filesystem, else a copy."""
    source = Path(os.path.realpath(source))  # HF cache snapshots hold symlinks to blobs
    target.parent.mkdir(parents=True, exist_ok=True)
    if (
        target.exists()
        and target.stat().st_size == source.stat().st_size
        and os.path.samefile(source, target)
    ):
        return
    with atomic_path(target) as tmp:
        try:
            tmp.unlink()
            os.link(source, tmp)
        except OSError:
            shutil.copy2(source, tmp)


def copy_tree(snapshot: Path, target: Path, ignore: list[str]) -> list[str]:
    """Install every file of a cached snapshot into ``target`` (skipping ``ignore`` globs and hidden files)."""
    from fnmatch import fnmatch

    copied = []
    for rel in model_files(snapshot):
        if any(fnmatch(rel, pattern) for pattern in ignore):
            continue
        install_file(snapshot / rel, target / rel)
        copied.append(rel)
    return copied


# --- local caches --------------------------------------------------------------------------


def modelscope_cache() -> Path:
    return Path(
        os.environ.get("MODELSCOPE_CACHE") or Path.home() / ".cache" / "modelscope"
    ).expanduser()


def hf_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def torch_hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def from_modelscope_cache(spec: ModelSpec, target: Path, revision: str | None) -> str:
    """Install ``spec`` from the ModelScope cache; returns the snapshot folder used."""
    from modelscope.hub.snapshot_download import snapshot_download

    try:
        snapshot = Path(
            snapshot_download(
                spec.repo,
                revision=revision,
                cache_dir=str(modelscope_cache()),
                local_files_only=True,
            )
        )
    except Exception as exc:  # noqa: BLE001 - CacheNotFound / ValueError by client version
        raise SourceUnavailable(
            f"not in the ModelScope cache {modelscope_cache()}: {str(exc).splitlines()[0]}"
        ) from None
    copy_tree(snapshot, target, MODELSCOPE_IGNORE)
    return str(snapshot)


def from_hf_cache(spec: ModelSpec, target: Path) -> str:
    """Install every file of ``spec`` from the HF cache; returns the snapshot commit(s) used."""
    from huggingface_hub import hf_hub_download

    commits = []
    for file in spec.files:
        try:
            cached = Path(
                hf_hub_download(
                    file.repo,
                    file.remote,
                    revision=file.revision,
                    cache_dir=str(hf_cache()),
                    local_files_only=True,
                )
            )
        except Exception as exc:  # noqa: BLE001 - LocalEntryNotFoundError and friends
            raise SourceUnavailable(
                f"{file.repo}/{file.remote} is not in the HF cache {hf_cache()}: "
                f"{type(exc).__name__}"
            ) from None
        install_file(cached, target / file.path)
        parts = cached.parts
        commit = parts[parts.index("snapshots") + 1] if "snapshots" in parts else "?"
        commits.append(f"{file.repo}@{commit}")
    return ", ".join(dict.fromkeys(commits))


def from_torch_hub_cache(release: DemucsRelease, target: Path) -> str:
    """Demucs weights already downloaded by Demucs/torch.hub (``$TORCH_HOME/hub/checkpoints``)."""
    cache = torch_hub_checkpoints()
    for file in release.weights:
        cached = cache / file.path
        if not cached.is_file():
            raise SourceUnavailable(f"{file.path} is not in the torch hub cache {cache}")
        check_demucs_weights(cached)
    for file in release.weights:
        install_file(cache / file.path, target / file.path)
    install_file(release.bag, target / release.bag.name)
    return str(cache)


# --- hubs --------------------------------------------------------------------------------


def hub_url(source: str, demucs_url: str | None = None) -> str:
    return {
        "modelscope": modelscope_endpoint(),
        "huggingface": hf_endpoint(),
        "demucs": (demucs_url or DEMUCS_URL),
    }[source]


def hf_offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return flag.strip().lower() in {"1", "true", "yes", "on"} or bool(constants.HF_HUB_OFFLINE)


def probe(url: str, timeout: float) -> str | None:
    """``None`` when ``url``'s server answers (any HTTP status), else why not. Bounded by
    ``timeout`` even when name resolution hangs (it runs in a thread that is abandoned)."""
    import requests

    def head() -> str | None:
        try:
            requests.head(url, timeout=(timeout, timeout), allow_redirects=False)
            return None
        except requests.Timeout:
            return f"no answer within {timeout:.0f} s"
        except requests.RequestException as exc:
            return short_reason(exc)

    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(head)
    try:
        return future.result(timeout=timeout + 1.0)
    except Exception:  # noqa: BLE001 - TimeoutError: DNS or connect hanging past the deadline
        return f"no answer within {timeout:.0f} s"
    finally:
        pool.shutdown(wait=False)


def short_reason(exc: BaseException) -> str:
    """``ConnectionError(... Caused by NameResolutionError(...))`` -> ``cannot connect (NameResolutionError)``."""
    import re

    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    cause = re.search(r"Caused by (\w+)", text)
    detail = errno.group(1).strip() if errno else cause.group(1) if cause else type(exc).__name__
    return f"cannot connect ({detail})"


def probe_hubs(
    sources: set[str], timeout: float, demucs_url: str | None = None
) -> dict[str, str | None]:
    """source -> None (reachable) or the reason it is not; all probed at once."""
    reasons: dict[str, str | None] = {}
    todo = set(sources)
    if "huggingface" in todo and hf_offline():
        reasons["huggingface"] = "HF_HUB_OFFLINE is set"
        todo.discard("huggingface")
    with ThreadPoolExecutor(max_workers=max(len(todo), 1)) as pool:
        futures = {s: pool.submit(probe, hub_url(s, demucs_url), timeout) for s in todo}
        reasons.update({s: f.result() for s, f in futures.items()})
    return reasons


def host(source: str, demucs_url: str | None = None) -> str:
    return urlparse(hub_url(source, demucs_url)).netloc or hub_url(source, demucs_url)


def modelscope_download(spec: ModelSpec, target: Path, revision: str | None) -> None:
    from modelscope.hub.snapshot_download import snapshot_download

    target.mkdir(parents=True, exist_ok=True)
    snapshot_download(
        spec.repo,
        revision=revision or "master",
        local_dir=str(target),
        ignore_patterns=MODELSCOPE_IGNORE,
        endpoint=modelscope_endpoint(),
    )


def hf_download(spec: ModelSpec, target: Path) -> str:
    """Download every file of ``spec`` into ``target``; returns the commits downloaded from."""
    from huggingface_hub import hf_hub_download

    commits = []
    for file in spec.files:
        folder = (target / file.path).parent
        folder.mkdir(parents=True, exist_ok=True)
        hf_hub_download(
            file.repo,
            file.remote,
            revision=file.revision,
            local_dir=str(folder),
            endpoint=hf_endpoint(),
        )
        commits.append(f"{file.repo}@{_local_dir_commit(folder, file.remote)}")
    return ", ".join(dict.fromkeys(commits))


def _local_dir_commit(folder: Path, filename: str) -> str:
    """The commit huggingface_hub recorded for a file it downloaded into a local dir (best effort)."""
    try:
        from huggingface_hub._local_folder import read_download_metadata

        metadata = read_download_metadata(folder, filename)
        return metadata.commit_hash if metadata else "?"
    except Exception:  # noqa: BLE001 - private API; the commit is informative only
        return "?"


def demucs_download(
    release: DemucsRelease, target: Path, demucs_url: str | None, timeout: float
) -> None:
    for file in release.weights:
        url = (demucs_url or DEMUCS_URL).rstrip("/") + "/" + file.remote
        http_download(url, target / file.path, timeout=timeout)
        try:
            check_demucs_weights(target / file.path)
        except FsclapError:
            (target / file.path).unlink()  # never leave a corrupt file where the loader looks
            raise
    install_file(release.bag, target / release.bag.name)


def http_download(
    url: str, target: Path, timeout: float = 10.0, chunk_bytes: int = 1 << 20
) -> Path:
    """Download ``url`` to ``target`` through ``<target>.part``, resuming a previous partial
    download with a byte range; the finished file replaces ``target`` atomically."""
    import requests

    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    done = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={done}-"} if done else {}
    with requests.get(url, headers=headers, stream=True, timeout=(timeout, 60)) as response:
        if response.status_code == 416:  # the .part already holds the whole file
            response.close()
        else:
            response.raise_for_status()
            resumed = response.status_code == 206
            if done and not resumed:
                done = 0  # the server ignored the range: start over
            total = int(response.headers.get("Content-Length") or 0) + done
            from tqdm.auto import tqdm

            with (
                open(part, "ab" if resumed else "wb") as out,
                tqdm(
                    total=total or None,
                    initial=done,
                    unit="B",
                    unit_scale=True,
                    desc=target.name,
                    disable=not progress_enabled(),
                    leave=False,
                ) as bar,
            ):
                for block in response.iter_content(chunk_bytes):
                    out.write(block)
                    bar.update(len(block))
            if resumed:
                log.info("resumed %s from byte %d", target.name, done)
    os.replace(part, target)
    return target
