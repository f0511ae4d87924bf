"""The exporter's own HTTP server as scrapers use it: keep-alive, HEAD, hang-ups, its flags."""

from __future__ import annotations

import http.client
import logging
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from exporter_fakes import FakeClient, samples, value

from envoy_exporter.config.settings import GatewaySettings
from envoy_exporter.fleet.registry import Fleet
from envoy_exporter.web import server as web
from envoy_exporter.web.server import ExporterServer, check_telemetry_path, make_server

pytestmark = pytest.mark.e2e


def start(*clients: FakeClient, **options) -> ExporterServer:
    by_name = {c.name: c for c in clients}
    settings = [GatewaySettings(name=c.name, host=f"http://{c.name}.example") for c in clients]
    fleet = Fleet(settings, lambda s: by_name[s.name])
    server = make_server("127.0.0.1:0", fleet, **options)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    server.ready.set()
    return server


@pytest.fixture
def server() -> Iterator[ExporterServer]:
    served = start(FakeClient("home"), FakeClient("barn"))
    yield served
    served.shutdown()
    served.server_close()


def connect(server: ExporterServer) -> http.client.HTTPConnection:
    host, port = server.server_address[:2]
    return http.client.HTTPConnection(host, port, timeout=10)


def test_one_connection_serves_many_scrapes(server):
    conn = connect(server)
    try:
        conn.request("GET", "/-/healthy")
        sock = conn.sock
        assert conn.getresponse().read() == b"OK\n"
        for _ in range(3):
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200 and response.version == 11
            assert response.getheader("Connection") != "close"
            assert value(samples(body.decode()), "enphase_up", gateway="home") == 1
        conn.request("GET", "/probe?target=barn")
        response = conn.getresponse()
        assert response.status == 200 and b'gateway="barn"' in response.read()
        assert conn.sock is sock  # the same TCP connection all along
    finally:
        conn.close()


def test_an_error_answer_keeps_the_connection(server):
    conn = connect(server)
    try:
        conn.request("GET", "/nowhere")
        sock = conn.sock
        response = conn.getresponse()
        assert response.status == 404
        response.read()
        conn.request("GET", "/-/healthy")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"OK\n")
        assert conn.sock is sock
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path", ["/", "/metrics", "/probe?target=home", "/-/healthy", "/-/ready", "/capture"]
)
def test_head_is_answered_like_get_without_a_body(server, path):
    conn = connect(server)
    try:
        conn.request("GET", path)
        got = conn.getresponse()
        body = got.read()
        conn.request("HEAD", path)
        head = conn.getresponse()
        assert head.status == got.status == 200
        assert head.getheader("Content-Type") == got.getheader("Content-Type")
        # The same page, give or take a changing figure (durations, ages)
        assert abs(int(head.getheader("Content-Length")) - len(body)) < 50 and len(body) > 0
        assert head.read() == b""
        conn.request("GET", "/-/healthy")  # and the connection is still in step
        assert conn.getresponse().read() == b"OK\n"
    finally:
        conn.close()


def test_head_of_an_unknown_path_is_404(server):
    conn = connect(server)
    try:
        conn.request("HEAD", "/nowhere")
        assert conn.getresponse().status == 404
    finally:
        conn.close()


def test_a_post_body_is_read_so_the_connection_stays_in_step(server):
    conn = connect(server)
    try:
        conn.request("POST", "/metrics", body=b"x" * 5000)
        response = conn.getresponse()
        assert response.status == 405 and response.getheader("Allow") == "GET, HEAD"
        response.read()
        conn.request("GET", "/-/healthy")
        assert conn.getresponse().read() == b"OK\n"
    finally:
        conn.close()


def test_an_idle_keep_alive_connection_is_dropped(monkeypatch):
    monkeypatch.setattr(web._Handler, "timeout", 0.5)
    served = start(FakeClient("home"))
    try:
        with socket.create_connection(served.server_address[:2], timeout=10) as sock:
            sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            started = time.monotonic()
            received = b""
            while chunk := sock.recv(4096):  # the answer, then the server closes the idle link
                received += chunk
            assert received.startswith(b"HTTP/1.1 200") and received.endswith(b"OK\n")
            assert time.monotonic() - started < 5
    finally:
        served.shutdown()
        served.server_close()


def _reset(sock: socket.socket) -> None:
    # SO_LINGER 0: close sends RST, as a scraper killed mid-scrape or a timed-out proxy does.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _half_close(sock: socket.socket) -> None:
    sock.shutdown(socket.SHUT_WR)
    time.sleep(0.01)
    _reset(sock)


def test_a_reset_in_the_middle_of_a_request_line_is_a_debug_line_without_traceback(caplog):
    # Beside the reset between requests (below): one while the server reads the request line.
    served = start(FakeClient("home"))
    caplog.set_level(logging.DEBUG, logger="envoy_exporter")
    try:
        sock = socket.create_connection(served.server_address[:2], timeout=10)
        sock.sendall(b"GET /-/hea")
        time.sleep(0.2)  # the server is inside its read of the request line
        _reset(sock)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("went away" in r.getMessage() for r in caplog.records):
            time.sleep(0.05)
    finally:
        served.shutdown()
        served.server_close()
    assert not any(r.exc_info for r in caplog.records)
    (gone,) = [r for r in caplog.records if "went away" in r.getMessage()]
    assert gone.levelno == logging.DEBUG and "Connection reset by peer" in gone.getMessage()


