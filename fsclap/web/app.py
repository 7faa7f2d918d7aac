"""The FastAPI app: JSON API under ``/search``, ``/clips``, ``/facets``, ``/health``, ``/version`` and the
style-search page at ``/`` (see :mod:`fsclap.web.page`)."""

from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from fsclap import __version__
from fsclap.audio import AudioError
from fsclap.errors import FsclapError
from fsclap.web.auth import TokenAuth
from fsclap.web.media import BodyLimit, SegmentCache, bytes_response, media_type, segment_wav
from fsclap.web.models import (
    ClipInfo,
    ErrorBody,
    Facets,
    FacetValue,
    Health,
    IndexInfo,
    Limits,
    ModelInfo,
    SearchResponse,
    SimilarResponse,
    Version,
)
from fsclap.web.page import add_page
from fsclap.web.service import ApiError, StyleSearch, finite
from model.retrieval import Searcher

STATIC = Path(__file__).parent / "static"
ERRORS = {status: {"model": ErrorBody} for status in (400, 401, 404, 413, 415, 422)}
MULTIPART_OVERHEAD = 64 * 1024


def _filter_query(name: str, example: str):
    return Query(
        description=f"Only clips whose {name} is one of these (repeat the parameter or separate "
        f"values with commas), e.g. `{example}`."
    )


