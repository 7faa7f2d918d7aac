"""The style-search page at ``/``: server-rendered HTML that works without JavaScript; ``static/app.js``
enhances it (no reloads, history, one player at a time) by fetching the same page's results fragment
(``?fragment=1``), so the results are rendered in one place only."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from fsclap import __version__
from fsclap.web.service import FILTER_COLUMNS, ApiError, StyleSearch, clip_url

TEMPLATES = Path(__file__).parent / "templates"
PAGE_SIZES = (6, 12, 24, 48)
DEFAULT_PAGE_K = 12
FILTER_LABELS = {
    "gender": "Gender",
    "pitch": "Pitch",
    "speed": "Speed",
    "energy": "Energy",
    "emotion": "Emotion",
    "language": "Language",
    "drama": "Drama",
}
MEASURED_LABELS = {
    "duration_s": ("Duration", "{:.1f} s"),
    "f0_median_hz": ("Median F0", "{:.0f} Hz"),
    "f0_range_semitones": ("F0 range", "{:.1f} st"),
    "speech_rate": ("Rate", "{:.1f}/s"),
    "rms_dbfs": ("Level", "{:.0f} dBFS"),
    "voiced_fraction": ("Voiced", "{:.0%}"),
}
EXAMPLES = (
    "a sad woman speaking slowly",
    "an angry man speaking loudly and fast",
    "a calm, low-pitched voice",
    "a cheerful high-pitched voice",
)


def chip_label(key: str, value: str) -> str:
    """A style label that reads on its own: "low pitch", "fast", "high energy" (not three bare "normal"s)."""
    if key in ("pitch", "energy"):
        return f"{value} {key}"
    if key == "speed":
        return value if value in ("slow", "fast") else f"{value} speed"
    return value


def measured_items(measured: dict[str, float]) -> list[tuple[str, str, str]]:
    """(label, shown value, column) for a clip's measured numbers, in a fixed order."""
    return [
        (label, fmt.format(measured[col]), col)
        for col, (label, fmt) in MEASURED_LABELS.items()
        if col in measured
    ]


def add_page(app: FastAPI, svc: StyleSearch) -> None:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.globals.update(
        measured_items=measured_items, chip_label=chip_label, clip_url=clip_url, version=__version__
    )

    def context(request: Request, params: dict, filters: dict, **extra) -> dict:
        def page_url(**changes) -> str:
            merged = {**params, **changes}
            query = [
                (k, v) for k, v in merged.items() if v not in (None, "") and k not in ("fragment",)
            ]
            query += [(name, value) for name, values in filters.items() for value in values]
            return "/?" + urlencode(query)

        # a filter with a single value (e.g. every emotion "unknown" on the offline profile) filters nothing
        facets = {name: values for name, values in svc.facets.items() if len(values) > 1}
        return {
            "request": request,
            "facets": facets,
            "labels": FILTER_LABELS,
            "filters": filters,
            "params": params,
            "page_sizes": PAGE_SIZES,
            "examples": EXAMPLES,
            "clips": len(svc.index),
            "index_kind": svc.index.meta.get("kind"),
            "page_url": page_url,
            "max_query": svc.limits.max_query_chars,
            "max_upload_mb": svc.limits.max_upload_bytes // 2**20,
            **extra,
        }

    def render(request: Request, fragment: bool, ctx: dict, status: int = 200) -> HTMLResponse:
        name = "_results.html" if fragment else "index.html"
        response = templates.TemplateResponse(request, name, ctx, status_code=status)
        response.headers["cache-control"] = "no-store"
        return response

    def read_params(source) -> tuple[dict, dict, int]:
        """Page parameters, filters and k from a query string or form, with the page's lenient defaults."""
        try:
            k = int(source.get("k") or DEFAULT_PAGE_K)
        except ValueError:
            k = DEFAULT_PAGE_K
        k = min(max(k, 1), svc.limits.max_k)
        filters = svc.parse_filters({name: source.getlist(name) for name in FILTER_COLUMNS})
        params = {
            "q": (source.get("q") or "").strip(),
            "like": (source.get("like") or "").strip(),
            "k": k if k != DEFAULT_PAGE_K else None,
        }
        return params, filters, k

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request) -> HTMLResponse:
        fragment = request.query_params.get("fragment") == "1"
        params, filters, k, result, error, mode, source, status = (
            {},
            {},
            DEFAULT_PAGE_K,
            None,
            None,
            None,
            None,
            200,
        )
        try:
            params, filters, k = read_params(request.query_params)
            if params["like"]:
                mode = "like"
                source = svc.hit_for(params["like"])
                result = svc.similar_to_clip(params["like"], k, filters)
            elif params["q"]:
                mode = "text"
                result = svc.text_search(params["q"], k, 0, filters)
        except ApiError as exc:
            error, status = exc.message, exc.status
        ctx = context(
            request,
            params or {"q": request.query_params.get("q", "")},
            filters,
            result=result,
            error=error,
            mode=mode,
            source=source,
            k=k,
        )
        return render(request, fragment, ctx, status)

    @app.post("/", response_class=HTMLResponse, include_in_schema=False)
    async def page_upload(request: Request) -> HTMLResponse:
        form = await request.form(max_files=1, max_fields=50)
        fragment = form.get("fragment") == "1"
        params, filters, k, result, error, status = {}, {}, DEFAULT_PAGE_K, None, None, 200
        upload = form.get("file")
        try:
            params, filters, k = read_params(form)
            if upload is None or isinstance(upload, str) or not upload.filename:
                raise ApiError(400, "choose an audio file to find clips like it")
            result = await run_in_threadpool(
                svc.audio_search, upload.file, upload.filename, upload.content_type, k, filters
            )
        except ApiError as exc:
            error, status = exc.message, exc.status
        finally:
            await form.close()
        params = {**params, "like": ""}
        ctx = context(
            request, params, filters, result=result, error=error, mode="audio", source=None, k=k
        )
        return render(request, fragment, ctx, status)
