"""The simulated gateway's HTTP side: the real API's paths, auth and status codes on loopback.

It behaves like a token-era IQ Gateway: ``/info`` is open; every other path wants
``Authorization: Bearer <jwt>`` or the ``sessionId`` cookie that ``GET /auth/check_jwt`` hands
out for a valid token; without them it answers 401, and unknown paths 404.

It speaks plain HTTP where a real gateway speaks HTTPS with a self-signed certificate: making a
certificate needs tooling (``cryptography`` or an ``openssl`` binary) that is not among the
runtime dependencies, and on loopback TLS would prove nothing the client's own tests do not.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import jwt

from envoy_exporter.demo.render import ROUTES, SERIAL, info_xml
from envoy_exporter.demo.simulator import Plant

log = logging.getLogger(__name__)

TOKEN_LIFETIME_S = 365 * 86_400
UNAUTHORIZED = b'{"status":401,"error":"","info":"Authentication required"}'
NOT_FOUND = b'{"error":"404 - Not Found"}'


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class DemoGateway:
    """A simulated gateway serving one ``Plant`` on ``host:port`` (0 = any free port)."""

    serial = SERIAL

    def __init__(self, plant: Plant, host: str = "127.0.0.1", port: int = 0) -> None:
        self.plant = plant
        # Real gateways verify Enphase's signature, which clients cannot check either; a random
        # HS256 key gives the same: only tokens this gateway issued are accepted
        self._key = secrets.token_bytes(32)
        self.token = self._issue_token()
        self._sessions: set[str] = set()
        self._lock = threading.Lock()
        self._httpd = _HTTPServer((host, port), self)
        # A short poll keeps stop() quick; shutdown waits for the serving loop to look up
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="demo-gateway", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}"

    def start(self) -> DemoGateway:
        self._thread.start()
        log.info("demo gateway %s listening on %s", self.serial, self.url)
        return self

    def stop(self) -> None:
        # shutdown() waits for serve_forever to notice, so only ask a server that was started
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> DemoGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- auth ----------------------------------------------------------------------------------

    def _issue_token(self) -> str:
        now = int(time.time())
        claims = {
            "aud": self.serial,
            "iss": "Entrez",
            "enphaseUser": "owner",
            "exp": now + TOKEN_LIFETIME_S,
            "iat": now,
            "jti": secrets.token_hex(8),
            "username": "demo@example.invalid",
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def _token_valid(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or not token:
            return False
        try:
            jwt.decode(token, self._key, algorithms=["HS256"], audience=self.serial)
        except jwt.InvalidTokenError:
            return False
        return True

    def _session_valid(self, cookie_header: str) -> bool:
        cookies = SimpleCookie()
        try:
            cookies.load(cookie_header)
        except CookieError:
            return False
        morsel = cookies.get("sessionId")
        with self._lock:
            return morsel is not None and morsel.value in self._sessions

    def _check_jwt(self, authorization: str) -> Response:
        """``/auth/check_jwt``: a valid bearer token buys a session cookie."""
        if not self._token_valid(authorization):
            return Response(401, "application/json", UNAUTHORIZED)
        session = secrets.token_hex(16)
        with self._lock:
            self._sessions.add(session)
        return Response(
            200,
            "text/html",
            b"<!DOCTYPE html><h2>Valid token.</h2>",
            {"Set-Cookie": f"sessionId={session}; HttpOnly; Path=/"},
        )

    # ---- requests ------------------------------------------------------------------------------

    def handle(self, target: str, authorization: str, cookie: str) -> Response:
        """Answer one GET of ``target`` (path and query)."""
        parts = urlsplit(target)
        if parts.path in ("/info", "/info.xml"):
            return Response(200, "text/xml", info_xml(time.time()))
        if parts.path == "/auth/check_jwt":
            return self._check_jwt(authorization)
        if not (self._token_valid(authorization) or self._session_valid(cookie)):
            return Response(401, "application/json", UNAUTHORIZED)
        # An exact path-and-query route first (/production.json?details=1), then the bare path
        render = ROUTES.get(f"{parts.path}?{parts.query}") or ROUTES.get(parts.path)
        if render is None:
            return Response(404, "application/json", NOT_FOUND)
        body = json.dumps(render(self.plant.observe())).encode()
        return Response(200, "application/json", body)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], gateway: DemoGateway) -> None:
        self.gateway = gateway
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the exporter's transport expects
    # Headers and body leave in separate writes: without this, Nagle's algorithm holds the body
    # until the client's delayed ACK, 40 ms per response on a kept-alive connection
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        response = self.server.gateway.handle(
            self.path, self.headers.get("Authorization", ""), self.headers.get("Cookie", "")
        )
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        # Request lines carry no credentials (those travel in headers); keep them at debug
        log.debug("demo gateway: " + format, *args)
