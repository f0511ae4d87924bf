"""A gateway's GET goes out and comes back as requests over urllib3 would have it: the same
bytes on the wire, the same response (status, headers, body, cookies), and for every way an
answer can go wrong the same exception, counted and worded the same. Each case is asked twice of
the same loopback stand-in, once on the adapter's own path and once the ordinary way through
urllib3 (what every request took before), and the two must agree; and the guarantees of the
module (kept-alive connection, pinned certificate on every new connection, bounds) hold on it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import pytest
import requests
import standin
from conftest import Recorder, free_port
from standin import StandIn, make_cert, server_context
from test_transport_hostile import NoAuth

from envoy_exporter.config.settings import GatewaySettings, TLSSettings
from envoy_exporter.gateway.net import direct
from envoy_exporter.gateway.net import http as http_module
from envoy_exporter.gateway.net.errors import TransportError, failure_code, failure_outcome, failure_reason
from envoy_exporter.gateway.net.http import bounded_session
from envoy_exporter.gateway.net.tls import tls_context
from envoy_exporter.gateway.net.transport import Transport
from envoy_exporter.snapshot.outcome import Outcome

pytestmark = pytest.mark.e2e

BODY = b'{"wattsNow": 512}'


def raw(*parts: bytes, close: bool = False) -> standin.Script:
    """A script that writes ``parts`` as they are, then closes the connection if asked."""

    def script(conn: standin.Connection, request: standin.Request) -> None:
        for part in parts:
            conn.send(part)
        if close:
            conn.sock.shutdown(socket.SHUT_RDWR)

    return script


def reset(conn: standin.Connection, request: standin.Request) -> None:
    """Close the connection with a reset (linger 0), at once: the stand-in's reader holds the
    socket object, so its descriptor is closed directly."""
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    os.close(conn.sock.detach())


def ok(headers: str, body: bytes = BODY) -> bytes:
    return f"HTTP/1.1 200 OK\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body


def deflated(data: bytes, wbits: int) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


CASES: dict[str, standin.Script] = {
    "plain": raw(ok("Content-Type: application/json\r\n")),
    "chunked": raw(
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n'
    ),
    "http/1.0 until close": raw(b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n<a/>", close=True),
    "connection close": raw(ok("Connection: close\r\n"), close=True),
    "short body": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nten bytes.", close=True),
    "truncated chunks": raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", close=True),
    "bad chunk size": raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", close=True),
    "garbage": raw(b"HELLO THERE\r\n\r\n", close=True),
    "nothing": raw(close=True),
    "reset": reset,
    "http/2 status line": raw(b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", close=True),
    "odd status": raw(b"HTTP/1.1 999 Whatever\r\nContent-Length: 2\r\n\r\n{}"),
    "interim answers": raw(b"HTTP/1.1 100 Continue\r\n\r\n" * 3, ok("")),
    "no content": raw(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"),
    "not modified": raw(b"HTTP/1.1 304 Not Modified\r\n\r\n"),
    "redirect": raw(b"HTTP/1.1 301 Moved\r\nLocation: https://localhost/home\r\nContent-Length: 0\r\n\r\n"),
    "digest challenge": raw(
        b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm="enphaseenergy.com", '
        b'nonce="abc", qop="auth"\r\nContent-Length: 0\r\n\r\n'
    ),
    "gzip": raw(ok("Content-Encoding: gzip\r\n", gzip.compress(BODY))),
    "deflate": raw(ok("Content-Encoding: deflate\r\n", deflated(BODY, 15))),
    "raw deflate": raw(ok("Content-Encoding: deflate\r\n", deflated(BODY, -15))),
    "bad gzip": raw(ok("Content-Encoding: gzip\r\n", b"not gzip at all")),
    "unknown encoding": raw(ok("Content-Encoding: br\r\n")),
    "gzip twice named": raw(ok("Content-Encoding: gzip\r\nContent-Encoding: gzip\r\n", gzip.compress(BODY))),
    "two lengths alike": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}"),
    "two lengths unlike": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
    "length list": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n{}"),
    "length not a number": raw(b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\n{}", close=True),
    "length negative": raw(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}", close=True),
    "length spaced": raw(b"HTTP/1.1 200 OK\r\nContent-Length:  2 \r\n\r\n{}"),
    "chunked and length": raw(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    ),
    "gzip, chunked": raw(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", close=True
    ),
    "chunked, spaced": raw(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked \r\n\r\n2\r\n{}\r\n0\r\n\r\n", close=True
    ),
    "folded header": raw(b"HTTP/1.1 200 OK\r\nX-Note: one\r\n  two\r\nContent-Length: 2\r\n\r\n{}"),
    "line without a name": raw(b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 2\r\n\r\n{}"),
    "header line too long": raw(b"HTTP/1.1 200 OK\r\nX-Long: " + b"x" * 70000 + b"\r\n\r\n", close=True),
    "too many headers": raw(b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 120 + b"\r\n", close=True),
    "names given twice": raw(ok("X-A: 1\r\nx-a: 2\r\nX-B: 3\r\n")),
    "cookies": raw(ok("Set-Cookie: sessionId=s3ss10n; Path=/\r\nSet-Cookie: other=1; Path=/\r\n")),
    "text": raw(ok("Content-Type: text/html\r\n")),
    "oversized": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + bytes(5000)),
    "oversized chunked": raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n" + bytes(5000)),
    "oversized decoded": raw(ok("Content-Encoding: gzip\r\n", gzip.compress(bytes(50000)))),
    "trickled body": standin.trickle_body,
    "trickled headers": standin.trickle_headers,
    "interim answers without end": standin.continue_flood,
}
MAX_BODY = 4096  # the "oversized" cases are over it, every other answer well under it


def through_urllib3(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request the ordinary way, as before the adapter drove its connection itself."""
    monkeypatch.setattr(http_module, "_target", lambda path: None)


