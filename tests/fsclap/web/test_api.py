"""The HTTP API over a real index (generated speech, a trained checkpoint): searches agree with the
``Searcher``, filters give the best matches that satisfy them, audio streams with ranges, bad input gets
a clear 4xx."""

import io
import subprocess

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from fsclap.audio import load_audio
from fsclap.web import create_app
from fsclap.web.models import Limits
from model.evaluation import checkpoint_fingerprint


@pytest.fixture(scope="module")
def app(web_index):
    return create_app(web_index.index_dir)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def searcher(app):
    return app.state.search.searcher


def _error(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"] and "\n" not in body["error"]
    return body["error"]


def test_health_version_facets_and_openapi(client, web_index):
    assert client.get("/health").json() == {"status": "ok", "clips": len(web_index.manifest)}
    version = client.get("/version").json()
    assert version["model"]["fingerprint"] == checkpoint_fingerprint(web_index.checkpoint)
    assert (
        version["index"]["count"] == len(web_index.manifest) and version["index"]["kind"] == "exact"
    )
    assert version["fsclap"]
    facets = client.get("/facets").json()["filters"]
    assert set(facets) == {"gender", "pitch", "speed", "energy", "emotion", "language", "drama"}
    counts = web_index.manifest["gender"].value_counts().to_dict()
    assert {f["value"]: f["count"] for f in facets["gender"]} == counts
    assert {f["value"] for f in facets["drama"]} == {"drama-a", "drama-b"}
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/search",
        "/search/audio",
        "/clips/{clip_id}",
        "/clips/{clip_id}/audio",
        "/clips/{clip_id}/similar",
        "/facets",
        "/health",
        "/version",
    ):
        assert path in paths
    params = {p["name"] for p in paths["/search"]["get"]["parameters"]}
    assert {"q", "k", "rerank", "gender", "emotion", "language", "drama"} <= params


def test_text_search_matches_the_searcher(client, searcher):
    query = "a sad woman speaking slowly"
    body = client.get("/search", params={"q": query, "k": 7}).json()
    expected = searcher.search_text(query, 7)
    assert [r["clip_id"] for r in body["results"]] == [r.clip_id for r in expected]
    assert [r["score"] for r in body["results"]] == [r.score for r in expected]
    assert [r["rank"] for r in body["results"]] == list(range(1, 8))
    assert body["matching"] == len(searcher.index) and body["filters"] == {}
    first = body["results"][0]
    assert first["audio_url"].startswith("/clips/") and first["audio_url"].endswith("/audio")
    assert set(first["attributes"]) == {"gender", "pitch", "speed", "energy", "emotion"}
    assert {"f0_median_hz", "speech_rate", "rms_dbfs", "duration_s"} <= set(first["measured"])
    assert first["drama"] in {"drama-a", "drama-b"} and first["language"] in {"en", "zh"}


def test_reranked_search_reorders_the_bi_shortlist(client, searcher):
    assert (
        searcher.model.has_pair_scoring
        and client.get("/version").json()["model"]["pair_rerank"] is True
    )
    body = client.get("/search", params={"q": "an angry man", "k": 3, "rerank": 6}).json()
    expected = searcher.search_text("an angry man", 3, rerank=6)
    assert [r["clip_id"] for r in body["results"]] == [r.clip_id for r in expected]
    assert [r["score"] for r in body["results"]] == [r.score for r in expected]
    shortlist = {r.clip_id for r in searcher.search_text("an angry man", 6)}
    assert {r["clip_id"] for r in body["results"]} <= shortlist and body["rerank"] == 6


def test_rerank_is_refused_when_the_model_has_no_pair_scoring(client, searcher, monkeypatch):
    monkeypatch.setattr(type(searcher.model), "has_pair_scoring", property(lambda self: False))
    assert "no pair scoring" in _error(
        client.get("/search", params={"q": "an angry man", "rerank": 6}), 400
    )
    assert client.get("/search", params={"q": "an angry man", "rerank": 0}).status_code == 200


@pytest.mark.parametrize(
    "filters",
    [
        {"gender": "female"},
        {"emotion": ["sad", "angry"]},
        {"emotion": "SAD,Angry", "language": "en"},
        {"drama": "drama-b", "speed": "slow", "gender": "male"},
    ],
)
def test_filtered_search_returns_the_best_matches_that_satisfy_the_filter(
    client, searcher, web_index, filters
):
    query = "a calm voice speaking quietly"
    body = client.get("/search", params={"q": query, "k": 5, **filters}).json()
    frame = web_index.manifest
    columns = {"drama": "drama_id"}
    keep = np.ones(len(frame), bool)
    for name, values in filters.items():
        values = values if isinstance(values, list) else values.split(",")
        keep &= (
            frame[columns.get(name, name)].str.lower().isin([v.lower() for v in values]).to_numpy()
        )
    allowed = set(frame.loc[keep, "clip_id"])
    # ranking the whole index and keeping what satisfies the filter gives the expected answer
    everything = searcher.search_text(query, len(searcher.index))
    expected = [r.clip_id for r in everything if r.clip_id in allowed][:5]
    assert body["matching"] == len(allowed)
    assert [r["clip_id"] for r in body["results"]] == expected
    assert len(body["results"]) == min(5, len(allowed))


