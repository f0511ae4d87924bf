"""HTTP to one gateway: one keep-alive session, one request at a time, every request counted.

The gateway is a small embedded web server: it copes badly with parallel requests, serves a
self-signed certificate (from firmware 7), and some old firmware answers with redirects to
``https://localhost``. So requests are serialised, TLS follows ``settings.tls`` (one shared
context per setting, see ``net.tls``), every answer is bounded in size and time, and
redirects are reported, never followed.

A host given without a scheme is tried over https, then over plain http, but plain http is only
ever a fallback for a gateway that has never answered over https (old firmware has no https):

- once the gateway answered over https, every later request goes over https;
- while on the plain-http fallback, https is tried again every ``HTTPS_RETRY_S``;
- a token (or the session cookie that check_jwt gives) never travels over plain http unless the
  user wrote ``http://`` in ``host``: such requests are refused, not sent.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from requests.cookies import get_cookie_header
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity, get_auth_from_url

from envoy_exporter.config.settings import UNPROVEN, GatewaySettings
from envoy_exporter.gateway.endpoints import INFO, max_bytes
from envoy_exporter.gateway.net.errors import TransportError, failure_code, failure_outcome, failure_reason
from envoy_exporter.gateway.net.http import bounded_session
from envoy_exporter.gateway.net.tls import tls_context, trust_nothing
from envoy_exporter.snapshot.outcome import Outcome, http_outcome

if TYPE_CHECKING:
    from envoy_exporter.gateway.auth.scheme import Auth

log = logging.getLogger(__name__)

# How long a bare host stays on the plain-http fallback before https is tried again.
HTTPS_RETRY_S = 300.0


@dataclass(frozen=True)
class GatewayResponse:
    status: int
    body: bytes
    headers: Mapping[str, str]


class _Unreachable(Exception):
    """No HTTP answer at all from one base URL (refused, TLS failure, connect timeout)."""

    def __init__(self, outcome: Outcome, cause: str) -> None:
        super().__init__(cause)
        self.outcome = outcome


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


class Transport:
    """Sends GETs to one gateway.

    ``timeout`` bounds each attempt as a whole (connect, headers, body); a 401 costs at most one
    retry, after ``auth.on_unauthorized``.
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
        tls = settings.tls
        pinned = tls.fingerprint is not None and tls.fingerprint != UNPROVEN
        verifies = tls.verify or tls.ca_file is not None or pinned
        # Who asks for verification wants https: a certificate failure must not end up on plain http.
        self._candidates = list(base_urls(settings.host, plain_fallback=not verifies))
        self._base: str | None = self._candidates[0] if len(self._candidates) == 1 else None
        self._fallback_since: float | None = None  # when the plain-http fallback was (re)chosen
        self._lock = threading.Lock()
        try:
            context = tls_context(tls.verify, None if tls.ca_file is None else str(tls.ca_file))
        except (OSError, ssl.SSLError) as exc:
            # The file was checked at start-up; now it is gone or broken. Trust nothing rather
            # than anything: every https request fails until it is fixed.
            log.error("%s: cannot load tls.ca_file %s: %s", settings.label, tls.ca_file, exc)
            context = trust_nothing()
        # The gateway is on the LAN: no proxy from the environment, no ~/.netrc credentials, and
        # no REQUESTS_CA_BUNDLE; what is trusted is the context's business alone.
        self._session = bounded_session(context, tls.server_name, fingerprint=tls.fingerprint)
        self._adapter = self._session.get_adapter("https://")  # mounted for http:// too
        self._headers = self._session.headers  # copied into each request, never changed
        for header in self._headers.items():
            check_header_validity(header)
        self._urls: dict[str, tuple[str, Any]] = {}  # prepared once per path: a gateway has a dozen
        # The Cookie header per URL, for the jar's content in ``_cookie_jar_state``.
        self._cookie_headers: dict[str, str | None] = {}
        self._cookie_jar_state: tuple[str, ...] = ()

    @property
    def base_url(self) -> str | None:
        """The base URL that answered last, or None while none has."""
        return self._base

    def url(self, path: str) -> str:
        """Where a request for ``path`` goes (the first tried, while no base URL answered), for
        the words of a failure."""
        return (self._base or self._candidates[0]) + path

    def get(self, endpoint_key: str, path: str, timeout: float | None = None) -> GatewayResponse:
        """GET ``path``; a 2xx answer, else ``TransportError``."""
        timeout = self._settings.timeout if timeout is None else timeout
        with self._lock:
            # Set per request under the lock: one request at a time, check_jwt's included.
            self._adapter.max_body = max_bytes(endpoint_key)
            base, response = self._send(endpoint_key, path, timeout)
            if response.status == 401 and self._auth.on_unauthorized(self._session, base):
                base, response = self._send(endpoint_key, path, timeout)
        outcome = http_outcome(response.status)
        if outcome is not Outcome.OK:
            raise TransportError(
                outcome, f"the gateway answered HTTP {response.status}", status=response.status
            )
        return response

    def close(self) -> None:
        self._session.close()

    def _send(self, endpoint_key: str, path: str, timeout: float) -> tuple[str, GatewayResponse]:
        """One request, on the remembered base URL or, while none is known, on each in turn."""
        if self._base is not None and self._fallback_expired():
            self._base = None  # give https another chance
        if self._base is not None:
            base = self._base
            try:
                return base, self._attempt(base, endpoint_key, path, timeout)
            except _Unreachable as exc:
                if len(self._candidates) > 1:
                    self._base = None  # next time, https first again
                raise TransportError(exc.outcome, str(exc)) from None
        # The last failure's words, not the exception: kept in a local of this frame, which its
        # traceback holds, it would be a reference cycle.
        outcome, reason = Outcome.UNREACHABLE, "no base URL"
        for base in self._candidates:
            try:
                response = self._attempt(base, endpoint_key, path, timeout)
            except _Unreachable as exc:
                outcome, reason = exc.outcome, str(exc)
                continue
            self._settle(base)
            return base, response
        raise TransportError(outcome, reason)

    def _settle(self, base: str) -> None:
        """Remember the base URL that answered; an https answer ends plain http for good."""
        self._base = base
        if len(self._candidates) == 1:
            return
        if base.startswith("https://"):
            self._candidates = [base]
            log.info(
                "%s: the gateway answers over https; plain http is no longer tried", self._settings.label
            )
        else:
            if self._fallback_since is None:
                log.warning(
                    "%s: no answer over https, using plain http (write http:// in host to make this "
                    "the choice; no token is sent over plain http otherwise)",
                    self._settings.label,
                )
            self._fallback_since = self._clock()

    def _fallback_expired(self) -> bool:
        since = self._fallback_since
        return (
            self._plain_fallback(self._base) and since is not None and self._clock() - since >= HTTPS_RETRY_S
        )

    def _plain_fallback(self, base: str | None) -> bool:
        """Plain http that the user did not ask for."""
        return base is not None and base.startswith("http://") and len(self._candidates) > 1

    def _attempt(self, base: str, endpoint_key: str, path: str, timeout: float) -> GatewayResponse:
        plain_fallback = self._plain_fallback(base)
        if plain_fallback:
            self._guard_plain(endpoint_key)
        elif endpoint_key != INFO.key and base == self._base:
            self._auth.refresh(self._session, base)
        url = base + path
        started = self._clock()
        try:
            response = self._session.send(
                self._prepare(url, self._auth.prepare(endpoint_key)),
                timeout=timeout,
                allow_redirects=False,
                # No proxy, as the session would resolve it (it trusts no environment), without
                # parsing the URL once more on every request.
                proxies={},
            )
            body = response.content
        except (OSError, ValueError) as exc:
            self._record(endpoint_key, failure_code(exc))
            reason = failure_reason(exc, timeout)
            log.debug("GET %s failed after %.3f s: %s", url, self._clock() - started, reason)
            unreachable, outcome = _unreachable(exc), failure_outcome(exc)
            _forget_frames(exc)
            if unreachable:
                raise _Unreachable(outcome, reason) from None
            raise TransportError(outcome, reason) from None
        self._record(endpoint_key, str(response.status_code))
        if log.isEnabledFor(logging.DEBUG):  # the words cost more than the check, on every request
            log.debug(
                "GET %s -> %d in %.3f s (credentials: %s)",
                url,
                response.status_code,
                self._clock() - started,
                _credentials_sent(response.request.headers),
            )
        return GatewayResponse(response.status_code, body, response.headers)

    def _prepare(self, url: str, credentials: dict[str, Any]) -> requests.PreparedRequest:
        """The request ``Session.request`` would build, without what costs on every request and
        never changes for a gateway: the merging of session defaults and environment settings
        (a copy of the cookie jar, seven merge_setting calls with typing-protocol checks; see
        scripts/bench_transport.py), the parsing of a URL it has prepared before, the validation
        of the session's own headers, and the cookie policy's walk of a jar that did not change
        (``_cookie_header``).
        ``credentials``: ``Auth.prepare``'s ``auth=``/``headers=``."""
        prepared = requests.PreparedRequest()
        prepared.method = "GET"
        prepared.url, url_auth = self._urls.get(url) or self._prepare_url(url)
        prepared.headers = CaseInsensitiveDict()
        prepared.headers._store.update(self._headers._store)  # a copy without a __setitem__ per header
        for name, value in credentials.get("headers", {}).items():
            check_header_validity((name, value))
            prepared.headers[name] = value
        prepared._cookies = self._session.cookies
        if len(prepared._cookies):
            cookie = self._cookie_header(prepared)
            if cookie is not None:
                prepared.headers["Cookie"] = cookie
        auth = credentials.get("auth") or url_auth
        if auth:
            prepared.prepare_auth(auth, url)
        return prepared

    def _cookie_header(self, prepared: requests.PreparedRequest) -> str | None:
        """The Cookie header ``prepare_cookies`` would give the request, kept per URL while no
        cookie of the jar changes in any attribute (``repr`` shows them all): the cookie policy's
        walk of the jar cost a token gateway's request about 45 µs, more than the rest of its
        preparation. A cookie with an expiry date is judged afresh on every request."""
        jar = prepared._cookies
        if any(cookie.expires is not None for cookie in jar):
            return get_cookie_header(jar, prepared)
        state = tuple(repr(cookie) for cookie in jar)
        if state != self._cookie_jar_state:
            self._cookie_jar_state = state
            self._cookie_headers = {}
        url = prepared.url or ""
        if url not in self._cookie_headers:
            self._cookie_headers[url] = get_cookie_header(jar, prepared)
        return self._cookie_headers[url]

    def _prepare_url(self, url: str) -> tuple[str, Any]:
        """``url`` as requests prepares it, and the credentials written in it (if any)."""
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        url_auth = get_auth_from_url(prepared.url)
        # Nearly always the URL as it came: that string is kept, not an equal copy.
        as_sent = url if prepared.url == url else prepared.url
        found = self._urls[url] = (as_sent, url_auth if any(url_auth) else None)
        return found

    def _guard_plain(self, endpoint_key: str) -> None:
        """Before a request on the plain-http fallback: no token, no session cookie."""
        # Cookies learnt over https are kept for https, as if the gateway had marked them Secure.
        for cookie in self._session.cookies:
            cookie.secure = True
        if endpoint_key != INFO.key and self._auth.bearer:
            raise TransportError(
                Outcome.WITHHELD,
                "the gateway answers over plain http only, and the token is not sent over plain "
                "http (write http:// in host to allow it)",
            )


def _forget_frames(exc: BaseException) -> None:
    """Empty the finished frames of ``exc`` and the exceptions it was raised from of their
    locals. urllib3 keeps the exception of a failed connection in a local of a frame of its own
    traceback: a reference cycle at every request to a gateway that is off, which only the cycle
    collector frees, and which the freezer (``freezer``) would keep for good."""
    pending, seen = [exc], set()
    while pending:
        each = pending.pop()
        if id(each) in seen:
            continue
        seen.add(id(each))
        traceback.clear_frames(each.__traceback__)  # the frame still running is left alone
        pending += [e for e in (each.__cause__, each.__context__) if e is not None]


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
