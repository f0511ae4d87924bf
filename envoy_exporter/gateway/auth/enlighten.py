"""Enlighten and Entrez: the owner's cloud login, and the service that issues gateway tokens.

The owner's cloud password goes here and nowhere else: only over https with the certificate
verified against the system's CAs (plain http only to a loopback host, for tests), never
following a redirect, and every answer bounded in size and time by the same bounded session
the gateways get (``http.bounded_session``). Like the gateways, Enlighten is reached directly:
proxies, ``~/.netrc`` and ``REQUESTS_CA_BUNDLE`` from the environment are not used.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import requests
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from envoy_exporter.config.settings import GatewaySettings
from envoy_exporter.gateway.auth.token import token_claims
from envoy_exporter.gateway.net.errors import ResponseTooLarge, failure_code, failure_reason
from envoy_exporter.gateway.net.http import bounded_session
from envoy_exporter.gateway.net.tls import tls_context

# Enlighten's login takes a few seconds on a good day; a scrape that has to fetch a token waits
# for it, so the bound is the same order as a gateway request. It bounds each exchange whole
# (the login; the token request).
ENLIGHTEN_TIMEOUT_S = 15.0
# The login answer and a token are a few hundred bytes; this leaves room for any error page.
MAX_ANSWER_BYTES = 256 * 1024


class EnlightenError(Exception):
    """Enlighten or Entrez gave no token. The message names the step and is safe to log;
    ``refused`` says Enlighten turned the login down (the account's e-mail or password), as
    opposed to an outage, which says nothing about them."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@lru_cache(maxsize=64)  # the check at every start asks it of every gateway, nearly always for the same URLs
def plain_http_refusal(key: str, url: str) -> str | None:
    """Why ``url`` may not carry the cloud password, or None: plain http is refused, except to a
    loopback host (a stand-in on the same machine, as tests use). The URL is read by urllib3's
    parser, as requests reads it to connect: Python's ``urlsplit`` takes the host of
    ``http://a.example\\@127.0.0.1/`` for loopback, requests connects to a.example."""
    try:
        parts = parse_url(url)
    except LocationParseError:
        return f"{key} is not a URL requests can use"
    scheme, host = (parts.scheme or "").lower(), (parts.host or "").lower()
    if scheme == "https":
        return None
    if scheme == "http" and _loopback(host):
        return None
    return f"{key} must be https (the Enlighten password would travel in clear): {scheme}://{host}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Enlighten:
    """Logs in with the owner's credentials and has Entrez issue a token for one serial."""

    def __init__(
        self,
        settings: GatewaySettings,
        record: Callable[[str, str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._record = record
        self._clock = clock

    def login(self) -> str:
        """A session id for the owner's account; raises ``EnlightenError``."""
        s = self._settings
        form = {"user[email]": s.enlighten_username, "user[password]": str(s.enlighten_password)}
        url = f"{s.enlighten_url.rstrip('/')}/login/login.json"
        return _session_id(self._exchange("enlighten_login", url, data=form))

    def issue_token(self, session_id: str, serial: str) -> str:
        """A new token for ``serial``, issued by Entrez to the session; raises ``EnlightenError``."""
        s = self._settings
        asked = {"session_id": session_id, "serial_num": serial, "username": s.enlighten_username}
        answer = self._exchange("entrez_token", f"{s.entrez_url.rstrip('/')}/tokens", json=asked)
        value = answer.decode("utf-8", "replace").strip()
        if token_claims(value) is None:
            raise EnlightenError("entrez_token: the answer is not a JWT")
        return value

    def _exchange(self, key: str, url: str, **kwargs: Any) -> bytes:
        """One POST, over https (or to loopback), bounded in size and in time as a whole."""
        self._refuse_plain_http()
        with bounded_session(tls_context(True), max_body=MAX_ANSWER_BYTES) as web:
            return self._post(web, key, url, self._clock() + ENLIGHTEN_TIMEOUT_S, **kwargs)

    def _refuse_plain_http(self) -> None:
        s = self._settings
        for key, url in (("enlighten_url", s.enlighten_url), ("entrez_url", s.entrez_url)):
            refusal = plain_http_refusal(key, url)
            if refusal is not None:
                raise EnlightenError(refusal)

    def _post(self, web: requests.Session, key: str, url: str, deadline: float, **kwargs: Any) -> bytes:
        left = deadline - self._clock()
        if left <= 0:
            self._record(key, "timeout")
            raise EnlightenError(f"{key}: timeout")
        try:
            # The session reads the whole answer within the bound and the time left; TLS is
            # always verified (tls_context(True)), whatever the gateway's tls settings say.
            response = web.post(url, timeout=left, allow_redirects=False, **kwargs)
        except ResponseTooLarge as exc:
            self._record(key, "error")
            raise EnlightenError(f"{key}: {exc}") from None
        except (OSError, ValueError) as exc:
            code = failure_code(exc)
            self._record(key, code)
            raise EnlightenError(f"{key}: {failure_reason(exc, left)}") from None
        self._record(key, str(response.status_code))
        if key == "enlighten_login" and response.status_code in (401, 403):
            raise EnlightenError(
                f"Enlighten refused the login of {self._settings.enlighten_username} "
                f"(HTTP {response.status_code}): check enlighten_username and enlighten_password",
                refused=True,
            )
        if response.status_code != 200:
            raise EnlightenError(f"{key}: HTTP {response.status_code}")
        return response.content


def _session_id(login: bytes) -> str:
    try:
        answer = json.loads(login)
    except (ValueError, RecursionError):
        raise EnlightenError("enlighten_login: the answer is not JSON") from None
    session_id = answer.get("session_id") if isinstance(answer, dict) else None
    if not isinstance(session_id, str | int) or isinstance(session_id, bool) or not str(session_id):
        raise EnlightenError("enlighten_login: the answer has no session_id")
    return str(session_id)