def test_a_filter_nothing_satisfies(client):
    body = client.get("/search", params={"q": "a voice", "emotion": "furious"}).json()
    assert body["results"] == [] and body["matching"] == 0


@pytest.mark.parametrize(
    "params, status, fragment",
    [
        ({}, 422, "q: Field required"),
        ({"q": ""}, 422, "q: String should have at least 1 character"),
        ({"q": "x" * 1001}, 422, "at most 1000 characters"),
        ({"q": "   "}, 422, "empty query"),
        ({"q": "a voice", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
        ({"q": "a voice", "k": 101}, 422, "k: Input should be less than or equal to 100"),
        ({"q": "a voice", "k": "many"}, 422, "k: Input should be a valid integer"),
        ({"q": "a voice", "rerank": 51}, 422, "rerank"),
        ({"q": "a voice", "gender": ["x"] * 51}, 422, "at most 50 values"),
    ],
)
def test_search_input_limits(client, params, status, fragment):
    assert fragment in _error(client.get("/search", params=params), status)


def test_clip_metadata_and_unknown_clips(client, web_index):
    row = web_index.manifest.iloc[5]
    info = client.get(f"/clips/{row['clip_id']}").json()
    assert info["caption"] == row["caption"] and info["audio_path"] == row["audio_path"]
    assert info["measured"]["f0_median_hz"] == pytest.approx(row["f0_median_hz"])
    assert info["attributes"]["emotion"] == row["emotion"]
    assert (
        info["metadata"]["drama_id"] == row["drama_id"]
        and info["metadata"]["speaker_id"] == row["speaker_id"]
    )
    segment = client.get(f"/clips/{web_index.segment_ids[1]}").json()  # an id with a slash
    assert segment["metadata"]["start_s"] > 0 and segment["measured"]["duration_s"] > 0
    assert "no clip 'nope'" in _error(client.get("/clips/nope"), 404)
    _error(client.get("/clips/nope/audio"), 404)
    _error(client.get("/clips/nope/similar"), 404)
    _error(client.get("/no/such/route"), 404)


def test_whole_file_audio_streams_with_ranges(client, web_index):
    row = web_index.manifest.iloc[2]
    data = open(row["audio_path"], "rb").read()
    full = client.get(f"/clips/{row['clip_id']}/audio")
    assert full.status_code == 200 and full.content == data
    assert full.headers["content-type"] == "audio/wav" and full.headers["accept-ranges"] == "bytes"
    part = client.get(f"/clips/{row['clip_id']}/audio", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == data[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    tail = client.get(f"/clips/{row['clip_id']}/audio", headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == data[-500:]
    beyond = client.get(
        f"/clips/{row['clip_id']}/audio", headers={"Range": f"bytes={len(data) + 10}-"}
    )
    assert beyond.status_code == 416
    head = client.head(f"/clips/{row['clip_id']}/audio")
    assert (
        head.status_code == 200
        and head.content == b""
        and int(head.headers["content-length"]) == len(data)
    )
    download = client.get(f"/clips/{row['clip_id']}/audio", params={"download": 1})
    assert download.headers["content-disposition"].startswith("attachment")


def test_segment_audio_is_a_wav_of_the_segment_with_ranges(client, web_index):
    segment_id, source_id = web_index.segment_ids[1], web_index.source_ids[1]
    source = web_index.manifest.set_index("clip_id").loc[source_id]
    expected, sr = load_audio(source["audio_path"])
    response = client.get(f"/clips/{segment_id}/audio")
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    wave, got_sr = sf.read(io.BytesIO(response.content), dtype="float32")
    assert got_sr == sr and len(wave) == len(expected)
    assert np.abs(wave - expected).max() < 2e-4  # 16-bit rounding of the same samples
    data = response.content
    part = client.get(f"/clips/{segment_id}/audio", headers={"Range": "bytes=0-43"})
    assert part.status_code == 206 and part.content == data[:44] and part.content[:4] == b"RIFF"
    assert part.headers["content-range"] == f"bytes 0-43/{len(data)}"
    rest = client.get(
        f"/clips/{segment_id}/audio",
        headers={"Range": "bytes=44-", "If-Range": part.headers["etag"]},
    )
    assert rest.status_code == 206 and part.content + rest.content == data
    stale = client.get(
        f"/clips/{segment_id}/audio", headers={"Range": "bytes=44-", "If-Range": '"old"'}
    )
    assert stale.status_code == 200 and stale.content == data
    head = client.head(f"/clips/{segment_id}/audio")
    assert (
        head.status_code == 200
        and head.content == b""
        and int(head.headers["content-length"]) == len(data)
    )
    assert (
        client.get(f"/clips/{segment_id}/audio", headers={"Range": "bytes=0-1,5-9"}).status_code
        == 200
    )
    assert (
        client.get(
            f"/clips/{segment_id}/audio", headers={"Range": f"bytes={len(data)}-"}
        ).status_code
        == 416
    )


def test_more_like_this(client, searcher, web_index):
    segment_id, source_id = web_index.segment_ids[0], web_index.source_ids[0]
    body = client.get(f"/clips/{segment_id}/similar", params={"k": 4}).json()
    ids = [r["clip_id"] for r in body["similar"]]
    assert segment_id not in ids and len(ids) == 4
    # the segment holds the same samples as its source clip: the closest clip there is
    assert ids[0] == source_id and body["similar"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    similar, captions = searcher.similar_to_clip(segment_id, 4)
    assert ids == [r.clip_id for r in similar]
    assert [c["caption"] for c in body["captions"]] == [c for c, _ in captions]
    other_drama = (
        web_index.manifest.set_index("clip_id").loc[source_id, "drama_id"] == "drama-a"
        and "drama-b"
        or "drama-a"
    )
    filtered = client.get(
        f"/clips/{segment_id}/similar", params={"k": 4, "drama": other_drama}
    ).json()
    assert source_id not in [r["clip_id"] for r in filtered["similar"]]
    assert all(r["drama"] == other_drama for r in filtered["similar"])


def _wav_bytes(path):
    return open(path, "rb").read()


def test_audio_upload_finds_the_clip_and_its_descriptions(client, web_index, tmp_path):
    row = web_index.manifest.iloc[7]
    body = client.post(
        "/search/audio",
        params={"k": 3},
        files={"file": ("query.wav", _wav_bytes(row["audio_path"]), "audio/wav")},
    ).json()
    assert body["source"] == "query.wav" and body["similar"][0]["clip_id"] == row["clip_id"]
    assert body["similar"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert len({c["caption"] for c in body["captions"]}) == len(body["captions"]) == 3
    # an mp3 (decoded by ffmpeg), sent as octet-stream with its file name, and filters
    mp3 = tmp_path / "q.mp3"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", row["audio_path"], str(mp3)], check=True
    )
    gender = "male" if row["gender"] == "female" else "female"
    body = client.post(
        "/search/audio",
        params={"k": 3, "gender": gender},
        files={"file": ("q.mp3", mp3.read_bytes(), "application/octet-stream")},
    ).json()
    assert len(body["similar"]) == 3 and all(
        r["attributes"]["gender"] == gender for r in body["similar"]
    )


def test_audio_upload_refusals(client, web_index, tmp_path):
    wav = _wav_bytes(web_index.manifest.iloc[0]["audio_path"])
    assert "unsupported upload type 'text/plain'" in _error(
        client.post("/search/audio", files={"file": ("a.txt", b"hello", "text/plain")}), 415
    )
    assert "empty" in _error(
        client.post("/search/audio", files={"file": ("a.wav", b"", "audio/wav")}), 400
    )
    assert "cannot decode broken.wav" in _error(
        client.post(
            "/search/audio", files={"file": ("broken.wav", b"RIFF" + b"\x00" * 400, "audio/wav")}
        ),
        422,
    )
    assert "cannot decode noise.ogg" in _error(
        client.post(
            "/search/audio", files={"file": ("noise.ogg", np.random.bytes(5000), "audio/ogg")}
        ),
        422,
    )
    _error(client.post("/search/audio"), 422)
    assert "k:" in _error(
        client.post("/search/audio", params={"k": 0}, files={"file": ("a.wav", wav, "audio/wav")}),
        422,
    )


def test_upload_size_and_duration_limits(web_index):
    limits = Limits(max_upload_bytes=50_000, max_upload_seconds=1.0)
    app = create_app(searcher=None, index_dir=web_index.index_dir, limits=limits)
    long_wav = _wav_bytes(web_index.long_file)  # several seconds, > 50 kB
    with TestClient(app) as client:
        assert "larger than the limit" in _error(
            client.post("/search/audio", files={"file": ("long.wav", long_wav, "audio/wav")}), 413
        )

        def chunks():  # no Content-Length: counted as it arrives
            body = (
                b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.wav"\r\n'
                b"Content-Type: audio/wav\r\n\r\n" + long_wav + b"\r\n--b--\r\n"
            )
            for i in range(0, len(body), 8192):
                yield body[i : i + 8192]

        chunked = client.post(
            "/search/audio",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert "larger than the limit" in _error(chunked, 413)
        short = web_index.manifest.iloc[0]["audio_path"]
        wave, sr = load_audio(short)
        buffer = io.BytesIO()
        sf.write(buffer, wave[: int(1.5 * sr)], sr, format="WAV", subtype="PCM_16")
        assert "the limit is 1 s" in _error(
            client.post(
                "/search/audio", files={"file": ("mid.wav", buffer.getvalue(), "audio/wav")}
            ),
            422,
        )
