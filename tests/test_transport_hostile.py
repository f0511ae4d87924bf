"""A hostile or broken gateway on loopback cannot make the transport hold memory or time, nor
lure a credential onto plain http; TLS pinning works for a gateway reached by IP address.

Every stand-in is a ``standin.StandIn`` on a free loopback port, stopped by the test; each of its
scripts gives up after ``standin.LIMIT_S`` so the tests stay bounded even when the exporter is not.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import weakref
from pathlib import Path

import jwt
import pytest
import standin
from conftest import Clock, Recorder
from standin import StandIn, answer, make_cert, server_context

from envoy_exporter.config.load import ConfigError, load_config
from envoy_exporter.config.settings import GatewaySettings, Secret, TLSSettings
from envoy_exporter.gateway.auth.scheme import Auth
from envoy_exporter.gateway.client import GatewayClient
from envoy_exporter.gateway.net import answer as answer_module
from envoy_exporter.gateway.net import transport as transport_module
from envoy_exporter.gateway.net.errors import TransportError
from envoy_exporter.gateway.net.tls import tls_context
from envoy_exporter.gateway.net.transport import Transport
from envoy_exporter.snapshot.model import GatewayInfo
from envoy_exporter.snapshot.outcome import Outcome

pytestmark = pytest.mark.e2e

INFO_BODY = (
    b"<?xml version='1.0'?><envoy_info><device><sn>482301000042</sn><software>D7.6.175</software>"
    b"</device><web-tokens>true</web-tokens></envoy_info>"
)
TOKEN = jwt.encode(
    {"exp": int(time.time()) + 86400, "aud": "482301000042"},
    "a test key that is long enough for HS256",
    algorithm="HS256",
)


class NoAuth:
    scheme = "none"

    def prepare(self, endpoint_key):
        return {}

    def refresh(self, session, base_url):
        pass

    def on_unauthorized(self, session, base_url):
        return False


def transport_for(host: str, timeout: float = 5.0, tls: TLSSettings | None = None, **kw) -> Transport:
    settings = GatewaySettings(name="roof", host=host, timeout=timeout, tls=tls or TLSSettings())
    return Transport(settings, NoAuth(), Recorder(), **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Size: every answer is bounded, decoded size included


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return standin.gzip_bomb()


@pytest.mark.parametrize("kind", ["content-length", "chunked", "gzip"])
def test_an_oversized_answer_fails_its_request_with_the_reason(kind, bomb):
    script = {
        "content-length": standin.huge_length,
        "chunked": standin.huge_chunked,
        "gzip": answer(bomb, headers={"Content-Encoding": "gzip", "Content-Type": "text/xml"}),
    }[kind]
    with StandIn(script) as gateway:
        transport = transport_for(f"http://{gateway.host}")
        started = time.monotonic()
        with pytest.raises(TransportError) as failure:
            transport.get("info", "/info")
        elapsed = time.monotonic() - started
        transport.close()
    assert failure.value.outcome is Outcome.TOO_LARGE
    assert "over the 64 KiB bound" in str(failure.value)
    assert transport._record.calls == [("info", "error")]
    assert elapsed < 5.0
    # The transport stopped reading at the bound: the stand-in could not push much more than
    # the bound plus what the kernel buffers hold.
    assert gateway.bytes_sent < 40_000_000


def negative_chunk(conn: standin.Connection, request: standin.Request) -> None:
    """A chunked answer whose first chunk size is -1 (int() takes the sign), then 100 MB."""
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n")
    block = bytes(64 * 1024)
    while conn.sent < 100_000_000 and conn.send(block):
        pass


def test_a_negative_chunk_size_ends_the_answer_instead_of_reading_the_connection_whole():
    # http.client would read "the next -1 bytes" as everything until the connection closes, in
    # one read, past the bound: the stand-in could push all it had into memory.
    with StandIn(negative_chunk) as gateway:
        transport = transport_for(f"http://{gateway.host}", timeout=30.0)
        with pytest.raises(TransportError) as failure:
            transport.get("info", "/info")
        transport.close()
    # Worded as any other chunk size that is not one.
    assert (failure.value.outcome, str(failure.value)) == (
        Outcome.UNREACHABLE,
        "the gateway closed the connection",
    )
    assert gateway.bytes_sent < 40_000_000


def test_an_answer_within_the_bound_is_read_whole_and_decoded():
    body = b"{" + b"y" * 1_000_000 + b"}"
    packed = standin.zlib.compress(body, wbits=31)
    with StandIn(answer(packed, headers={"Content-Encoding": "gzip"})) as gateway:
        transport = transport_for(f"http://{gateway.host}")
        assert transport.get("device_data", "/ivp/pdm/device_data").body == body
        transport.close()


@pytest.mark.parametrize("length", [b"\xb2", b"1\xb9", b"\xb3 "])
def test_a_content_length_of_digits_that_are_not_ascii_reads_the_answer_to_its_end(length):
    # Latin-1 superscript digits pass str.isdigit but not int(): http.client reads such an
    # answer to the end of the connection, and so must the bound's check of the length.
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + length + b"\r\n\r\n"

    def close_delimited(conn, request):
        conn.send(head + b'{"wattsNow": 512}')
        conn.sock.shutdown(socket.SHUT_RDWR)

    with StandIn(close_delimited) as gateway:
        transport = transport_for(f"http://{gateway.host}")
        assert transport.get("info", "/info").body == b'{"wattsNow": 512}'
        transport.close()
    assert transport._record.calls == [("info", "200")]


@pytest.mark.parametrize(
    ("key", "path", "bound", "largest_real"),
    [
        ("info", "/info", "64 KiB", 2_431),
        ("api_v1_production", "/api/v1/production", "16 KiB", 122),
        ("meter_readings", "/ivp/meters/readings", "512 KiB", 18_361),
        ("device_data", "/ivp/pdm/device_data", "1 MiB", 31_103),
    ],
)
def test_each_endpoint_has_a_bound_of_its_own_well_over_real_answers(key, path, bound, largest_real):
    """A bound of its own per endpoint, sized from real answers: sixteen gateways answering /info
    at its bound hold 1 MiB, not the 64 MiB one bound of 4 MiB for every endpoint would allow."""
    limit = {"64 KiB": 64 * 1024, "16 KiB": 16 * 1024, "512 KiB": 512 * 1024, "1 MiB": 1024 * 1024}[bound]
    assert limit >= 16 * largest_real
    with StandIn(answer(b"x" * limit)) as fits, StandIn(answer(b"x" * (limit + 1))) as over:
        transport = transport_for(f"http://{fits.host}")
        assert len(transport.get(key, path).body) == limit
        transport.close()
        transport = transport_for(f"http://{over.host}")
        with pytest.raises(TransportError, match=f"over the {bound} bound"):
            transport.get(key, path)
        transport.close()


CHILD = textwrap.dedent(
    """
    import json, resource, sys
    sys.path.insert(0, sys.argv[1])
    import standin
    from test_transport_hostile import transport_for
    from envoy_exporter.gateway.net.errors import TransportError

    bomb = standin.gzip_bomb()
    scripts = [
        standin.huge_length,
        standin.huge_chunked,
        standin.answer(bomb, headers={"Content-Encoding": "gzip"}),
    ]
    errors = []
    for script in scripts:
        with standin.StandIn(script) as gateway:
            # Memory is measured here, not time: a loaded machine must not turn the size
            # error into a timeout.
            transport = transport_for(f"http://{gateway.host}", timeout=30.0)
            try:
                transport.get("info", "/info")
            except TransportError as exc:
                errors.append(str(exc))
            transport.close()
    # This process's own peak. ru_maxrss is not: exec folds the parent's peak into it, and
    # subprocess starts children with vfork, so it read the peak of the whole pytest process.
    try:
        with open("/proc/self/status") as status:
            hwm = next(line for line in status if line.startswith("VmHWM:"))
        peak_mb = int(hwm.split()[1]) / 1024
    except OSError:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"maxrss_mb": peak_mb, "errors": errors}))
    """
)


def test_peak_memory_stays_under_200_mb_against_500_mb_answers_and_a_gzip_bomb():
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tests)], capture_output=True, text=True, timeout=120, env=env
    )
    assert child.returncode == 0, child.stderr[-2000:]
    result = json.loads(child.stdout.splitlines()[-1])
    assert len(result["errors"]) == 3 and all("64 KiB bound" in e for e in result["errors"])
    assert result["maxrss_mb"] < 200


# --------------------------------------------------------------------------------------------
# Time: the timeout bounds the whole request


@pytest.mark.parametrize(
    "script",
    [standin.trickle_body, standin.trickle_headers, standin.continue_flood],
    ids=lambda s: s.__name__,
)
def test_the_timeout_bounds_the_whole_request(script):
    with StandIn(script) as gateway:
        transport = transport_for(f"http://{gateway.host}", timeout=1.0)
        started = time.monotonic()
        with pytest.raises(TransportError) as failure:
            transport.get("info", "/info")
        elapsed = time.monotonic() - started
        transport.close()
    assert failure.value.outcome is Outcome.TIMEOUT
    assert "timed out after 1 s" in str(failure.value)
    assert elapsed < 3.0


def test_a_connection_survives_a_request_that_finished_in_time():
    with StandIn(answer(INFO_BODY)) as gateway:
        transport = transport_for(f"http://{gateway.host}", timeout=0.5)
        for _ in range(3):
            assert transport.get("info", "/info").body == INFO_BODY
        time.sleep(0.7)  # every deadline has passed: nothing may cut the kept-alive connection
        assert transport.get("info", "/info").body == INFO_BODY
        transport.close()
    assert len(gateway.requests) == 4


def test_a_gateways_requests_share_one_kept_alive_connection():
    with StandIn(answer(INFO_BODY)) as gateway:
        transport = transport_for(f"http://{gateway.host}", timeout=2.0)
        for _ in range(5):
            assert transport.get("info", "/info").body == INFO_BODY
        transport.close()
    assert len(gateway.requests) == 5
    assert len(gateway._threads) == 2  # the listener's, and one per connection accepted


def test_a_kept_alive_connection_keeps_nothing_of_the_answer_it_read(monkeypatch):
    # http.client holds a connection's last response, header block and all, until the next
    # request on it: for a gateway, a minute later. Read to the end, it is of no more use.
    answers: list[weakref.ref] = []
    begin = answer_module._Answer.begin

    def noted(self) -> None:
        answers.append(weakref.ref(self))
        begin(self)

    monkeypatch.setattr(answer_module._Answer, "begin", noted)
    with StandIn(answer(INFO_BODY)) as gateway:
        transport = transport_for(f"http://{gateway.host}", timeout=2.0)
        for _ in range(2):
            assert transport.get("info", "/info").body == INFO_BODY
        assert len(answers) == 2 and [ref() for ref in answers] == [None, None]
        transport.close()


# --------------------------------------------------------------------------------------------
# No silent downgrade to plain http


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("certs")
    return {name: make_cert(directory, name) for name in ("envoy", "other")}


def token_gateway(request: standin.Request) -> bytes:
    return INFO_BODY if request.path == "/info" else b"{}"


def routed(conn: standin.Connection, request: standin.Request) -> None:
    """A gateway that wants its session cookie: a request without one gets a 401, which has the
    token checked on /auth/check_jwt, which sets the cookie."""
    if request.path == "/auth/check_jwt":
        answer(b"<html>Valid token.</html>", headers={"Set-Cookie": "sessionId=s3ss10n; Path=/"})(
            conn, request
        )
    elif request.path != "/info" and "cookie" not in request.headers:
        answer(b'{"status":401}', status="401 Unauthorized")(conn, request)
    else:
        answer(token_gateway(request))(conn, request)


def token_transport(host: str, clock: Clock) -> Transport:
    settings = GatewaySettings(name="roof", host=host, timeout=3.0, token=Secret(TOKEN))
    record = Recorder()
    auth = Auth(settings, None, record)
    auth.configure(GatewayInfo(serial="482301000042", firmware="D7.6.175", web_tokens=True))
    return Transport(settings, auth, record, clock=clock)


def credentials_over_plain_http(gateway: StandIn) -> list[str]:
    return [
        r.path
        for r in gateway.requests
        if r.scheme == "http" and ("authorization" in r.headers or "cookie" in r.headers)
    ]


def test_once_the_gateway_answered_over_https_it_stays_on_https(certs):
    with StandIn(routed, tls=server_context(*certs["envoy"])) as gateway:
        transport = token_transport(gateway.host, Clock())
        for _ in range(2):
            transport.get("info", "/info")
            transport.get("production_json", "/production.json")
        assert transport._session.cookies.get("sessionId") == "s3ss10n"

        gateway.tls_on = False  # TLS fails once (a reboot, a glitch)...
        gateway.drop()
        for _ in range(4):
            with pytest.raises(TransportError):
                transport.get("production_json", "/production.json")
            with pytest.raises(TransportError):
                transport.get("info", "/info")
        gateway.tls_on = True  # ...and works again
        for _ in range(2):
            transport.get("info", "/info")
            transport.get("production_json", "/production.json")
        transport.close()
    assert {r.scheme for r in gateway.requests} == {"https"}
    assert credentials_over_plain_http(gateway) == []
    # 4 + a 401 and check_jwt (for the cookie), then 4 again; none while TLS was down
    assert len(gateway.requests) == 10


def test_a_bare_host_without_https_gets_no_token_and_https_is_tried_again(certs):
    clock = Clock()
    with StandIn(routed, tls=server_context(*certs["envoy"])) as gateway:
        gateway.tls_on = False
        transport = token_transport(gateway.host, clock)
        assert transport.get("info", "/info").body == INFO_BODY
        assert transport.base_url == f"http://{gateway.host}"
        with pytest.raises(TransportError) as refused:
            transport.get("production_json", "/production.json")
        assert "not sent over plain http" in str(refused.value)
        transport.get("info", "/info")

        gateway.tls_on = True
        clock.now += transport_module.HTTPS_RETRY_S
        transport.get("info", "/info")
        assert transport.base_url == f"https://{gateway.host}"
        transport.get("production_json", "/production.json")
        gateway.tls_on = False
        gateway.drop()
        clock.now += 10 * transport_module.HTTPS_RETRY_S
        with pytest.raises(TransportError):
            transport.get("info", "/info")
        transport.close()
    assert credentials_over_plain_http(gateway) == []
    assert [(r.scheme, r.path) for r in gateway.requests] == [
        ("http", "/info"),
        ("http", "/info"),
        ("https", "/info"),
        ("https", "/production.json"),
        ("https", "/auth/check_jwt"),
        ("https", "/production.json"),
    ]


def test_http_written_by_the_user_carries_the_token():
    with StandIn(routed) as gateway:
        transport = token_transport(f"http://{gateway.host}", Clock())
        transport.get("production_json", "/production.json")
        transport.close()
    assert gateway.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"


# --------------------------------------------------------------------------------------------
# TLS: pinning by ca_file with server_name, the reason of a certificate error


def pinned(host: str, cert: Path, server_name: str | None = None) -> Transport:
    return transport_for(host, tls=TLSSettings(verify=True, ca_file=cert, server_name=server_name))


def test_a_pinned_common_name_only_certificate_needs_server_name_for_an_ip_host(certs):
    with StandIn(answer(INFO_BODY), tls=server_context(*certs["envoy"])) as gateway:
        by_ip = pinned(gateway.host, certs["envoy"][0])
        with pytest.raises(TransportError) as failure:
            by_ip.get("info", "/info")
        assert "IP address mismatch" in str(failure.value)
        assert gateway.requests == []  # and no plain http attempted: verification was asked for

        named = pinned(gateway.host, certs["envoy"][0], server_name="envoy")
        assert named.get("info", "/info").body == INFO_BODY
        assert named.base_url == f"https://{gateway.host}"

        wrong_name = pinned(gateway.host, certs["envoy"][0], server_name="envoy.example")
        with pytest.raises(TransportError) as failure:
            wrong_name.get("info", "/info")
        assert "Hostname mismatch" in str(failure.value)
        for t in (by_ip, named, wrong_name):
            t.close()
    assert [r.scheme for r in gateway.requests] == ["https"]


def test_a_certificate_is_trusted_for_the_gateway_it_is_pinned_to_only(certs, monkeypatch):
    # REQUESTS_CA_BUNDLE is set on these machines; requests would trust it over Session.verify.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs["envoy"][0]))
    with StandIn(answer(INFO_BODY), tls=server_context(*certs["envoy"])) as gateway:
        other_pin = pinned(gateway.host, certs["other"][0], server_name="envoy")
        with pytest.raises(TransportError) as failure:
            other_pin.get("info", "/info")
        assert "self-signed certificate" in str(failure.value)

        system = transport_for(gateway.host, tls=TLSSettings(verify=True, server_name="envoy"))
        with pytest.raises(TransportError) as failure:
            system.get("info", "/info")
        assert "certificate verify failed" in str(failure.value) or "self-signed" in str(failure.value)
        for t in (other_pin, system):
            t.close()
    assert gateway.requests == []


def test_server_name_in_the_config(tmp_path):
    (tmp_path / "envoy.pem").write_text("pem")
    config = tmp_path / "exporter.yml"
    config.write_text("gateways:\n  - host: 192.0.2.10\n    tls: {ca_file: envoy.pem, server_name: envoy}\n")
    tls = load_config(config).gateways[0].tls
    assert (tls.verify, tls.ca_file, tls.server_name) == (True, tmp_path / "envoy.pem", "envoy")

    config.write_text("gateways:\n  - host: 192.0.2.10\n    tls: {server_name: 'envoy/x'}\n")
    with pytest.raises(ConfigError) as failure:
        load_config(config)
    assert failure.value.key == "gateways[0].tls.server_name"


def test_an_oversized_endpoint_costs_only_its_own_part(caplog):
    """An Envoy-S standard on firmware 5 whose inverter list is endless: production stays."""
    bodies = {
        "/info": INFO_BODY.replace(b"D7.6.175", b"D5.0.62").replace(b"true", b"false"),
        "/api/v1/production": b'{"wattsNow": 512, "wattHoursToday": 12, "wattHoursSevenDays": 80, '
        b'"wattHoursLifetime": 6000}',
    }

    def gateway_script(conn, request):
        if request.path == "/api/v1/production/inverters":
            standin.huge_chunked(conn, request)
        elif request.path in bodies:
            answer(bodies[request.path])(conn, request)
        else:
            answer(b"{}", "404 Not Found")(conn, request)

    with StandIn(gateway_script) as gateway:
        settings = GatewaySettings(name="roof", host=f"http://{gateway.host}", timeout=5.0)
        client = GatewayClient(settings, None)
        snapshot = client.collect(timeout=20)
        client.close()
    assert snapshot.up and snapshot.production.total.power_w == 512.0
    result = snapshot.endpoints["api_v1_inverters"]
    assert result.outcome is Outcome.TOO_LARGE
    assert "over the 256 KiB bound" in result.detail
    assert "/api/v1/production/inverters" in caplog.text and "over the 256 KiB bound" in caplog.text


def test_a_replaced_ca_file_gets_a_context_of_its_own(certs, tmp_path):
    pin = tmp_path / "pin.pem"
    pin.write_bytes(certs["envoy"][0].read_bytes())
    first = tls_context(True, str(pin))
    assert tls_context(True, str(pin)) is first
    pin.write_bytes(certs["other"][0].read_bytes() + b"\n")
    assert tls_context(True, str(pin)) is not first
