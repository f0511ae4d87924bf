"""Bounded HTTP over requests: whatever a gateway or Enlighten sends costs at most ``MAX_BODY``
bytes of memory and ``timeout`` seconds, and TLS is set up once per verification setting.

``bounded_session()`` is a ``requests.Session`` whose adapter

- reads every body itself, before anyone sees the response, refusing it past ``MAX_BODY`` bytes,
  raw or decoded (a 0.5 MB gzip body can decode to 500 MB), so ``response.content`` is always
  bounded, also where requests reads a body on its own (digest challenges, redirects);
- bounds the whole request by its ``timeout``: connect, headers, any number of ``100 Continue``
  interim answers and the body. requests' timeout bounds each socket read only, so a body
  trickled at a byte a second, or an endless stream of interim answers, would hold the request
  for as long as the peer likes. A watchdog thread shuts the socket down when the time is up;
- takes its TLS from one shared ``ssl.SSLContext`` per verification setting (``tls.tls_context``).
  urllib3 would build a context per connection and load the system CA bundle into each (822 kB
  and 22 ms of CPU every time). The per-request ``verify=`` of requests is not consulted, so
  ``REQUESTS_CA_BUNDLE`` (psf/requests#3829) cannot change what a session trusts;
- writes a plain GET on the pool's kept-alive connection itself and reads its answer itself
  (``direct``): the same bytes on the wire, the same
  ``requests.Response`` (its ``raw`` a stand-in with nothing left to read, not urllib3's
  answer), the same exceptions as requests over urllib3, for less CPU. Anything else (another
  method, a body, a proxy, an odd header block) goes through urllib3.

The parts live beside it: ``tls`` (the shared contexts), ``deadline`` (the whole-request
deadlines and their watchdog), ``answer`` (a header block read for less), ``body`` (the bound)
and ``direct`` (the GET driven on the pool's connection).
"""

from __future__ import annotations

import queue
import socket
import ssl
import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.utils import get_encoding_from_headers
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import (
    LocationValueError,
    ReadTimeoutError,
)

from envoy_exporter.gateway.net.answer import _Answer
from envoy_exporter.gateway.net.body import ACCEPT_ENCODING, MAX_BODY, _bounded_body, read_body
from envoy_exporter.gateway.net.deadline import Deadline
from envoy_exporter.gateway.net.direct import (
    _NO_RETRIES,
    _as_urllib3,
    _ask,
    _body_reader,
    _headers,
    _request_head,
    _requests_error,
    _Spent,
    _target,
)
from envoy_exporter.gateway.net.errors import DeadlineExceeded


