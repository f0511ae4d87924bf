"""The HTTP server on loopback: routes, negotiation, and that nobody can stall a scrape."""

from __future__ import annotations

import email.utils
import gzip
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import pytest
from exporter_fakes import FakeClient, samples, value

from envoy_exporter.collector.exposition import SnapshotCache
from envoy_exporter.config.settings import GatewaySettings
from envoy_exporter.fleet.registry import Fleet
from envoy_exporter.web.server import (
    ExporterServer,
    Response,
    Route,
    _Handler,
    make_server,
    parse_listen_address,
)

pytestmark = pytest.mark.e2e


class Served:
    def __init__(self, server: ExporterServer, clients: dict[str, FakeClient]):
        self.server = server
        self.clients = clients
        self.url = server.url

    def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 10.0):
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()


def serve(*clients: FakeClient) -> Served:
    by_name = {c.name: c for c in clients}
    settings = [GatewaySettings(name=c.name, host=f"http://{c.name}.example") for c in clients]
    fleet = Fleet(settings, lambda s: by_name[s.name])
    server = make_server("127.0.0.1:0", fleet)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    server.ready.set()
    return Served(server, {c.name: c for c in clients})


@pytest.fixture
def web() -> Iterator[Served]:
    served = serve(FakeClient("home", requests={("info", "200"): 2}), FakeClient("barn"))
    yield served
    served.server.shutdown()
    served.server.server_close()


