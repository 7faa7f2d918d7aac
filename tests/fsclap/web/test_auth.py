"""Token auth beyond loopback: header, query parameter, cookie; ``fsclap serve`` refuses an open bind."""

import pytest
from fastapi.testclient import TestClient

from fsclap.cli import main as cli
from fsclap.errors import FsclapError
from fsclap.web import check_bind, create_app, is_loopback

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def client(web_index):
    with TestClient(create_app(web_index.index_dir, token=TOKEN)) as c:
        yield c


def test_every_path_but_health_needs_the_token(client, web_index):
    clip = web_index.manifest.iloc[0]["clip_id"]
    assert client.get("/health").status_code == 200
    for path in (
        "/search?q=a+voice",
        "/version",
        "/facets",
        f"/clips/{clip}",
        f"/clips/{clip}/audio",
        "/openapi.json",
        "/static/app.js",
    ):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in response.json()["error"]
    assert (
        client.get(
            "/search", params={"q": "a voice"}, headers={"Authorization": "Bearer wrong"}
        ).status_code
        == 401
    )
    assert client.get("/search", params={"q": "a voice", "token": "wrong"}).status_code == 401
    upload = client.post("/search/audio", files={"file": ("a.wav", b"RIFF", "audio/wav")})
    assert upload.status_code == 401


def test_bearer_header_query_token_and_cookie(web_index):
    clip = web_index.manifest.iloc[0]["clip_id"]
    with TestClient(create_app(web_index.index_dir, token=TOKEN)) as client:
        assert (
            client.get("/version", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        )
        assert (
            "set-cookie"
            not in client.get("/version", headers={"Authorization": f"Bearer {TOKEN}"}).headers
        )
        # the page sets the cookie and sends the browser on without the token in its address
        page = client.get("/", params={"q": "a sad voice", "token": TOKEN}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/?q=a+sad+voice"
        cookie = page.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
        assert "Style search" in client.get(page.headers["location"]).text
        client.cookies.clear()
        api = client.get("/facets", params={"token": TOKEN})  # API calls are answered directly
        assert api.status_code == 200 and "set-cookie" in api.headers
        # the browser now plays audio and runs searches with the cookie alone
        assert client.get(f"/clips/{clip}/audio").status_code == 200
        assert client.get("/", params={"q": "a voice", "fragment": 1}).status_code == 200
        client.cookies.clear()
        assert client.get(f"/clips/{clip}/audio").status_code == 401


def test_the_page_asks_for_the_token(client):
    response = client.get("/", headers={"Accept": "text/html"})
    assert (
        response.status_code == 401
        and 'name="token"' in response.text
        and "<label" in response.text
    )


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("192.168.1.4", False),
        ("::", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_check_bind():
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", TOKEN)
    with pytest.raises(FsclapError, match="refusing to serve on 0.0.0.0 without a token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(FsclapError, match="too short"):
        check_bind("127.0.0.1", "abc")


def test_serve_refuses_a_public_host_without_a_token(tmp_path, capsys, monkeypatch):
    assert cli(["serve", "--index", str(tmp_path / "ix"), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: refusing to serve on 0.0.0.0 without a token") and "\n" not in err
    monkeypatch.setenv(
        "FSCLAP_SERVE_TOKEN", TOKEN
    )  # the token from the environment passes the check
    assert cli(["serve", "--index", str(tmp_path / "ix"), "--host", "0.0.0.0"]) == 2
    assert "no index at" in capsys.readouterr().err
