"""Transport: base URL resolution, https-then-http, no redirects, one request in flight, request
counting, verify on every request, 401 handling, and real TLS against a self-signed gateway."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from conftest import SHARED_FIXTURES, Recorder, load_fake_gateway, needs_shared
from urllib3.exceptions import InsecureRequestWarning

from envoy_exporter.config.settings import GatewaySettings, Secret, TLSSettings
from envoy_exporter.gateway.auth.scheme import Auth
from envoy_exporter.gateway.net.tls import tls_context
from envoy_exporter.gateway.net.transport import Transport, TransportError, base_urls
from envoy_exporter.snapshot.model import GatewayInfo
from envoy_exporter.snapshot.outcome import Outcome

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2lnbmF0dXJlLXRlc3Qtb25seS0xMjM0NQ"
INFO_BODY = b"<?xml version='1.0'?><envoy_info><device><sn>482301000042</sn></device></envoy_info>"


class FakeAuth:
    """Stands in for Auth: a bearer header on everything but /info, and a scripted 401 answer."""

    def __init__(self, repairs: bool = False) -> None:
        self.repairs = repairs
        self.unauthorized = 0
        self.refreshed: list[str] = []

    def prepare(self, endpoint_key):
        return {} if endpoint_key == "info" else {"headers": {"Authorization": f"Bearer {TOKEN}"}}

    def refresh(self, session, base_url):
        self.refreshed.append(base_url)

    def on_unauthorized(self, session, base_url):
        self.unauthorized += 1
        return self.repairs


def make_transport(host: str = "192.0.2.10", auth: FakeAuth | None = None, **settings: object):
    record = Recorder()
    transport = Transport(GatewaySettings(name="roof", host=host, **settings), auth or FakeAuth(), record)  # type: ignore[arg-type]
    return transport, record


# --------------------------------------------------------------------------------------------
# Base URLs


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("192.0.2.10", ("https://192.0.2.10", "http://192.0.2.10")),
        ("192.0.2.10:8080", ("https://192.0.2.10:8080", "http://192.0.2.10:8080")),
        ("envoy.local", ("https://envoy.local", "http://envoy.local")),
        ("envoy.local:443/", ("https://envoy.local:443", "http://envoy.local:443")),
        ("[2001:db8::10]", ("https://[2001:db8::10]", "http://[2001:db8::10]")),
        ("[::1]:8443", ("https://[::1]:8443", "http://[::1]:8443")),
        ("::1", ("https://[::1]", "http://[::1]")),
        ("2001:db8::10", ("https://[2001:db8::10]", "http://[2001:db8::10]")),
        ("http://127.0.0.1:41234", ("http://127.0.0.1:41234",)),
        (" https://envoy.local/ ", ("https://envoy.local",)),
    ],
)
def test_base_urls(host, expected):
    assert base_urls(host) == expected


def test_verification_on_means_no_plain_http_fallback():
    assert base_urls("192.0.2.10", plain_fallback=False) == ("https://192.0.2.10",)
    transport, _ = make_transport(tls=TLSSettings(verify=True))
    assert transport._candidates == ["https://192.0.2.10"]


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("::1", "https://[::1]/info"),
        ("[fe80::1]:8443", "https://[fe80::1]:8443/info"),
        ("envoy.local:8080", "https://envoy.local:8080/info"),
        ("http://127.0.0.1:41234", "http://127.0.0.1:41234/info"),
    ],
)
def test_requests_go_to_the_resolved_url(requests_mock, host, url):
    requests_mock.get(url, content=INFO_BODY)
    transport, _ = make_transport(host)
    assert transport.get("info", "/info").body == INFO_BODY
    assert requests_mock.last_request.url == url


# --------------------------------------------------------------------------------------------
# https, then http


def test_bare_host_tries_https_then_http_and_remembers(requests_mock):
    requests_mock.get("https://192.0.2.10/info", exc=requests.exceptions.ConnectionError)
    requests_mock.get("http://192.0.2.10/info", content=INFO_BODY)
    transport, record = make_transport()
    assert transport.get("info", "/info").status == 200
    assert transport.base_url == "http://192.0.2.10"
    assert record.calls == [("info", "error"), ("info", "200")]

    transport.get("info", "/info")
    assert [r.scheme for r in requests_mock.request_history] == ["https", "http", "http"]


def test_once_https_answered_plain_http_is_never_tried(requests_mock):
    requests_mock.get("https://192.0.2.10/info", content=INFO_BODY)
    transport, record = make_transport()
    transport.get("info", "/info")
    assert transport.base_url == "https://192.0.2.10"

    requests_mock.get("https://192.0.2.10/info", exc=requests.exceptions.ConnectionError)
    plain = requests_mock.get("http://192.0.2.10/info", content=INFO_BODY)
    for _ in range(3):
        with pytest.raises(TransportError) as failure:
            transport.get("info", "/info")
        assert failure.value.outcome is Outcome.UNREACHABLE
    assert not plain.called
    assert transport.base_url == "https://192.0.2.10"
    assert record.calls == [("info", "200")] + [("info", "error")] * 3


def test_both_schemes_down(requests_mock):
    requests_mock.get("https://192.0.2.10/info", exc=requests.exceptions.ConnectTimeout)
    requests_mock.get("http://192.0.2.10/info", exc=requests.exceptions.ConnectionError)
    transport, record = make_transport()
    with pytest.raises(TransportError) as failure:
        transport.get("info", "/info")
    assert failure.value.outcome is Outcome.UNREACHABLE
    assert record.calls == [("info", "timeout"), ("info", "error")]
    assert transport.base_url is None


def test_a_slow_answer_is_not_a_reason_to_switch_scheme(requests_mock):
    requests_mock.get("https://192.0.2.10/info", exc=requests.exceptions.ReadTimeout)
    transport, record = make_transport()
    with pytest.raises(TransportError) as failure:
        transport.get("info", "/info")
    assert failure.value.outcome is Outcome.TIMEOUT
    assert record.calls == [("info", "timeout")]


# --------------------------------------------------------------------------------------------
# Answers and their codes


def test_redirects_are_failures_and_never_followed(requests_mock):
    requests_mock.get(
        "http://192.0.2.10/production", status_code=302, headers={"Location": "https://localhost/"}
    )
    followed = requests_mock.get("https://localhost/", text="should not be asked")
    transport, record = make_transport("http://192.0.2.10")
    with pytest.raises(TransportError) as failure:
        transport.get("production_html", "/production")
    assert (failure.value.outcome, failure.value.status) == (Outcome.HTTP_ERROR, 302)
    assert not followed.called
    assert record.calls == [("production_html", "302")]


@pytest.mark.parametrize(
    ("answer", "code", "outcome"),
    [
        ({"status_code": 404}, "404", Outcome.UNSUPPORTED),
        ({"status_code": 500}, "500", Outcome.HTTP_ERROR),
        ({"status_code": 401}, "401", Outcome.UNAUTHORIZED),
        ({"exc": requests.exceptions.ReadTimeout}, "timeout", Outcome.TIMEOUT),
        ({"exc": requests.exceptions.ConnectTimeout}, "timeout", Outcome.TIMEOUT),
        ({"exc": requests.exceptions.ConnectionError}, "error", Outcome.UNREACHABLE),
        ({"exc": requests.exceptions.SSLError}, "error", Outcome.UNREACHABLE),
        ({"exc": requests.exceptions.ChunkedEncodingError}, "error", Outcome.UNREACHABLE),
    ],
)
def test_failures_are_recorded_and_raised_with_their_code(requests_mock, answer, code, outcome):
    requests_mock.get("http://192.0.2.10/ivp/meters", **answer)
    transport, record = make_transport("http://192.0.2.10")
    with pytest.raises(TransportError) as failure:
        transport.get("meters", "/ivp/meters")
    assert failure.value.outcome is outcome
    assert record.calls == [("meters", code)]


def test_success_returns_status_body_and_headers(requests_mock):
    requests_mock.get(
        "http://192.0.2.10/ivp/meters", status_code=200, json=[{"eid": 7}], headers={"X-Test": "yes"}
    )
    transport, record = make_transport("http://192.0.2.10")
    response = transport.get("meters", "/ivp/meters")
    assert (response.status, response.body, response.headers["x-test"]) == (200, b'[{"eid": 7}]', "yes")
    assert record.calls == [("meters", "200")]


def test_401_asks_auth_once_and_retries_once(requests_mock):
    requests_mock.get("http://192.0.2.10/ivp/meters", [{"status_code": 401}, {"json": []}])
    auth = FakeAuth(repairs=True)
    transport, record = make_transport("http://192.0.2.10", auth)
    assert transport.get("meters", "/ivp/meters").body == b"[]"
    assert auth.unauthorized == 1
    assert record.calls == [("meters", "401"), ("meters", "200")]


def test_a_second_401_is_final(requests_mock):
    requests_mock.get("http://192.0.2.10/ivp/meters", status_code=401)
    auth = FakeAuth(repairs=True)
    transport, record = make_transport("http://192.0.2.10", auth)
    with pytest.raises(TransportError) as failure:
        transport.get("meters", "/ivp/meters")
    assert (failure.value.outcome, failure.value.status) == (Outcome.UNAUTHORIZED, 401)
    assert auth.unauthorized == 1
    assert record.calls == [("meters", "401"), ("meters", "401")]


def test_no_retry_when_auth_cannot_repair(requests_mock):
    requests_mock.get("http://192.0.2.10/ivp/meters", status_code=401)
    auth = FakeAuth(repairs=False)
    transport, _ = make_transport("http://192.0.2.10", auth)
    with pytest.raises(TransportError):
        transport.get("meters", "/ivp/meters")
    assert requests_mock.call_count == 1


def test_auth_refresh_runs_before_protected_requests_only(requests_mock):
    requests_mock.get("http://192.0.2.10/info", content=INFO_BODY)
    requests_mock.get("http://192.0.2.10/ivp/meters", json=[])
    auth = FakeAuth()
    transport, _ = make_transport("http://192.0.2.10", auth)
    transport.get("info", "/info")
    transport.get("meters", "/ivp/meters")
    assert auth.refreshed == ["http://192.0.2.10"]
    assert "Authorization" not in requests_mock.request_history[0].headers
    assert requests_mock.request_history[1].headers["Authorization"] == f"Bearer {TOKEN}"


# --------------------------------------------------------------------------------------------
# verify, timeout, slow bodies


def test_tls_comes_from_one_shared_context_per_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    ca = tmp_path / "gateway.pem"
    ca.write_text(Path(requests.certs.where()).read_text())  # any readable PEM will do here

    def context(tls: TLSSettings):
        transport, _ = make_transport(tls=tls)
        adapter = transport._session.get_adapter("https://192.0.2.10/")
        return adapter.poolmanager.connection_pool_kw["ssl_context"]

    insecure = context(TLSSettings())
    assert insecure is context(TLSSettings()) is tls_context(False)
    assert insecure.verify_mode == ssl.CERT_NONE
    assert insecure.cert_store_stats()["x509_ca"] == 0  # no CA bundle loaded for nothing
    system = context(TLSSettings(verify=True))
    assert system is tls_context(True) and system.verify_mode == ssl.CERT_REQUIRED
    pinned = context(TLSSettings(verify=True, ca_file=ca))
    assert pinned is context(TLSSettings(verify=True, ca_file=ca)) is tls_context(True, str(ca))
    assert pinned not in (insecure, system)
    assert pinned.verify_mode == ssl.CERT_REQUIRED and pinned.check_hostname


def test_an_unreadable_ca_file_trusts_nothing(tmp_path, caplog):
    transport, _ = make_transport(tls=TLSSettings(verify=True, ca_file=tmp_path / "gone.pem"))
    context = transport._session.get_adapter("https://192.0.2.10/").poolmanager.connection_pool_kw[
        "ssl_context"
    ]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.cert_store_stats()["x509_ca"] == 0
    assert "cannot load tls.ca_file" in caplog.text


def test_timeout_defaults_to_the_settings_and_can_be_overridden(requests_mock):
    requests_mock.get("http://192.0.2.10/info", content=INFO_BODY)
    transport, _ = make_transport("http://192.0.2.10", timeout=7.0)
    transport.get("info", "/info")
    transport.get("info", "/info", timeout=2.5)
    assert [r.timeout for r in requests_mock.request_history] == [7.0, 2.5]


# --------------------------------------------------------------------------------------------
# One request in flight


def test_at_most_one_request_in_flight(requests_mock):
    in_flight, peak, lock = 0, 0, threading.Lock()

    def answer(request, context):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.01)
        with lock:
            in_flight -= 1
        return "[]"

    requests_mock.get("http://192.0.2.10/ivp/meters", text=answer)
    transport, record = make_transport("http://192.0.2.10")

    def scrape() -> None:
        for _ in range(5):
            transport.get("meters", "/ivp/meters")

    threads = [threading.Thread(target=scrape) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert requests_mock.call_count == 15
    assert peak == 1
    assert len(record.calls) == 15


# --------------------------------------------------------------------------------------------
# The debug log


def test_debug_log_shows_requests_but_no_credentials(requests_mock, caplog):
    requests_mock.get("http://192.0.2.10/ivp/meters", json=[])
    transport, _ = make_transport("http://192.0.2.10")
    with caplog.at_level(logging.DEBUG, logger="envoy_exporter"):
        transport.get("meters", "/ivp/meters")
    assert "GET http://192.0.2.10/ivp/meters -> 200" in caplog.text
    assert "credentials: bearer ***" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN[-6:] not in caplog.text


# --------------------------------------------------------------------------------------------
# Loopback servers


class _PlainHandler(BaseHTTPRequestHandler):
    """Plain HTTP only: a TLS ClientHello gets the connection closed, as on old firmware."""

    protocol_version = "HTTP/1.1"

    def handle(self) -> None:
        if self.request.recv(1, socket.MSG_PEEK) == b"\x16":
            return
        super().handle()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(INFO_BODY)))
        self.end_headers()
        self.wfile.write(INFO_BODY)

    def log_message(self, *args: object) -> None:
        pass


class _PlainServer(ThreadingHTTPServer):
    daemon_threads = True


class _PlainServer6(_PlainServer):
    address_family = socket.AF_INET6


@pytest.fixture(params=["127.0.0.1", "::1"])
def plain_server(request):
    server_class = _PlainServer6 if ":" in request.param else _PlainServer
    try:
        server = server_class((request.param, 0), _PlainHandler)
    except OSError:
        pytest.skip(f"cannot listen on {request.param}")
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield request.param, server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.e2e
def test_falls_back_to_http_on_a_plain_http_gateway(plain_server):
    address, port = plain_server
    host = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    transport, record = make_transport(host, timeout=5.0)
    assert transport.get("info", "/info").body == INFO_BODY
    assert transport.base_url == f"http://{host}"
    assert record.calls == [("info", "error"), ("info", "200")]
    transport.close()


@pytest.mark.e2e
@needs_shared
def test_self_signed_gateway_is_accepted_only_for_the_gateway():
    fake = load_fake_gateway()
    gateway = fake.Gateway(SHARED_FIXTURES / "7.6.175_standard")
    port = gateway.start(tls=True)
    try:
        settings = GatewaySettings(
            name=None, host=f"127.0.0.1:{port}", token=Secret(gateway.token), timeout=5.0
        )
        record = Recorder()
        auth = Auth(settings, None, record)
        transport = Transport(settings, auth, record)
        assert b"<sn>122302045041</sn>" in transport.get("info", "/info").body
        assert transport.base_url == f"https://127.0.0.1:{port}"
        auth.configure(GatewayInfo(serial=gateway.serial, firmware=gateway.firmware, web_tokens=True))
        assert transport.get("production_json", "/production.json").status == 200
        assert record.calls == [("info", "200"), ("production_json", "200")]
        transport.close()

        # Default verification elsewhere still refuses the self-signed certificate...
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"https://127.0.0.1:{port}/info", timeout=5)
        # ...and so does the gateway transport when verification is asked for, without
        # falling back to plain http.
        strict, strict_record = make_transport(f"127.0.0.1:{port}", tls=TLSSettings(verify=True), timeout=5.0)
        with pytest.raises(TransportError) as failure:
            strict.get("info", "/info")
        assert failure.value.outcome is Outcome.TLS
        assert strict_record.calls == [("info", "error")]
    finally:
        gateway.stop()


@pytest.mark.e2e
@needs_shared
def test_a_self_signed_gateway_costs_no_warning_and_no_process_wide_filter():
    fake = load_fake_gateway()
    gateway = fake.Gateway(SHARED_FIXTURES / "7.6.175_standard")
    port = gateway.start(tls=True)
    filters = list(warnings.filters)
    try:
        transport, _ = make_transport(f"127.0.0.1:{port}", timeout=5.0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert b"<sn>122302045041</sn>" in transport.get("info", "/info").body
        transport.close()
    finally:
        gateway.stop()
    assert [w for w in caught if issubclass(w.category, InsecureRequestWarning)] == []
    assert warnings.filters == filters