def test_metrics_has_every_gateway_and_the_exporter(web):
    status, headers, body = web.get("/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    got = samples(body.decode())
    assert value(got, "enphase_up", gateway="home") == 1
    assert value(got, "enphase_up", gateway="barn") == 1
    assert value(got, "enphase_gateway_requests_total", gateway="home", endpoint="info", code="200") == 2
    assert any(name == "enphase_exporter_build_info" for name, _ in got)


def test_probe_answers_for_one_gateway(web):
    status, _, body = web.get("/probe?target=barn")
    assert status == 200
    got = samples(body.decode())
    assert {dict(labels).get("gateway") for _, labels in got} == {"barn"}
    assert value(got, "enphase_production_power_watts", gateway="barn", source="meter") == 3000.0
    assert web.clients["home"].calls == 0


def test_probe_matches_the_configured_host(web):
    status, _, body = web.get("/probe?target=http%3A%2F%2Fhome.example")
    assert status == 200
    assert value(samples(body.decode()), "enphase_up", gateway="home") == 1


@pytest.mark.parametrize(
    "query",
    ["", "?target=", "?target=elsewhere", "?target=http%3A%2F%2F203.0.113.9", "?other=home"],
)
def test_probe_refuses_unknown_targets_without_asking_anyone(web, query):
    status, headers, body = web.get("/probe" + query)
    assert status == 400
    assert headers["Content-Type"].startswith("text/plain")
    assert b"target" in body
    assert all(client.calls == 0 for client in web.clients.values())


def test_landing_page_links_everything(web):
    status, headers, body = web.get("/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    page = body.decode()
    for link in ('href="/metrics"', 'href="/probe?target=home"', 'href="/probe?target=barn"'):
        assert link in page
    assert 'href="/-/healthy"' in page and 'href="/-/ready"' in page
    assert all(client.calls == 0 for client in web.clients.values())


def test_health_and_readiness(web):
    assert web.get("/-/healthy")[::2] == (200, b"OK\n")
    assert web.get("/-/ready")[::2] == (200, b"OK\n")
    web.server.ready.clear()
    assert web.get("/-/ready")[0] == 503
    assert web.get("/-/healthy")[0] == 200


def test_unknown_path_is_404(web):
    assert web.get("/metricz")[0] == 404
    assert web.get("/probe/extra")[0] == 404


def test_openmetrics_when_asked(web):
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    status, headers, body = web.get("/metrics", {"Accept": accept})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    assert "# TYPE enphase_gateway_requests counter" in text
    assert 'enphase_gateway_requests_total{gateway="home",endpoint="info",code="200"} 2.0' in text


def test_gzip_when_accepted(web):
    status, headers, body = web.get("/metrics", {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert b"enphase_up" in gzip.decompress(body)
    assert web.get("/metrics")[1]["Content-Encoding"] is None


def test_gzip_is_the_fastest_level(web):
    # Level 1 costs a third of the default level's CPU for about the same size on an
    # exposition. The gzip header's XFL byte says which: 4 is "fastest".
    _, _, body = web.get("/metrics", {"Accept-Encoding": "gzip"})
    assert body[8] == 4


def test_the_answer_is_not_held_back_by_nagles_algorithm(web, monkeypatch):
    # Headers and body are written apart; with Nagle's algorithm the body would wait for the
    # client's delayed ACK of the headers.
    seen: list[int] = []
    setup = _Handler.setup

    def recording_setup(handler) -> None:
        setup(handler)
        seen.append(handler.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(_Handler, "setup", recording_setup)
    assert web.get("/metrics")[0] == 200
    assert seen and all(seen)


def test_an_answer_goes_out_in_one_write(web, monkeypatch):
    # Headers and body together: one send and one packet per answer, not two.
    writes: list[bytes] = []
    setup = _Handler.setup

    def recording_setup(handler) -> None:
        setup(handler)
        write = handler.wfile.write
        handler.wfile.write = lambda data: writes.append(bytes(data)) or write(data)

    monkeypatch.setattr(_Handler, "setup", recording_setup)
    status, _, body = web.get("/probe?target=home")
    assert status == 200 and b"enphase_up" in body
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(body)
    writes.clear()
    request = urllib.request.Request(web.url + "/probe?target=home", method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200 and response.read() == b""
    assert len(writes) == 1 and writes[0].endswith(b"\r\n\r\n")


def test_a_large_answer_is_written_without_a_copy_of_its_body(web, monkeypatch):
    # A fleet's exposition is megabytes: joined to its headers for one write, it would be held
    # twice at the peak. Its body goes out as it is, after the headers.
    big = b"x" * (4 * 1024 * 1024)
    web.server.routes["/big"] = Route(lambda handler: Response(HTTPStatus.OK, big))
    writes: list[bytes] = []
    setup = _Handler.setup

    def recording_setup(handler) -> None:
        setup(handler)
        write = handler.wfile.write
        handler.wfile.write = lambda data: writes.append(data) or write(data)

    monkeypatch.setattr(_Handler, "setup", recording_setup)
    status, headers, body = web.get("/big")
    assert status == 200 and body == big and headers["Content-Length"] == str(len(big))
    assert writes[-1] is big and writes[0].startswith(b"HTTP/1.1 200 OK\r\n")


def test_an_http_0_9_request_gets_its_body(web):
    # A request line without a version is HTTP/0.9: the answer is the body alone, without a
    # status line or headers.
    host, port = web.server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(b"GET /-/healthy\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer == b"OK\n"


def test_every_request_is_told_before_it_is_answered(web):
    # What wakes the freezer: every request on a kept-alive connection, whatever its answer.
    told: list[int] = []
    web.server.on_request = lambda: told.append(len(told))
    host, port = web.server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as connection:
        for path in ("/-/healthy", "/nowhere"):
            connection.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert connection.recv(65536).startswith(b"HTTP/1.1 ")
    assert told == [0, 1]


def test_an_idle_server_sleeps_until_a_connection_or_its_shutdown():
    # No wake-up twice a second to look for a shutdown (socketserver's poll_interval): the
    # shutdown wakes the loop itself. A thread that sleeps is not switched to.
    fleet = Fleet([GatewaySettings(name="home", host="http://home.example")], lambda s: FakeClient("home"))
    server = make_server("127.0.0.1:0", fleet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    assert Served(server, {}).get("/-/healthy")[0] == 200

    def switches() -> int:
        status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
        return int(status.split("voluntary_ctxt_switches:")[1].split()[0])

    time.sleep(0.2)
    idle = switches()
    time.sleep(1.6)
    assert switches() - idle <= 1
    began = time.monotonic()
    server.shutdown()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - began < 0.5
    server.server_close()


def test_a_rendering_kept_for_other_scrapes_goes_on_time_when_the_scrapes_stop():
    served = serve(FakeClient("home"))
    server = served.server
    server.rendered = SnapshotCache(keep=0.3, wake=server._wake)
    try:
        assert served.get("/metrics")[0] == 200
        assert len(server.rendered._entries) == 1
        deadline = time.monotonic() + 5
        while server.rendered._entries and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.rendered._entries  # no scrape came since: the server's loop dropped it
    finally:
        server.shutdown()
        server.server_close()


def test_the_date_header_is_now(web):
    before = time.time()
    dates = [web.get("/-/healthy")[1]["Date"] for _ in range(3)]
    after = time.time()
    for date in dates:
        assert int(before) <= email.utils.parsedate_to_datetime(date).timestamp() <= after


def test_scrape_timeout_header_sets_the_deadline():
    slow = FakeClient("slow", hold=30.0)
    served = serve(slow)
    try:
        started = time.monotonic()
        status, _, body = served.get("/metrics", {"X-Prometheus-Scrape-Timeout-Seconds": "2"})
        elapsed = time.monotonic() - started
        assert status == 200
        assert 2 * 0.9 - 0.5 <= elapsed < 8  # the 1.3 s budget, on a busy machine; not the 30 s hold
        assert value(samples(body.decode()), "enphase_up", gateway="slow") == 0
    finally:
        slow.release.set()
        served.server.shutdown()
        served.server.server_close()


def test_a_huge_scrape_timeout_header_is_clamped(web):
    # 1e300 s would overflow the wait (threading.TIMEOUT_MAX) and report the gateway down.
    status, _, body = web.get("/metrics", {"X-Prometheus-Scrape-Timeout-Seconds": "1e300"})
    assert status == 200
    assert value(samples(body.decode()), "enphase_up", gateway="home") == 1


def test_an_idle_connection_does_not_block_a_scrape(web):
    host, port = web.server.server_address[:2]
    with socket.create_connection((host, port)) as idle:
        idle.sendall(b"GET /metr")  # and then nothing more
        started = time.monotonic()
        status, _, _ = web.get("/metrics", timeout=10)
        assert status == 200
        assert time.monotonic() - started < 5
        with socket.create_connection((host, port)):  # a second silent one, with no bytes at all
            assert web.get("/-/healthy", timeout=5)[0] == 200


def test_a_slow_gateway_does_not_delay_the_others():
    slow = FakeClient("slow", hold=30.0)
    served = serve(slow, FakeClient("fast"))
    try:
        started = time.monotonic()
        status, _, body = served.get("/metrics", {"X-Prometheus-Scrape-Timeout-Seconds": "1"})
        elapsed = time.monotonic() - started
        assert status == 200
        assert elapsed < 6  # the 0.5 s budget and its grace, on a busy machine; not the 30 s hold
        got = samples(body.decode())
        assert value(got, "enphase_up", gateway="fast") == 1
        assert value(got, "enphase_production_power_watts", gateway="fast", source="meter") == 3000.0
        assert value(got, "enphase_up", gateway="slow") == 0
    finally:
        slow.release.set()
        served.server.shutdown()
        served.server.server_close()


def test_a_failing_collector_answers_500_and_the_server_lives_on():
    class Broken(FakeClient):
        def requests(self):
            raise RuntimeError("counter store gone")

    served = serve(Broken("broken"))
    try:
        status, _, body = served.get("/metrics")
        assert status == 500 and body == b"Internal error\n"
        assert served.get("/-/healthy")[0] == 200
    finally:
        served.server.shutdown()
        served.server.server_close()


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        (":9433", ("", 9433)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("localhost:9433", ("localhost", 9433)),
        ("[::1]:9433", ("::1", 9433)),
        ("[::]:0", ("::", 0)),
    ],
)
def test_parse_listen_address(address, parsed):
    assert parse_listen_address(address) == parsed


@pytest.mark.parametrize("address", ["9433", "host:", "host:port", ":70000", "::1:9433"])
def test_parse_listen_address_rejects(address):
    with pytest.raises(ValueError):
        parse_listen_address(address)


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = make_server("[::1]:0", Fleet([], lambda s: FakeClient(s.label)))
    except OSError:
        pytest.skip("IPv6 loopback unavailable")
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        assert server.url.startswith("http://[::1]:")
        with urllib.request.urlopen(server.url + "/-/healthy", timeout=5) as response:
            assert response.status == 200
    finally:
        server.shutdown()
        server.server_close()


def test_the_listen_backlog_takes_a_burst_of_scrapes():
    assert ExporterServer.request_queue_size >= 64