def masked(text: str) -> str:
    return re.sub(r"0x[0-9a-f]+", "0x?", text)


def chain(exc: BaseException) -> list[str]:
    """The kinds of exception ``exc`` wraps, in the order failure_reason looks at them."""
    kinds, todo, seen = [], [exc], set()
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        kinds.append(type(item).__name__)
        todo.extend(item.args)
        todo.extend((getattr(item, "reason", None), item.__cause__, item.__context__))
    return kinds


def outcome(ask: Callable[[], requests.Response], timeout: float) -> tuple[Any, ...]:
    try:
        response = ask()
    except Exception as exc:
        words = failure_reason(exc, timeout)
        return ("raised", chain(exc), failure_code(exc), failure_outcome(exc), words, masked(str(exc)))
    return (
        "answered",
        response.status_code,
        response.reason,
        list(response.headers.items()),
        response.content,
        response.encoding,
        sorted(response.cookies.items()),
        response.url,
        response.is_redirect,
        response.next.url if response.next else None,
        response.history,
        response.elapsed.total_seconds() > 0,
    )


def ask_both(
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    context: ssl.SSLContext | None = None,
    timeout: float = 2.0,
    times: int = 1,
    **kwargs: Any,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The outcomes of ``times`` GETs of ``url`` on one session, the adapter's way and the
    ordinary way, and each session's cookies after them."""
    results = []
    for ordinary in (False, True):
        with monkeypatch.context() as patch:
            if ordinary:
                through_urllib3(patch)
            session = bounded_session(context or tls_context(False), max_body=MAX_BODY, **kwargs)
            outcomes = [
                outcome(lambda s=session: s.get(url, timeout=timeout, allow_redirects=False), timeout)
                for _ in range(times)
            ]
            outcomes.append(("session cookies", sorted(session.cookies.items())))
            session.close()
        results.append(outcomes)
    return results[0], results[1]


@pytest.mark.parametrize("case", CASES)
def test_an_answer_comes_back_as_requests_over_urllib3_gives_it(case, monkeypatch):
    cut_off = "trickle" in case or "without end" in case
    with StandIn(CASES[case]) as gateway:
        direct, ordinary = ask_both(
            monkeypatch, f"http://{gateway.host}/info", timeout=0.6 if cut_off else 2.0
        )
    if cut_off:  # where the watchdog's cut finds the request is a matter of timing, on either path
        direct, ordinary = direct[0][2:], ordinary[0][2:]
        assert direct == (
            "timeout",
            Outcome.TIMEOUT,
            "timed out after 0.6 s",
            "the whole request took longer than 0.6 s",
        )
    assert direct == ordinary


def test_the_cases_cover_answers_read_both_ways():
    """Most answers are read by the adapter itself, the odd ones by urllib3 as before."""
    with StandIn(CASES["plain"]) as gateway:
        session = bounded_session(tls_context(False))
        response = session.get(f"http://{gateway.host}/info", timeout=2)
        assert type(response.raw) is direct._Spent
    with StandIn(CASES["folded header"]) as gateway:
        response = session.get(f"http://{gateway.host}/info", timeout=2)
        assert type(response.raw) is not direct._Spent
        session.close()


def test_no_connection_fails_alike(monkeypatch):
    direct, ordinary = ask_both(monkeypatch, f"http://127.0.0.1:{free_port()}/info")
    assert direct == ordinary
    assert direct[0][4] == "connection refused"


def test_a_gateway_that_never_answers_fails_alike(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/info"
        direct, ordinary = ask_both(monkeypatch, url, timeout=0.4)
    assert direct == ordinary
    assert direct[0][2:5] == ("timeout", Outcome.TIMEOUT, "timed out after 0.4 s")


# --------------------------------------------------------------------------------------------
# What goes on the wire


class _Recording:
    """A loopback server that records each request's bytes and answers it with ``BODY``."""

    def __init__(self, family: socket.AddressFamily = socket.AF_INET) -> None:
        self.heads: list[bytes] = []
        self.connections = 0
        self._server = socket.create_server(
            ("::1" if family == socket.AF_INET6 else "127.0.0.1", 0), family=family
        )
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            reader = sock.makefile("rb")
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                self.heads.append(head)
                sock.sendall(ok(""))

    def close(self) -> None:
        self._server.close()


def _ipv6() -> bool:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer eyJhbGciOi.x.y", "Cookie": "sessionId=abc"},
        {"X-Latin": "caf\xe9", "X-Empty": ""},
        {"Accept-Encoding": None},  # a header the request leaves out
        {"User-Agent": None},
    ],
    ids=["session", "credentials", "latin-1", "no accept-encoding", "no user-agent"],
)
def test_the_request_goes_out_byte_for_byte_as_before(host, headers, monkeypatch):
    if host == "[::1]" and not _ipv6():
        pytest.skip("no IPv6 on loopback")
    server = _Recording(socket.AF_INET6 if host == "[::1]" else socket.AF_INET)
    try:
        url = f"http://{host}:{server.port}/production.json?details=1&a b"
        for ordinary in (False, True):
            with monkeypatch.context() as patch:
                if ordinary:
                    through_urllib3(patch)
                with bounded_session(tls_context(False)) as session:
                    assert session.get(url, headers=headers, timeout=2).content == BODY
    finally:
        server.close()
    assert len(server.heads) == 2
    assert server.heads[0] == server.heads[1]