class _Watched:
    """A urllib3 connection whose sockets are put under the current request's deadline."""

    sock: socket.socket | None
    response_class = _Answer

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        Deadline.watch(sock)  # the TCP socket; during the TLS handshake it is the one read
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:  # a kept-alive connection, or the TLS socket of a new one
            Deadline.watch(self.sock)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _Idle:
    """Where a pool keeps its idle connections. urllib3's is a ``queue.LifoQueue``: a lock and
    three conditions, each with a waiters' deque, some 2.5 kB per gateway. A bounded session's
    pools never wait for a connection (``block`` is False: an empty pool makes a new one), so a
    list under a lock holds them just as well."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._items: list[Any] = []
        self._lock = threading.Lock()

    def get(self, block: bool = False, timeout: float | None = None) -> Any:
        with self._lock:
            if self._items:
                return self._items.pop()
        raise queue.Empty

    def put(self, item: Any, block: bool = False) -> None:
        with self._lock:
            if len(self._items) < self._maxsize:
                self._items.append(item)
                return
        raise queue.Full

    def qsize(self) -> int:
        return len(self._items)


class _HostLine:
    """The ``Host`` line of every request to a pool's origin, as http.client writes it for the
    pool's connections (brackets around IPv6, the port unless it is the scheme's), worked out
    once by http.client itself on a connection that is never opened."""

    ConnectionCls: Any
    host: str
    port: int | None
    _host_line: bytes | None = None

    def host_line(self) -> bytes | None:
        line = self._host_line
        if line is None:
            scratch = self.ConnectionCls(host=self.host, port=self.port)
            try:
                scratch.putrequest("GET", "/", skip_accept_encoding=True)
            except (ValueError, UnicodeError):
                return None  # urllib3 refuses it the same way on the request
            line = self._host_line = scratch._buffer[1]
        return line


class _Pool(_HostLine, HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection
    QueueCls = _Idle


class _TLSPool(_HostLine, HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection
    QueueCls = _Idle

    def _validate_conn(self, conn: Any) -> None:
        """urllib3's, without its InsecureRequestWarning on every request to an unverified
        host: what a gateway's certificate is checked against is its TLS context's business,
        set per gateway (``tls``); the self-signed one accepted by default is a documented
        choice, not an oversight. (A warnings filter would silence every library of the process.)"""
        HTTPConnectionPool._validate_conn(self, conn)
        if conn.is_closed:
            conn.connect()


class BoundedAdapter(HTTPAdapter):
    """See the module docstring. ``server_name`` is the name the certificate is checked against
    and sent as SNI, instead of the URL's host. ``fingerprint``: the SHA-256 the peer's
    certificate must have, checked on every connection before anything is sent on it."""

    def __init__(
        self,
        context: ssl.SSLContext,
        server_name: str | None = None,
        max_body: int = MAX_BODY,
        fingerprint: str | None = None,
    ) -> None:
        self._context = context
        self._server_name = server_name
        self._fingerprint = fingerprint
        self.max_body = max_body
        self._last_pool: tuple[str, Any] | None = None  # (origin, its connection pool)
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)
        self.max_retries = _NO_RETRIES  # one for all: requests makes one per adapter

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        pool_kwargs["ssl_context"] = self._context
        if self._server_name:
            pool_kwargs["server_hostname"] = self._server_name
        if self._fingerprint:
            pool_kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}
        self._last_pool = None

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: Any, proxies: Any = None, cert: Any = None
    ) -> Any:
        """The connection pool of the request's origin. A gateway's requests all go to one
        origin, so its pool is kept at hand: requests would parse the URL twice and look the
        pool up by a normalised key on every request. Only this method asks the pool manager,
        which holds one pool (``pool_connections=1``), so the one kept is always the one it holds."""
        if proxies:
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        origin = _origin(request.url or "")
        last = self._last_pool
        if last is not None and last[0] == origin:
            return last[1]
        pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
        self._last_pool = (origin, pool)
        return pool

    def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
        """The path of the URL: without a proxy that is all requests would send, after parsing
        the URL twice more to find there is none."""
        return super().request_url(request, proxies) if proxies else request.path_url

    def close(self) -> None:
        self._last_pool = None
        super().close()

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, _ = super().build_connection_pool_key_attributes(request, verify, cert)
        return host_params, {}  # TLS comes from the pool manager's shared context only

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """requests would point every pool at a CA bundle (loaded into the shared context on
        each connection); the context already says what is trusted."""

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        if timeout is None:
            raise ValueError("a bounded session needs a timeout on every request")
        seconds = float(sum(timeout) if isinstance(timeout, tuple) else timeout)
        with Deadline(seconds) as deadline:
            try:
                response = self._send(request, deadline, verify, cert, proxies)
            except (OSError, Urllib3Error, ValueError) as exc:
                # A connect timeout stays one: it tells the transport to try the other scheme.
                if deadline.expired and not isinstance(exc, requests.ConnectTimeout):
                    raise DeadlineExceeded(
                        f"the whole request took longer than {seconds:g} s", request=request
                    ) from None
                if isinstance(exc, requests.RequestException):
                    raise
                if isinstance(exc, ReadTimeoutError):
                    raise requests.ReadTimeout(exc, request=request) from None
                raise requests.ConnectionError(exc, request=request) from None
            if deadline.expired:
                # Cut off by the watchdog, the answer may look complete and be truncated.
                response.close()
                raise DeadlineExceeded(f"the whole request took longer than {seconds:g} s", request=request)
            return response

    def _send(
        self, request: requests.PreparedRequest, deadline: Deadline, verify: Any, cert: Any, proxies: Any
    ) -> requests.Response:
        remaining = max(deadline.remaining(), 0.001)
        if proxies or request.method != "GET" or request.body is not None:
            return self._send_through_urllib3(request, remaining, verify, cert, proxies)
        try:
            pool = self.get_connection_with_tls_context(request, verify, proxies, cert)
        except LocationValueError as exc:
            raise requests.exceptions.InvalidURL(exc, request=request) from None
        host_line = pool.host_line()
        target = _target(request.path_url)
        head = None if host_line is None or target is None else _request_head(request, target[1], host_line)
        if head is None or target is None:
            return self._send_through_urllib3(request, remaining, verify, cert, proxies)
        try:
            conn, answer = _ask(pool, head, remaining, target[0])
            headers = _headers(answer)
            raw = None if headers is not None else _as_urllib3(pool, conn, answer, target[0])
        except Exception as exc:
            raise _requests_error(exc, request) from None
        if raw is not None:
            return self._read_through_urllib3(request, raw)
        try:
            body = _bounded_body(_body_reader(pool, answer), headers, self.max_body)
        except BaseException:
            answer.close()
            conn.close()
            pool._put_conn(conn)
            raise
        pool._put_conn(conn)
        return self._response(request, answer, headers, body)

    def _response(
        self, request: requests.PreparedRequest, answer: _Answer, headers: Any, body: bytes
    ) -> requests.Response:
        """What ``build_response`` makes of the answer, its body read."""
        response = requests.Response()
        response.status_code = answer.status
        response.headers = headers
        response.encoding = get_encoding_from_headers(headers)
        sets_cookies = "Set-Cookie" in headers or "Set-Cookie2" in headers
        response.raw = _Spent(answer if sets_cookies else None)
        response.reason = answer.reason
        response.url = request.url.decode("utf-8") if isinstance(request.url, bytes) else request.url
        if sets_cookies:
            extract_cookies_to_jar(response.cookies, request, response.raw)
        response.request = request
        response.connection = self
        response._content = body
        response._content_consumed = True
        return response

    def _send_through_urllib3(
        self, request: requests.PreparedRequest, remaining: float, verify: Any, cert: Any, proxies: Any
    ) -> requests.Response:
        response = super().send(request, True, (remaining, remaining), verify, cert, proxies)
        return self._read_through_urllib3(request, response.raw, response)

    def _read_through_urllib3(
        self, request: requests.PreparedRequest, raw: Any, response: requests.Response | None = None
    ) -> requests.Response:
        if response is None:
            response = self.build_response(request, raw)
        conn = raw.connection  # urllib3 lets go of it once the body is read
        try:
            body = read_body(raw, self.max_body)
        except BaseException:
            response.close()
            raise
        _forget_answer(conn)
        raw.release_conn()
        response._content = body
        response._content_consumed = True
        return response


def _forget_answer(conn: Any) -> None:
    """http.client keeps a connection's last response, its header block and all, until the next
    request on it (a gateway's, a minute later); once read to the end it is of no more use."""
    answer = getattr(conn, "_HTTPConnection__response", None)
    if answer is not None and answer.isclosed():
        conn._HTTPConnection__response = None


def _origin(url: str) -> str:
    """``scheme://authority`` of a URL, as written: the same string means the same pool."""
    scheme, _, rest = url.partition("://")
    return scheme + "://" + rest.split("/", 1)[0]


def bounded_session(
    context: ssl.SSLContext,
    server_name: str | None = None,
    max_body: int = MAX_BODY,
    fingerprint: str | None = None,
) -> requests.Session:
    """A session for one peer: bounded answers and requests, TLS from ``context``, nothing from
    the environment (no proxy, no ~/.netrc, no REQUESTS_CA_BUNDLE). Every request needs a
    ``timeout``; ``response.content`` is already read."""
    session = requests.Session()
    session.trust_env = False
    session.headers["Accept-Encoding"] = ACCEPT_ENCODING
    adapter = BoundedAdapter(context, server_name, max_body, fingerprint)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
