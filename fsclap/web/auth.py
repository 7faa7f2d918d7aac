"""Access control: open on loopback, a bearer token anywhere else.

A client proves it holds the token with ``Authorization: Bearer <token>``, ``?token=<token>`` or the
cookie the server sets after either (so that ``<audio src>`` and the page's own requests, which cannot
carry headers, keep working). ``/health`` stays open for load balancers and supervisors.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from urllib.parse import parse_qs, parse_qsl, urlencode

from fsclap.errors import FsclapError

COOKIE = "fsclap_token"
OPEN_PATHS = frozenset({"/health"})
TOKEN_ENV = "FSCLAP_SERVE_TOKEN"


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token."""
    if not is_loopback(host) and not token:
        raise FsclapError(
            f"refusing to serve on {host} without a token: set {TOKEN_ENV} or pass --token "
            "(or bind to 127.0.0.1)"
        )
    if token is not None and len(token) < 8:
        raise FsclapError(
            "the serve token is too short: use at least 8 characters (e.g. `openssl rand -hex 16`)"
        )


def _cookie_value(token: str) -> str:
    # the cookie holds a digest, not the token itself
    return hashlib.sha256(f"fsclap-serve:{token}".encode()).hexdigest()


class TokenAuth:
    """ASGI middleware that requires the token on every path but :data:`OPEN_PATHS`."""

    def __init__(self, app, token: str):
        self.app = app
        self.token = token
        self.cookie = _cookie_value(token)

    def _presented(self, scope) -> tuple[bool, bool]:
        """(authorised, came as a query parameter)."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip(), self.token):
            return True, False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if any(hmac.compare_digest(t, self.token) for t in query.get("token", [])):
            return True, True
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and hmac.compare_digest(value, self.cookie):
                return True, False
        return False, False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        ok, from_query = self._presented(scope)
        if not ok:
            return await self._deny(scope, send)
        if not from_query:
            return await self.app(scope, receive, send)
        cookie = (
            b"set-cookie",
            f"{COOKIE}={self.cookie}; Path=/; HttpOnly; SameSite=Strict".encode(),
        )
        if scope["path"] == "/" and scope["method"] == "GET":
            # the page: set the cookie and drop the token from the address bar (and history)
            query = [
                (k, v)
                for k, v in parse_qsl(
                    scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
                )
                if k != "token"
            ]
            location = "/" + (f"?{urlencode(query)}" if query else "")
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [
                        (b"location", location.encode()),
                        cookie,
                        (b"content-length", b"0"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def with_cookie(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), cookie]}
            await send(message)

        await self.app(scope, receive, with_cookie)

    async def _deny(self, scope, send) -> None:
        accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
        if scope["path"] == "/" and "text/html" in accept:
            body = _LOGIN_PAGE.encode()
            ctype = b"text/html; charset=utf-8"
        else:
            body = json.dumps(
                {
                    "error": "missing or wrong token: send 'Authorization: Bearer <token>' "
                    "or add ?token=<token>"
                }
            ).encode()
            ctype = b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", ctype),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="fsclap"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>fsclap style search: token needed</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}
input,button{font:inherit;padding:.4rem .6rem}</style></head>
<body><main><h1>Access token needed</h1>
<p>This server is reachable beyond this machine, so it asks for the token it was started with.</p>
<form method="get" action="/"><label for="token">Token</label><br>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Open</button></form></main></body></html>"""
