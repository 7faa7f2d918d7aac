"""The page works without JavaScript (server-rendered forms and links); its script fetches the same
results as a fragment."""

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from fsclap.web import create_app


@pytest.fixture(scope="module")
def client(web_index):
    with TestClient(create_app(web_index.index_dir)) as c:
        yield c


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(html, name):
    parser = _Collect()
    parser.feed(html)
    return [attrs for tag, attrs in parser.tags if tag == name]


def test_empty_page_has_labelled_search_and_filters_from_the_index(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    labels = {a.get("for") for a in _tags(html, "label")}
    inputs = _tags(html, "input") + _tags(html, "select")
    assert all(
        i["id"] in labels for i in inputs if i.get("type") not in ("hidden",)
    )  # every control labelled
    selects = {s["name"] for s in _tags(html, "select")}
    assert selects == {"gender", "pitch", "speed", "energy", "emotion", "language", "drama", "k"}
    assert '<option value="drama-b"' in html and '<option value="zh"' in html
    assert 'aria-live="polite"' in html and 'role="search"' in html
    assert "Type a description to start" in html
    assert (
        client.get("/static/app.js").status_code == 200
        and client.get("/static/style.css").status_code == 200
    )


def test_search_renders_results_with_players(client, web_index):
    response = client.get(
        "/", params={"q": "a sad woman speaking slowly", "k": 6, "gender": "female"}
    )
    assert response.status_code == 200
    html = response.text
    audios = _tags(html, "audio")
    assert len(audios) == 6 and all(
        a["preload"] == "none" and a["src"].endswith("/audio") for a in audios
    )
    assert "6 clips for “a sad woman speaking slowly”" in html
    female = set(web_index.manifest.loc[web_index.manifest["gender"] == "female", "clip_id"])
    shown = re.findall(r'data-clip="([^"]+)"', html)
    assert len(shown) == 6 and set(shown) <= female
    assert f"Filtered to {len(female)} of {len(web_index.manifest)} clips" in html
    assert '<option value="female" selected>' in html
    more = [a["href"] for a in _tags(html, "a") if a.get("class") == "more-like"]
    assert len(more) == 6 and all("like=" in h and "gender=female" in h for h in more)
    assert "Median F0" in html and "Hz" in html


def test_fragment_more_like_this_and_upload(client, web_index):
    fragment = client.get("/", params={"q": "an angry man", "fragment": 1}).text
    assert (
        "<html" not in fragment
        and 'id="summary"' in fragment
        and len(_tags(fragment, "audio")) == 12
    )
    segment = web_index.segment_ids[2]
    like = client.get("/", params={"like": segment, "k": 6}).text
    assert "6 clips that sound like clip " + segment in like
    assert re.findall(r'data-clip="([^"]+)"', like)[:2] == [
        segment,
        web_index.source_ids[2],
    ]  # source card, then top hit
    assert "Descriptions that fit it best" in like
    row = web_index.manifest.iloc[4]
    upload = client.post(
        "/",
        data={"k": "6"},
        files={"file": ("mine.wav", open(row["audio_path"], "rb").read(), "audio/wav")},
    )
    assert upload.status_code == 200 and "that sound like your file mine.wav" in upload.text
    assert re.findall(r'data-clip="([^"]+)"', upload.text)[0] == row["clip_id"]


@pytest.mark.parametrize(
    "params, status, message",
    [
        ({"q": "x" * 1200}, 422, "the limit is 1000"),
        ({"like": "nope"}, 404, "no clip &#39;nope&#39;"),
        (
            {"q": "a voice", "colour": "red", "language": "fr"},
            200,
            "No clip satisfies these filters",
        ),
    ],
)
def test_page_errors_are_shown_not_raised(client, params, status, message):
    response = client.get("/", params=params)
    assert response.status_code == status and message in response.text
    if status != 200:
        assert 'role="alert"' in response.text


def test_page_upload_without_a_file(client):
    response = client.post("/", data={"q": "ignored"})
    assert response.status_code == 400 and "choose an audio file" in response.text
