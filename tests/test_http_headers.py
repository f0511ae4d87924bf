"""Header blocks read without the email package's parser read exactly as http.client reads them:
gateway answers (``gateway.net.answer.parse_headers`` through the connections' response class)
and scrape requests (the web server's ``parse_request``) alike, within the same bounds."""

from __future__ import annotations

import http.client
import io
import socket
import threading

import pytest
from standin import StandIn, answer

from envoy_exporter.gateway.net import http as bounded
from envoy_exporter.gateway.net.answer import _Answer, parse_headers
from envoy_exporter.gateway.net.deadline import Deadline, _Watchdog
from envoy_exporter.gateway.net.http import bounded_session
from envoy_exporter.gateway.net.tls import tls_context
from envoy_exporter.web.server import _Handler

BLOCKS = [
    b"Server: BaseHTTP/0.6 Python/3.11\r\nDate: Mon, 07 Dec 2026 09:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: 1234\r\n\r\n",
    b"Set-Cookie: sessionId=a; Path=/\r\nSet-Cookie: other=b\r\n\r\n",  # repeated fields
    b"A:\r\nB:   spaced  \r\nC:\tx\r\n\r\n",  # empty value, padding kept on the right
    b"Content-Length: 1\n\n",  # bare line feeds
    b"Content-Length: 1\r\n",  # the block cut short by the end of the stream
    b"\r\n",
    b"",
    b"X-Latin: caf\xe9\r\n\r\n",
    # Blocks the email package reads its own way: they go to it.
    b"A: 1\r\n folded\r\nB: 2\r\n\r\n",
    b"From someone\r\nA: 1\r\n\r\n",
    b"No colon here\r\nA: 1\r\n\r\n",
    b":empty name\r\nA: 1\r\n\r\n",
    b"A B: 1\r\n\r\n",
    b"A: 1\rB: 2\r\n\r\n",
]


def _read(parse, block: bytes):
    message = parse(io.BytesIO(block))
    names = ["content-length", "Set-Cookie", "SET-COOKIE", "a", "x-latin", "missing"]
    looked_up = [
        (message.get(name), message.get(name, "-"), message[name], message.get_all(name), name in message)
        for name in names
    ]
    return (
        message.items(),
        message.keys(),
        message.values(),
        looked_up,
        message.get_all("missing", []),
        [type(d) for d in message.defects],
        message.get_payload() or None,
    )


@pytest.mark.parametrize("block", BLOCKS, ids=repr)
def test_a_header_block_reads_as_the_stdlib_reads_it(block):
    assert _read(parse_headers, block) == _read(http.client.parse_headers, block)


@pytest.mark.parametrize("block", BLOCKS, ids=repr)
def test_a_header_block_changed_after_it_was_read_reads_as_the_stdlibs(block):
    ours, stdlib = parse_headers(io.BytesIO(block)), http.client.parse_headers(io.BytesIO(block))
    for message in (ours, stdlib):
        message.get("a")  # looked up before the changes too
        message["X-New"] = "1"
        if "set-cookie" in message:
            message.replace_header("Set-Cookie", "replaced=1")
        del message["content-length"]
        message["A"] = "added"
    assert _read(lambda _: ours, block) == _read(lambda _: stdlib, block)


@pytest.mark.parametrize(
    "block",
    [b"A: " + b"x" * 70000 + b"\r\n\r\n", b"".join(b"H%d: v\r\n" % n for n in range(100)) + b"\r\n"],
    ids=["a line too long", "too many fields"],
)
def test_a_header_block_is_bounded_as_the_stdlib_bounds_it(block):
    with pytest.raises(http.client.HTTPException) as stdlib:
        http.client.parse_headers(io.BytesIO(block))
    with pytest.raises(http.client.HTTPException) as ours:
        parse_headers(io.BytesIO(block))
    assert type(ours.value) is type(stdlib.value)


class _Socket:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self._data)


ANSWERS = [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\nX: y\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html></html>",
    b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm="enphaseenergy.com", qop="auth"\r\n'
    b"Connection: close\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
]


@pytest.mark.parametrize("raw", ANSWERS, ids=lambda raw: raw.split(b"\r\n", 1)[0].decode())
def test_a_gateway_answer_begins_as_the_stdlib_begins_it(raw):
    def begun(cls):
        response = cls(_Socket(raw), method="GET")
        response.begin()
        fields = ("status", "reason", "version", "chunked", "length", "will_close")
        return {f: getattr(response, f) for f in fields}, response.msg.items(), response.read()

    assert begun(_Answer) == begun(http.client.HTTPResponse)


def test_the_gateway_connections_and_the_web_server_read_headers_so():
    assert bounded._WatchedHTTPSConnection.response_class is _Answer
    assert bounded._WatchedHTTPConnection.response_class is _Answer
    assert _Answer.begin.__globals__["parse_headers"] is parse_headers
    assert _Handler.parse_request.__globals__["http"].client.parse_headers is parse_headers
    # ... and nothing else of the process does.
    assert http.client.parse_headers is not parse_headers
    assert http.client.HTTPResponse.begin.__globals__["parse_headers"] is http.client.parse_headers


@pytest.mark.e2e
def test_a_session_alternating_between_origins_and_closed_keeps_answering():
    with StandIn(answer(b"one", headers={"X-Gateway": "1"})) as one, StandIn(answer(b"two")) as two:
        session = bounded_session(tls_context(False))
        bodies = []
        for gateway in (one, two, one, one, two):
            bodies.append(session.get(f"http://{gateway.host}/info", timeout=5).content)
        response = session.get(f"http://{one.host}/info", timeout=5)
        session.close()
        bodies.append(session.get(f"http://{two.host}/info", timeout=5).content)
        session.close()
    assert bodies == [b"one", b"two", b"one", b"one", b"two", b"two"]
    assert response.headers["x-gateway"] == "1"
    assert (len(one.requests), len(two.requests)) == (4, 3)


class _CountingCondition(threading.Condition):
    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


def test_the_watchdog_wakes_for_requests_still_running_not_for_each_one_over():
    watchdog = _Watchdog()
    watchdog._cond = _CountingCondition()
    for _ in range(30):  # a request every 10 ms, each answered at once, as nearly every one is
        deadline = Deadline(0.2)
        watchdog.add(deadline)
        deadline.__exit__(None, None, None)
        threading.Event().wait(0.01)
    running = Deadline(0.4)
    left, right = socket.socketpair()
    with left, right:
        watchdog.add(running)
        running._sockets.append(left)
        threading.Event().wait(0.7)
        assert running.expired  # the one still running is cut off at its time
        assert left.recv(1) == b""  # shut down
    assert watchdog._cond.waits <= 10  # not one per request