@pytest.mark.parametrize("hang_up", [_reset, _half_close])
def test_scrapers_that_hang_up_are_a_debug_line_not_an_error(caplog, hang_up):
    slow = FakeClient("home", hold=0.3)  # the answer is written after the scraper has gone
    served = start(slow)
    caplog.set_level(logging.DEBUG, logger="envoy_exporter")
    try:
        for _ in range(5):
            sock = socket.create_connection(served.server_address[:2], timeout=10)
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            hang_up(sock)
        # Every collection answers into a closed connection; on a loaded machine that takes a while.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("went away" in r.getMessage() for r in caplog.records):
            time.sleep(0.05)
        status = http.client.HTTPConnection(*served.server_address[:2], timeout=10)
        status.request("GET", "/-/healthy")
        assert status.getresponse().status == 200
        status.close()
    finally:
        served.shutdown()
        served.server_close()
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == []
    assert not any(r.exc_info for r in caplog.records)
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert gone and all(r.levelno == logging.DEBUG for r in gone)


def test_a_keep_alive_scraper_that_resets_between_requests_is_a_debug_line_without_traceback(caplog):
    # The server waits for the next request on a kept-alive connection; a reset there came out
    # of the request line's read as a traceback (in the hang-up test above, now and then).
    served = start(FakeClient("home"))
    caplog.set_level(logging.DEBUG, logger="envoy_exporter")
    try:
        for _ in range(3):
            sock = socket.create_connection(served.server_address[:2], timeout=10)
            sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            _reset(sock)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum("went away" in r.getMessage() for r in caplog.records) < 3:
            time.sleep(0.05)
    finally:
        served.shutdown()
        served.server_close()
    assert not any(r.exc_info for r in caplog.records)
    assert sum("went away" in r.getMessage() for r in caplog.records) == 3


def test_telemetry_path():
    served = start(FakeClient("home"), telemetry_path="/export")
    try:
        conn = connect(served)
        conn.request("GET", "/export")
        response = conn.getresponse()
        assert response.status == 200 and b'enphase_up{gateway="home"} 1.0' in response.read()
        conn.request("GET", "/metrics")
        assert conn.getresponse().status == 404
        conn.close()
    finally:
        served.shutdown()
        served.server_close()


@pytest.mark.parametrize("path", ["metrics", "/probe", "/-/reload", "/a?b"])
def test_telemetry_path_rejects(path):
    with pytest.raises(ValueError):
        check_telemetry_path(path)


def test_process_metrics_on_metrics_only(server):
    conn = connect(server)
    try:
        conn.request("GET", "/metrics")
        got = samples(conn.getresponse().read().decode())
        assert value(got, "enphase_up", gateway="home") == 1
        assert value(got, "process_resident_memory_bytes") > 1_000_000
        assert value(got, "process_open_fds") >= 3
        assert value(got, "process_start_time_seconds") > 1_600_000_000
        conn.request("GET", "/probe?target=home")
        assert b"process_" not in conn.getresponse().read()
    finally:
        conn.close()


def test_reload_route_calls_the_reloader():
    calls = []

    def reload() -> None:
        calls.append(1)
        if len(calls) > 1:
            raise ValueError("gateways[0].host: required")

    served = start(FakeClient("home"), reload=reload)
    try:
        conn = connect(served)
        conn.request("POST", "/-/reload")
        response = conn.getresponse()
        assert (response.status, response.read(), len(calls)) == (200, b"OK\n", 1)
        conn.request("POST", "/-/reload")
        response = conn.getresponse()
        assert response.status == 500 and b"gateways[0].host" in response.read()
        conn.request("GET", "/-/reload")
        response = conn.getresponse()
        assert response.status == 405 and response.getheader("Allow") == "POST, PUT"
        assert len(calls) == 2
        conn.close()
    finally:
        served.shutdown()
        served.server_close()


def _exporter_on_inherited_socket(sock: socket.socket, listen_pid: str | None) -> subprocess.Popen:
    """Starts the exporter as systemd would: the listening socket as fd 3, LISTEN_FDS=1, and
    LISTEN_PID its own PID (exec keeps it), or ``listen_pid`` when given."""
    fd = sock.fileno()
    launcher = (
        "import os, sys\n"
        f"os.dup2({fd}, 3)\n"
        f"os.close({fd})\n"
        f"os.environ['LISTEN_PID'] = {listen_pid!r} or str(os.getpid())\n"
        "os.environ['LISTEN_FDS'] = '1'\n"
        "args = ['-m', 'envoy_exporter', '--demo', '--web.systemd-socket']\n"
        "os.execv(sys.executable, [sys.executable, *args])\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", launcher],
        pass_fds=(fd,),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_systemd_socket_activation():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        host, port = sock.getsockname()
        proc = _exporter_on_inherited_socket(sock, None)
    try:
        deadline = time.monotonic() + 30
        while True:
            conn = http.client.HTTPConnection(host, port, timeout=10)
            try:
                conn.request("GET", "/probe?target=demo")
                response = conn.getresponse()
                if response.status == 200:
                    assert b'enphase_up{gateway="demo"} 1.0' in response.read()
                    break
            except OSError:
                pass
            finally:
                conn.close()
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert f"listening on http://127.0.0.1:{port}" in proc.stdout.read()


def test_systemd_socket_for_another_process_is_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        proc = _exporter_on_inherited_socket(sock, "1")
    try:
        assert proc.wait(timeout=30) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "LISTEN_PID" in proc.stdout.read()
