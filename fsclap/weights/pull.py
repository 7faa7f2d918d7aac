"""``fsclap models pull``: put the paper profile's models into the model layout and lock them.

Per model, in order:

1. already installed and matching its lock entry → nothing to do;
2. in the ecosystem's local cache (ModelScope cache, HF cache, torch hub cache) → installed from
   there (hard links when possible), no network;
3. its hub answers (probed first with a short connect timeout, so an offline machine fails in
   seconds, not after the clients' long retries) → downloaded with the ecosystem's own client
   into the model folder; partial downloads resume;
4. otherwise (no connection, or the download failed): listed in the manual-copy instructions,
   every file's URL and destination path. A model whose files are all present but were never
   locked (copied in by hand) is locked as it is; one whose locked files changed is never
   re-locked without ``--force``.

Each finished model is written to the lock file at once, so an interrupted pull keeps its work.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from fsclap.errors import FsclapError
from fsclap.log import get_logger
from fsclap.model_store.lock import ModelLock, check_files
from fsclap.model_store.presence import presence
from fsclap.model_store.registry import (
    LOCK_NAME,
    MODELS,
    PAPER_MODELS,
    HubFile,
    ModelSpec,
    demucs_model_name,
    file_url,
    locate,
    models_root,
)
from fsclap.model_store.verify import one_line
from fsclap.weights import sources

log = get_logger("weights.pull")


@dataclass
class PullResult:
    id: str
    path: Path
    status: str  # up to date | installed | manual | failed
    via: str = ""
    detail: str = ""


@dataclass
class ManualFile:
    url: str
    target: Path
    optional: bool = False


@dataclass
class PullReport:
    root: Path
    results: list[PullResult] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)  # source -> reason
    manual: dict[str, list[ManualFile]] = field(default_factory=dict)  # model id -> files to copy

    @property
    def ok(self) -> bool:
        return all(r.status in ("up to date", "installed") for r in self.results)

    def render(self) -> str:
        lines = [
            f"{r.id:<11} {r.status:<10} {r.path}"
            + (f"  ({r.via})" if r.via else "")
            + (f"  {r.detail}" if r.detail else "")
            for r in self.results
        ]
        if self.manual:
            lines.append("")
            lines.append(self.manual_text())
        return "\n".join(lines)

    def manual_text(self) -> str:
        hosts = "; ".join(
            f"{sources.host(s)}: {reason}" for s, reason in sorted(self.unreachable.items())
        )
        failed = [r.id for r in self.results if r.status == "failed" and r.id in self.manual]
        why = "; ".join(
            filter(None, [hosts, f"download failed: {', '.join(failed)}" if failed else ""])
        )
        lines = [
            f"Cannot download {len(self.manual)} model(s) here ({why or 'offline'}).",
            "Copy these files in by hand (download each URL to the path after '->'; or run "
            "'fsclap models pull --to DIR' on a machine with internet and copy DIR to "
            f"{self.root}), then run 'fsclap models pull' again to lock them and 'fsclap models verify':",
        ]
        for model_id, files in self.manual.items():
            spec = MODELS[model_id]
            lines.append(
                f"  {model_id} ({spec.source_name} {spec.repo}"
                + (f"@{spec.revision}" if spec.revision else "")
                + f", ~{human_bytes(spec.approx_bytes)}):"
            )
            for f in files:
                lines.append(
                    f"    {f.url}  ->  {f.target}"
                    + ("   (if the release has it)" if f.optional else "")
                )
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "root": str(self.root),
            "ok": self.ok,
            "models": [
                {
                    "id": r.id,
                    "path": str(r.path),
                    "status": r.status,
                    "via": r.via,
                    "detail": r.detail,
                }
                for r in self.results
            ],
            "unreachable": self.unreachable,
            "manual": {
                m: [{"url": f.url, "target": str(f.target), "optional": f.optional} for f in files]
                for m, files in self.manual.items()
            },
        }


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if n >= 10 or unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def hub_files(spec: ModelSpec, settings, demucs_listing: Path | None = None) -> tuple[HubFile, ...]:
    """The files the hub serves for ``spec`` (Demucs: from its release listing of the configured model)."""
    if spec.source == "demucs":
        return sources.demucs_release(demucs_model_name(settings), demucs_listing).files()
    return spec.files


def manual_files(
    spec: ModelSpec,
    settings,
    target: Path,
    demucs_url: str | None,
    demucs_listing: Path | None = None,
) -> list[ManualFile]:
    out = []
    for file in hub_files(spec, settings, demucs_listing):
        if spec.source == "demucs" and file.path.endswith(".yaml"):
            out.append(
                ManualFile(
                    f"file://{file.remote} (from the demucs package; or write: "
                    f"{Path(file.remote).read_text().strip()!r})",
                    target / file.path,
                )
            )
        else:
            out.append(ManualFile(file_url(file, demucs_url), target / file.path, file.optional))
    return out


def pull_models(
    settings,
    ids: list[str] | None = None,
    *,
    to: Path | None = None,
    offline: bool = False,
    force: bool = False,
    revisions: dict[str, str] | None = None,
    demucs_listing: Path | None = None,
) -> PullReport:
    """Install ``ids`` (default: the paper profile's models) into the layout and lock them.

    ``to``: put every model in ``to/<id>`` (the lock in ``to``) instead of where the settings
    look for it; ``offline``: use local caches and files only; ``revisions``: per-model hub
    revision overrides; ``demucs_listing``: another Demucs release listing (tests, mirrors).
    """
    ids = ids or list(PAPER_MODELS)
    wheel = [i for i in ids if not MODELS[i].pullable]
    if wheel:
        raise FsclapError(
            f"nothing to pull for {', '.join(wheel)}: the offline profile's models ship in their wheels "
            "(check them with 'fsclap models verify --profile offline')"
        )
    root = Path(to).expanduser() if to else models_root(settings)
    lock = ModelLock(root / LOCK_NAME)
    hubs = settings.model_hubs
    report = PullReport(root)
    pending: list[tuple[ModelSpec, Path, str | None]] = []

    unknown = sorted(set(revisions or {}) - set(ids))
    if unknown:
        raise FsclapError(f"--revision for a model not being pulled: {', '.join(unknown)}")
    for model_id in ids:
        spec = with_revision(MODELS[model_id], (revisions or {}).get(model_id))
        revision = spec.revision
        target = root / model_id if to else locate(settings, model_id).path
        entry = lock.entry(model_id)
        here = presence(model_id, target, settings)
        if (
            here.ok
            and entry
            and not force
            and entry.get("revision") == revision
            and not check_files(entry, here.folder, quick=True)
        ):
            report.results.append(
                PullResult(
                    model_id, target, "up to date", detail=f"locked {entry.get('pulled', '')}"
                )
            )
            continue
        try:
            via = _from_cache(spec, settings, target, revision, demucs_listing)
        except sources.SourceUnavailable as exc:
            log.debug("%s: %s", model_id, exc)
        else:
            report.results.append(_lock(lock, spec, settings, target, revision, via))
            continue
        pending.append((spec, target, revision))

    needed = {spec.source for spec, _, _ in pending}
    if needed and not offline:
        report.unreachable = {
            s: r
            for s, r in sources.probe_hubs(needed, hubs.connect_timeout_s, hubs.demucs_url).items()
            if r
        }
    elif needed:
        report.unreachable = {s: "--offline" for s in needed}

    for spec, target, revision in pending:
        if spec.source not in report.unreachable:
            try:
                via = _download(spec, settings, target, revision, hubs, demucs_listing)
            except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the others
                # e.g. a proxy that answers for the hub: what cannot be fetched here is copied by hand
                report.manual[spec.id] = manual_files(
                    spec, settings, target, hubs.demucs_url, demucs_listing
                )
                report.results.append(PullResult(spec.id, target, "failed", detail=one_line(exc)))
                continue
            report.results.append(_lock(lock, spec, settings, target, revision, via))
            continue
        here = presence(spec.id, target, settings)
        entry = lock.entry(spec.id)
        if here.ok and (entry is None or force):  # copied in by hand: lock it as it is
            report.results.append(
                _lock(
                    lock,
                    spec,
                    settings,
                    target,
                    revision,
                    "local files",
                    detail="locked as found (not checked against the hub)",
                )
            )
            continue
        report.manual[spec.id] = manual_files(
            spec, settings, target, hubs.demucs_url, demucs_listing
        )
        if here.ok:  # locked before, but changed since (or another revision asked for): never re-lock silently
            problems = check_files(entry, here.folder, quick=True)
            why = (
                problems[0].message
                if problems
                else f"revision {revision} asked for, {entry.get('revision')} locked"
            )
            report.results.append(
                PullResult(
                    spec.id,
                    target,
                    "failed",
                    detail=f"{why}; copy the files again "
                    "(or --force to lock the files as they are)",
                )
            )
            continue
        report.results.append(
            PullResult(
                spec.id,
                target,
                "manual",
                detail="not there yet" if not target.exists() else here.message,
            )
        )
    return report


def with_revision(spec: ModelSpec, revision: str | None) -> ModelSpec:
    """``spec`` pinned to another hub revision (HF: the checkpoint's repo; its tokenizer keeps its own)."""
    if not revision:
        return spec
    if spec.source == "demucs":
        raise FsclapError(
            "Demucs releases have no revisions (the weights' names carry their checksums)"
        )
    files = tuple(replace(f, revision=revision) if f.repo == spec.repo else f for f in spec.files)
    return replace(spec, revision=revision, files=files)


def _from_cache(
    spec: ModelSpec, settings, target: Path, revision: str | None, demucs_listing: Path | None
) -> str:
    if spec.source == "modelscope":
        via = "ModelScope cache " + sources.from_modelscope_cache(spec, target, revision)
    elif spec.source == "huggingface":
        via = "HF cache " + sources.from_hf_cache(spec, target)
    else:
        release = sources.demucs_release(demucs_model_name(settings), demucs_listing)
        via = "torch hub cache " + sources.from_torch_hub_cache(release, target)
    here = presence(spec.id, target, settings)
    if not here.ok:  # a partial snapshot: the hub (or a manual copy) has to complete it
        raise sources.SourceUnavailable(f"the cached copy is incomplete ({here.message})")
    return via


def _download(
    spec: ModelSpec, settings, target: Path, revision: str | None, hubs, demucs_listing: Path | None
) -> str:
    """Download ``spec`` into ``target`` with its ecosystem's client; returns how (for the lock)."""
    log.info(
        "downloading %s (%s %s, ~%s) into %s",
        spec.id,
        spec.source_name,
        spec.repo,
        human_bytes(spec.approx_bytes),
        target,
    )
    if spec.source == "modelscope":
        sources.modelscope_download(spec, target, revision)
        return f"network {sources.hub_url('modelscope')}"
    if spec.source == "huggingface":
        return f"network {sources.hf_download(spec, target)}"
    release = sources.demucs_release(demucs_model_name(settings), demucs_listing)
    sources.demucs_download(release, target, hubs.demucs_url, hubs.connect_timeout_s)
    return f"network {sources.hub_url('demucs', hubs.demucs_url)}"


def _lock(
    lock: ModelLock,
    spec: ModelSpec,
    settings,
    target: Path,
    revision: str | None,
    via: str,
    detail: str = "",
) -> PullResult:
    here = presence(spec.id, target, settings)
    if not here.ok:
        return PullResult(
            spec.id, target, "failed", via, f"incomplete after install: {here.message}"
        )
    if spec.source == "demucs":
        try:
            for name in here.files:
                if name.endswith(".th"):
                    sources.check_demucs_weights(here.folder / name)
        except FsclapError as exc:
            return PullResult(spec.id, target, "failed", via, str(exc))
    lock.record(
        spec.id,
        here.folder,
        here.files,
        source=spec.source,
        repo=spec.repo,
        revision=revision,
        via=via,
    )
    return PullResult(spec.id, target, "installed", via, detail)