def test_a_header_http_client_would_refuse_is_refused_as_before(monkeypatch):
    server = _Recording()
    try:
        errors = []
        for ordinary in (False, True):
            with monkeypatch.context() as patch:
                if ordinary:
                    through_urllib3(patch)
                with bounded_session(tls_context(False)) as session:
                    request = requests.Request("GET", f"http://127.0.0.1:{server.port}/info").prepare()
                    request.headers["X-Bad"] = "one\r\ntwo"  # past requests' own check
                    with pytest.raises(requests.ConnectionError) as caught:
                        session.send(request, timeout=2)
                    errors.append(masked(str(caught.value)))
    finally:
        server.close()
    assert errors[0] == errors[1] and "Invalid header value" in errors[0]
    assert server.heads == []


# --------------------------------------------------------------------------------------------
# The module's guarantees on the adapter's own path


def test_one_kept_alive_connection_serves_every_request(monkeypatch):
    server = _Recording()
    try:
        transport = Transport(
            GatewaySettings(name="roof", host=f"http://127.0.0.1:{server.port}", timeout=2.0),
            NoAuth(),  # type: ignore[arg-type]
            Recorder(),
        )
        for _ in range(5):
            assert transport.get("info", "/info").body == BODY
        transport.close()
    finally:
        server.close()
    assert (len(server.heads), server.connections) == (5, 1)


def test_a_dropped_kept_alive_connection_is_replaced_as_before(monkeypatch):
    with StandIn(raw(ok(""))) as gateway:
        direct, ordinary = ask_both(monkeypatch, f"http://{gateway.host}/info", times=1)
        for ordinary_way in (False, True):
            with monkeypatch.context() as patch:
                if ordinary_way:
                    through_urllib3(patch)
                session = bounded_session(tls_context(False))
                first = session.get(f"http://{gateway.host}/info", timeout=2)
                gateway.drop()  # a gateway rebooting: every connection closed
                threading.Event().wait(0.1)
                second = session.get(f"http://{gateway.host}/info", timeout=2)
                session.close()
            assert (first.content, second.content) == (BODY, BODY)
    assert direct == ordinary


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("certs")
    return {name: make_cert(directory, name) for name in ("envoy", "other")}


def _fingerprint(cert) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return hashlib.sha256(der).hexdigest()