def filter_params(
    gender: Annotated[list[str] | None, _filter_query("gender", "female")] = None,
    pitch: Annotated[list[str] | None, _filter_query("pitch level", "high")] = None,
    speed: Annotated[list[str] | None, _filter_query("speed level", "slow")] = None,
    energy: Annotated[list[str] | None, _filter_query("energy level", "low")] = None,
    emotion: Annotated[list[str] | None, _filter_query("emotion", "sad,angry")] = None,
    language: Annotated[list[str] | None, _filter_query("language", "en")] = None,
    drama: Annotated[list[str] | None, _filter_query("drama id", "drama-01")] = None,
) -> dict[str, list[str] | None]:
    return {
        "gender": gender,
        "pitch": pitch,
        "speed": speed,
        "energy": energy,
        "emotion": emotion,
        "language": language,
        "drama": drama,
    }


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = [str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path")]
        parts.append(f"{'.'.join(where) or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(
    index_dir: str | Path | None = None,
    *,
    searcher=None,
    checkpoint=None,
    device: str = "cpu",
    token: str | None = None,
    limits: Limits | None = None,
) -> FastAPI:
    """The app over an index (or an already loaded :class:`~model.retrieval.Searcher`).

    ``token``: when set, every path but ``/health`` requires it (see :mod:`fsclap.web.auth`).
    """
    if searcher is None:
        if index_dir is None:
            raise FsclapError("create_app needs an index directory or a searcher")
        searcher = Searcher(index_dir, checkpoint, device=device)
    limits = limits or Limits()
    svc = StyleSearch(searcher, limits)
    segments = SegmentCache()

    app = FastAPI(
        title="fsclap style search",
        version=__version__,
        description="Find speech clips by a description of their speaking style (text->audio), by an example "
        "clip (audio->audio, audio->text), and listen to them.",
    )
    app.state.search = svc

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return JSONResponse({"error": _validation_message(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse(
            {"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(FsclapError)
    async def _fsclap_error(request: Request, exc: FsclapError):
        return JSONResponse({"error": (str(exc).splitlines() or ["error"])[0]}, status_code=400)

    # -- search -------------------------------------------------------------------------------
    @app.get("/search", response_model=SearchResponse, responses=ERRORS, tags=["search"])
    def search(
        q: Annotated[
            str,
            Query(
                min_length=1,
                max_length=limits.max_query_chars,
                description="A description of the speaking style.",
                examples=["a sad woman speaking slowly"],
            ),
        ],
        k: Annotated[int, Query(ge=1, le=limits.max_k, description="Number of results.")] = 10,
        rerank: Annotated[
            int,
            Query(
                ge=0,
                le=limits.max_rerank,
                description="Re-rank the top N with the fusion module's pair scores (0: off).",
            ),
        ] = 0,
        filters: dict = Depends(filter_params),
    ) -> SearchResponse:
        """Text -> audio: the clips that sound most like the description."""
        return svc.text_search(q, k, rerank, svc.parse_filters(filters))

    @app.post("/search/audio", response_model=SimilarResponse, responses=ERRORS, tags=["search"])
    def search_audio(
        file: Annotated[
            UploadFile,
            File(
                description=f"An audio clip (wav, flac, ogg, mp3, m4a, webm, ...), at most "
                f"{limits.max_upload_bytes // 2**20} MiB and "
                f"{limits.max_upload_seconds:.0f} s."
            ),
        ],
        k: Annotated[int, Query(ge=1, le=limits.max_k)] = 10,
        filters: dict = Depends(filter_params),
    ) -> SimilarResponse:
        """Audio -> audio and audio -> text: clips that sound like the upload, and descriptions that fit it."""
        return svc.audio_search(
            file.file, file.filename, file.content_type, k, svc.parse_filters(filters)
        )

    @app.get("/facets", response_model=Facets, tags=["search"])
    def facets() -> Facets:
        """The filters this index supports and their values (with clip counts)."""
        return Facets(
            filters={
                name: [FacetValue(value=v, count=n) for v, n in values]
                for name, values in svc.facets.items()
            }
        )

    # -- clips (the /audio and /similar routes come first: clip ids may contain slashes) ------------
    @app.api_route(
        "/clips/{clip_id:path}/audio",
        methods=["GET", "HEAD"],
        response_class=Response,
        tags=["clips"],
        responses={
            200: {"content": {"audio/wav": {}}, "description": "The clip's audio."},
            206: {"description": "Part of it (HTTP range request)."},
            404: {"model": ErrorBody},
            416: {"description": "Range not satisfiable."},
        },
    )
    def clip_audio(
        clip_id: str,
        request: Request,
        download: Annotated[bool, Query(description="Send as an attachment.")] = False,
    ) -> Response:
        """The clip's audio: its file as it is, or a WAV of its segment when it is part of a longer file."""
        row = svc.row(clip_id)
        path = Path(str(row["audio_path"]))
        if not path.is_file():
            raise ApiError(404, f"the audio file of clip {clip_id!r} is missing")
        start, end = finite(row.get("start_s")), finite(row.get("end_s"))
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(clip_id))
        if start is None and end is None:
            return FileResponse(
                path,
                media_type=media_type(path),
                filename=f"{stem}{path.suffix}",
                content_disposition_type="attachment" if download else "inline",
            )
        key = (str(path), path.stat().st_mtime_ns, start, end)
        try:
            data = segments.get(key, lambda: segment_wav(path, start, end))
        except AudioError as exc:
            raise ApiError(500, f"cannot decode the audio of clip {clip_id!r}: {exc}") from None
        disposition = f'{"attachment" if download else "inline"}; filename="{stem}.wav"'
        response = bytes_response(
            data,
            "audio/wav",
            request.headers.get("range"),
            request.headers.get("if-range"),
            headers={"content-disposition": disposition},
        )
        if request.method == "HEAD":
            response.body = b""  # headers (content-length included) as for GET
        return response

    @app.get(
        "/clips/{clip_id:path}/similar",
        response_model=SimilarResponse,
        responses=ERRORS,
        tags=["clips"],
    )
    def clip_similar(
        clip_id: str,
        k: Annotated[int, Query(ge=1, le=limits.max_k)] = 10,
        filters: dict = Depends(filter_params),
    ) -> SimilarResponse:
        """More like this: the clips whose audio is closest to this clip's (itself left out)."""
        return svc.similar_to_clip(clip_id, k, svc.parse_filters(filters))

    @app.get("/clips/{clip_id:path}", response_model=ClipInfo, responses=ERRORS, tags=["clips"])
    def clip(clip_id: str) -> ClipInfo:
        """A clip's caption, style labels, measured attributes and manifest metadata."""
        return svc.clip_info(clip_id)

    # -- service ------------------------------------------------------------------------------
    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> Health:
        return Health(status="ok", clips=len(svc.index))

    @app.get("/version", response_model=Version, tags=["service"])
    def version() -> Version:
        meta = svc.index.meta
        return Version(
            fsclap=__version__,
            model=ModelInfo(
                fingerprint=meta["model_fingerprint"],
                backbone=meta.get("model", {}).get("backbone"),
                pair_rerank=svc.searcher.model.has_pair_scoring,
            ),
            index=IndexInfo(
                count=len(svc.index),
                kind=meta["kind"],
                dim=meta["dim"],
                created=meta.get("created"),
                updated=meta.get("updated"),
            ),
        )

    add_page(app, svc)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimit, limit=limits.max_upload_bytes + MULTIPART_OVERHEAD)
    if token:
        app.add_middleware(TokenAuth, token=token)  # added last: runs first
    return app
