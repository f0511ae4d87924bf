"""HTTP to one gateway: one keep-alive session, one request at a time, every request counted.

The gateway is a small embedded web server: it copes badly with parallel requests, serves a
self-signed certificate (from firmware 7), and some old firmware answers with redirects to
``https://localhost``. So requests are serialised, TLS verification follows ``settings.tls`` on
every single request, and redirects are reported, never followed.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import requests
from urllib3.exceptions import InsecureRequestWarning

from envoy_exporter.gateway.endpoints import INFO
from envoy_exporter.gateway.errors import TransportError, failure_code
from envoy_exporter.settings import GatewaySettings, TLSSettings

if TYPE_CHECKING:
    from envoy_exporter.gateway.auth import Auth

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


@dataclass(frozen=True)
class GatewayResponse:
    status: int
    body: bytes
    headers: Mapping[str, str]


class _Unreachable(Exception):
    """No HTTP answer at all from one base URL (refused, TLS failure, connect timeout)."""

    def __init__(self, code: str, cause: str) -> None:
        super().__init__(cause)
        self.code = code


def base_urls(host: str, plain_fallback: bool = True) -> tuple[str, ...]:
    """The base URLs to try for a configured host, best first.

    A URL with a scheme is taken as it is; an IPv4 address, a host name or an ``[IPv6]`` address,
    each with an optional ``:port``, tries https and then (with ``plain_fallback``) http; a bare
    IPv6 address is bracketed.
    """
    host = host.strip().rstrip("/")
    if "://" in host:
        return (host,)
    if host.count(":") >= 2 and not host.startswith("["):
        host = f"[{host}]"
    if not plain_fallback:
        return (f"https://{host}",)
    return (f"https://{host}", f"http://{host}")


def gateway_verify(tls: TLSSettings) -> bool | str:
    """The ``verify=`` argument for the gateway: a pinned CA file, else the verify flag."""
    if tls.ca_file is not None:
        return str(tls.ca_file)
    return tls.verify


class Transport:
    """Sends GETs to one gateway.

    ``timeout`` bounds each attempt (connect, every read, and the whole body); a 401 costs at most
    one retry, after ``auth.on_unauthorized``.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        auth: Auth,
        record: Callable[[str, str], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._auth = auth
        self._record = record
        self._clock = clock
        self._verify = gateway_verify(settings.tls)
        # Who asks for verification wants https: a certificate failure must not end up on plain http.
        self._candidates = list(base_urls(settings.host, plain_fallback=self._verify is False))
        self._base: str | None = self._candidates[0] if len(self._candidates) == 1 else None
        self._lock = threading.Lock()
        self._session = requests.Session()
        # The gateway is on the LAN: no proxy from the environment, no ~/.netrc credentials, and no
        # REQUESTS_CA_BUNDLE; verification is decided per request from settings.tls.
        self._session.trust_env = False
        if self._verify is False:
            # Not verifying the gateway's self-signed certificate is the documented default; a
            # warning per request would drown the log.
            warnings.filterwarnings("ignore", category=InsecureRequestWarning)

    @property
    def base_url(self) -> str | None:
        """The base URL that answered last, or None while none has."""
        return self._base

    def get(self, endpoint_key: str, path: str, timeout: float | None = None) -> GatewayResponse:
        """GET ``path``; a 2xx answer, else ``TransportError``."""
        timeout = self._settings.timeout if timeout is None else timeout
        with self._lock:
            base, response = self._send(endpoint_key, path, timeout)
            if response.status == 401 and self._auth.on_unauthorized(self._session, base, self._verify):
                base, response = self._send(endpoint_key, path, timeout)
        if not 200 <= response.status < 300:
            raise TransportError(str(response.status))
        return response

    def close(self) -> None:
        self._session.close()

    def _send(self, endpoint_key: str, path: str, timeout: float) -> tuple[str, GatewayResponse]:
        """One request, on the remembered base URL or, while none is known, on each in turn."""
        if self._base is not None:
            base = self._base
            try:
                return base, self._attempt(base, endpoint_key, path, timeout)
            except _Unreachable as exc:
                if len(self._candidates) > 1:
                    # Perhaps the gateway changed scheme (firmware 7 brought https): next time
                    # start with the other one.
                    self._base = None
                    self._candidates.remove(base)
                    self._candidates.append(base)
                raise TransportError(exc.code, str(exc)) from None
        failure = TransportError("error", "no base URL")
        for base in list(self._candidates):
            try:
                response = self._attempt(base, endpoint_key, path, timeout)
            except _Unreachable as exc:
                failure = TransportError(exc.code, str(exc))
                continue
            self._base = base
            return base, response
        raise failure

    def _attempt(self, base: str, endpoint_key: str, path: str, timeout: float) -> GatewayResponse:
        if endpoint_key != INFO.key and base == self._base:
            self._auth.refresh(self._session, base, self._verify)
        url = base + path
        started = self._clock()
        try:
            with self._session.get(
                url,
                verify=self._verify,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
                **self._auth.prepare(self._session, endpoint_key),
            ) as response:
                body = self._read(response, started + timeout)
        except (OSError, ValueError) as exc:
            code = failure_code(exc)
            self._record(endpoint_key, code)
            log.debug("GET %s failed after %.3f s: %s", url, self._clock() - started, type(exc).__name__)
            if _unreachable(exc):
                raise _Unreachable(code, type(exc).__name__) from None
            raise TransportError(code, type(exc).__name__) from None
        self._record(endpoint_key, str(response.status_code))
        log.debug(
            "GET %s -> %d in %.3f s (credentials: %s)",
            url,
            response.status_code,
            self._clock() - started,
            _credentials_sent(response.request.headers),
        )
        return GatewayResponse(response.status_code, body, response.headers)

    def _read(self, response: requests.Response, deadline: float) -> bytes:
        """The body, but not past the deadline: a gateway that trickles must not hold a scrape."""
        chunks = []
        for chunk in response.iter_content(CHUNK):
            chunks.append(chunk)
            if self._clock() > deadline:
                raise requests.ReadTimeout("the body took longer than the timeout")
        return b"".join(chunks)


def _unreachable(exc: BaseException) -> bool:
    """No connection at all (worth trying the other scheme), as opposed to a slow or bad answer."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    return isinstance(exc, requests.ConnectionError) and failure_code(exc) == "error"


def _credentials_sent(headers: Mapping[str, str]) -> str:
    """What kind of credentials went out, for the debug log; never their value."""
    kinds = []
    authorization = headers.get("Authorization", "")
    if authorization:
        kinds.append(authorization.split(" ", 1)[0].lower() + " ***")
    if headers.get("Cookie"):
        kinds.append("cookie ***")
    return ", ".join(kinds) or "none"