def test_over_tls_the_connection_is_kept_and_the_pin_checked_on_every_new_one(certs):
    with StandIn(raw(ok("")), tls=server_context(*certs["envoy"])) as gateway:
        settings = GatewaySettings(
            name="roof",
            host=f"https://{gateway.host}",
            timeout=2.0,
            tls=TLSSettings(fingerprint=_fingerprint(certs["envoy"][0])),
        )
        transport = Transport(settings, NoAuth(), Recorder())  # type: ignore[arg-type]
        for _ in range(3):
            assert transport.get("info", "/info").body == BODY
        assert len(gateway._threads) == 2  # the listener's, and one connection's
        gateway.tls = server_context(*certs["other"])  # the same address, another certificate
        gateway.drop()
        threading.Event().wait(0.1)
        with pytest.raises(TransportError) as failure:
            transport.get("info", "/info")
        transport.close()
    assert failure.value.outcome is Outcome.TLS
    assert (
        str(failure.value)
        == "certificate rejected: it is not the one this gateway showed when it was first found"
    )
    assert len(gateway.requests) == 3  # nothing was sent on the connection that failed the pin


@pytest.mark.parametrize("trust", ["pinned to another", "fingerprint of another", "plain http port"])
def test_tls_failures_come_back_as_before(trust, certs, monkeypatch):
    with StandIn(raw(ok("")), tls=server_context(*certs["envoy"])) as gateway:
        kwargs: dict[str, Any] = {}
        context = tls_context(False)
        if trust == "pinned to another":
            context = tls_context(True, str(certs["other"][0]))
            kwargs["server_name"] = "envoy"
        elif trust == "fingerprint of another":
            kwargs["fingerprint"] = _fingerprint(certs["other"][0])
        else:
            gateway.tls = None  # the port speaks plain http only
        direct, ordinary = ask_both(monkeypatch, f"https://{gateway.host}/info", context, **kwargs)
    assert direct == ordinary
    assert direct[0][0] == "raised" and direct[0][3] in (Outcome.TLS, Outcome.UNREACHABLE)


def first_answered_then_trickled(conn: standin.Connection, request: standin.Request) -> None:
    """The first request answered at once, every later one (on the kept-alive connection) trickled."""
    if request.path == "/info":
        raw(ok(""))(conn, request)
    else:
        standin.trickle_body(conn, request)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_deadline_cuts_a_kept_alive_connection_too(scheme, certs):
    with StandIn(first_answered_then_trickled, tls=server_context(*certs["envoy"])) as gateway:
        settings = GatewaySettings(name="roof", host=f"{scheme}://{gateway.host}", timeout=0.6)
        transport = Transport(settings, NoAuth(), Recorder())  # type: ignore[arg-type]
        assert transport.get("info", "/info").body == BODY
        started = time.monotonic()
        with pytest.raises(TransportError) as failure:
            transport.get("production", "/production")
        elapsed = time.monotonic() - started
        transport.close()
    assert (failure.value.outcome, str(failure.value)) == (Outcome.TIMEOUT, "timed out after 0.6 s")
    assert elapsed < 1.5
    assert len(gateway._threads) == 2  # one connection for both


def test_the_deadline_cuts_a_new_tls_connection(certs):
    with StandIn(standin.trickle_body, tls=server_context(*certs["envoy"])) as gateway:
        settings = GatewaySettings(name="roof", host=f"https://{gateway.host}", timeout=0.6)
        transport = Transport(settings, NoAuth(), Recorder())  # type: ignore[arg-type]
        started = time.monotonic()
        with pytest.raises(TransportError) as failure:
            transport.get("info", "/info")
        elapsed = time.monotonic() - started
        transport.close()
    assert (failure.value.outcome, str(failure.value)) == (Outcome.TIMEOUT, "timed out after 0.6 s")
    assert elapsed < 1.5


def test_credentials_are_written_but_kept_nowhere():
    server = _Recording()
    try:
        with bounded_session(tls_context(False)) as session:
            headers = {"Authorization": "Bearer eyJ.short.token", "Cookie": "sessionId=abc"}
            assert (
                session.get(f"http://127.0.0.1:{server.port}/info", headers=headers, timeout=2).content
                == BODY
            )
    finally:
        server.close()
    assert b"Authorization: Bearer eyJ.short.token\r\n" in server.heads[0]
    assert b"Cookie: sessionId=abc\r\n" in server.heads[0]
    kept = [name.lower() for name, _ in direct._fields]
    assert "user-agent" in kept and "authorization" not in kept and "cookie" not in kept
