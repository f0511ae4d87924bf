"""Credentials go only where they belong, and a rejected one does not hammer the gateway:
tokens bound to their gateway's serial, a contradicted serial, Enlighten over plain
http, a bounded Enlighten, the back-off after a rejected token or digest password, and no data
request while there is no token to send.

The gateways and Enlighten are requests-mock stand-ins of this project's own making; the bounded
Enlighten is tried against ``standin.StandIn``, the loopback server the transport's tests use,
and the gateway without any token source against the loopback demo gateway.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

import jwt
import pytest
import requests
import standin
from conftest import Clocks
from exporter_fakes import FakeClient, samples, scrape, value

from envoy_exporter.collector import GatewayCollector
from envoy_exporter.config.settings import DEFAULT_CACHE_TTL, GatewaySettings, Secret
from envoy_exporter.demo.server import DemoGateway, Response
from envoy_exporter.demo.simulator import Plant
from envoy_exporter.fleet.registry import Fleet
from envoy_exporter.gateway.auth.scheme import Auth
from envoy_exporter.gateway.auth.serial_claims import SerialClaims
from envoy_exporter.gateway.client import GatewayClient
from envoy_exporter.snapshot.model import GatewayInfo
from envoy_exporter.snapshot.outcome import Outcome

SERIAL_A = "482301000042"
SERIAL_B = "482301000077"
ENLIGHTEN = "https://enlighten.test"
ENTREZ = "https://entrez.test"
CLOUD_USER = "owner@example.net"
CLOUD_PASSWORD = "cloud-pw-Zq81!"
NO_CACHE = {family: 0.0 for family in DEFAULT_CACHE_TTL}
WALL = 1_750_000_000.0

PRODUCTION = (
    '{"production": [{"type": "inverters", "activeCount": 2, "readingTime": 1750000000, '
    '"wNow": 480, "whLifetime": 174174}]}'
)

INVERTERS = (
    '[{"serialNumber": "900000000201", "lastReportDate": 1750000000, "lastReportWatts": 240, '
    '"maxReportWatts": 290}]'
)


def make_token(serial: str, subject: str = "t") -> str:
    claims = {"aud": serial, "iss": "Entrez", "enphaseUser": "owner", "iat": int(WALL)}
    return jwt.encode({**claims, "exp": int(WALL) + 365 * 86400, "jti": subject}, "k" * 32, algorithm="HS256")


def info_xml(serial: str, firmware: str) -> str:
    tokens = "<web-tokens>true</web-tokens>" if firmware.startswith(("D7", "D8")) else ""
    return (
        "<?xml version='1.0' encoding='UTF-8'?><envoy_info><time>1750000000</time><device>"
        f"<sn>{serial}</sn><pn>800-00000-r01</pn><software>{firmware}</software>"
        f"</device>{tokens}</envoy_info>"
    )


@dataclass
class StandIn:
    """A gateway at ``url`` whose /info says ``serial``. Token era: accepts the tokens in
    ``accept`` (check_jwt and data). Digest era: ``protected`` paths answer 401 unless
    ``digest_ok``; the rest is open."""

    url: str
    serial: str
    firmware: str = "D8.2.4345"
    accept: set[str] = field(default_factory=set)
    digest_ok: bool = False
    protected: tuple[str, ...] = ("/api/v1/production/inverters", "/ivp/", "/inventory")
    routes: dict[str, str] = field(default_factory=dict)
    seen: list[tuple[str, str]] = field(default_factory=list)  # (path, Authorization)

    @property
    def token_era(self) -> bool:
        return int(re.findall(r"\d+", self.firmware)[0]) >= 7

    def install(self, mock) -> StandIn:
        mock.get(re.compile(re.escape(self.url) + "/.*"), text=self.answer)
        return self

    def answer(self, request, context) -> str:
        path = request.path_url
        authorization = request.headers.get("Authorization", "")
        self.seen.append((path, authorization))
        if path == "/info":
            return info_xml(self.serial, self.firmware)
        if self.token_era:
            if authorization.removeprefix("Bearer ") not in self.accept:
                context.status_code = 401
                return '{"status":401,"info":"Authentication required"}'
        elif path.startswith(self.protected) and not self.digest_ok:
            context.status_code = 401
            return "Error: 401"
        if path.startswith("/production.json"):
            return PRODUCTION
        if path == "/auth/check_jwt":
            return "<!DOCTYPE html><h2>Valid token.</h2>"
        if path in self.routes:
            return self.routes[path]
        context.status_code = 404
        return '{"error": "404 - Not Found"}'

    def asked(self) -> list[str]:
        paths = [path for path, _ in self.seen]
        self.seen.clear()
        return paths

    def tokens_received(self) -> set[str]:
        return {a.removeprefix("Bearer ") for _, a in self.seen if a.startswith("Bearer ")}


@dataclass
class Cloud:
    """Enlighten and Entrez: a token for any serial asked, as for an account owning them all;
    the gateway registered under that serial accepts it."""

    gateways: dict[str, StandIn] = field(default_factory=dict)
    issued: dict[str, list[str]] = field(default_factory=dict)  # serial -> tokens

    def install(self, mock) -> Cloud:
        mock.post(f"{ENLIGHTEN}/login/login.json", json={"session_id": "sid-77"})
        mock.post(f"{ENTREZ}/tokens", text=self.token)
        return self

    def token(self, request, context) -> str:
        serial = request.json()["serial_num"]
        value = make_token(serial, subject=f"{serial}-{len(self.issued.get(serial, []))}")
        self.issued.setdefault(serial, []).append(value)
        if serial in self.gateways:
            self.gateways[serial].accept.add(value)
        return value


def client(
    host: str, clocks: Clocks, state_dir=None, claims: SerialClaims | None = None, **settings: object
) -> GatewayClient:
    """``claims``: the registry the exporter shares between its clients (a client alone has its own)."""
    config = GatewaySettings(name=None, host=host, cache_ttl=dict(NO_CACHE), timeout=2.0, **settings)  # type: ignore[arg-type]
    return GatewayClient(config, state_dir, clock=clocks.clock, wall=clocks.now, claims=claims)


def cloud_settings(**extra: object) -> dict[str, object]:
    return {
        "enlighten_username": CLOUD_USER,
        "enlighten_password": Secret(CLOUD_PASSWORD),
        "enlighten_url": ENLIGHTEN,
        "entrez_url": ENTREZ,
        **extra,
    }


# --------------------------------------------------------------------------------------------
# Tokens bound to their gateway


@pytest.mark.parametrize("configured", [None, SERIAL_B], ids=["serial-not-configured", "serial-configured"])
def test_a_gateway_claiming_another_serial_never_gets_its_token(requests_mock, tmp_path, caplog, configured):
    a = StandIn("https://192.0.2.10", SERIAL_A).install(requests_mock)
    b = StandIn("https://192.0.2.11", SERIAL_A).install(requests_mock)  # B's /info claims A's serial
    cloud = Cloud({SERIAL_A: a}).install(requests_mock)
    clocks, claims = Clocks(), SerialClaims()
    first = client("192.0.2.10", clocks, tmp_path, claims, **cloud_settings())
    assert first.collect(timeout=5).up

    second = client("192.0.2.11", clocks, tmp_path, claims, **cloud_settings(serial=configured))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            snap = second.collect(timeout=5)
            assert not snap.up
            clocks.advance(3601)
    assert b.tokens_received() == set()
    assert {p for p, _ in b.seen} == {"/info"}  # not even check_jwt, and no data request
    assert cloud.issued.keys() == {SERIAL_A}
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1  # said once, not every scrape
    if configured:
        assert f"reports serial {SERIAL_A}, but serial {SERIAL_B} is configured" in errors[0]
        assert second.name == SERIAL_B  # never silently overridden
    else:
        assert f"claims serial {SERIAL_A} too" in errors[0]
    first.close()
    second.close()


def test_the_gateway_with_the_serial_configured_keeps_its_token(requests_mock, tmp_path):
    a = StandIn("https://192.0.2.10", SERIAL_A).install(requests_mock)
    b = StandIn("https://192.0.2.11", SERIAL_A).install(requests_mock)
    Cloud({SERIAL_A: a}).install(requests_mock)
    clocks, claims = Clocks(), SerialClaims()
    genuine = client("192.0.2.10", clocks, tmp_path, claims, **cloud_settings(serial=SERIAL_A))
    impostor = client("192.0.2.11", clocks, tmp_path, claims, **cloud_settings())
    assert genuine.collect(timeout=5).up
    impostor.collect(timeout=5)
    clocks.advance(61)
    assert genuine.collect(timeout=5).up
    assert b.tokens_received() == set()
    genuine.close()
    impostor.close()


def test_a_given_token_goes_only_to_the_serial_it_names(requests_mock):
    token = make_token(SERIAL_A)
    b = StandIn("https://192.0.2.11", SERIAL_B, accept={token}).install(requests_mock)
    gateway = client("192.0.2.11", Clocks(), token=Secret(token))
    snap = gateway.collect(timeout=5)
    assert not snap.up
    assert "issued for serial 482301000042, not for this gateway's serial 482301000077" in str(
        snap.endpoints["production_json"].detail
    )
    assert b.tokens_received() == set()


# --------------------------------------------------------------------------------------------
# Enlighten: https only, bounded


def test_enlighten_over_plain_http_is_refused(requests_mock, caplog):
    StandIn("https://192.0.2.10", SERIAL_A).install(requests_mock)
    requests_mock.post(re.compile("http://enlighten.example/.*"), json={"session_id": "sid-1"})
    gateway = client("192.0.2.10", Clocks(), **cloud_settings(enlighten_url="http://enlighten.example"))
    with caplog.at_level(logging.WARNING):
        snap = gateway.collect(timeout=5)
    assert not [r for r in requests_mock.request_history if r.method == "POST"]
    assert "enlighten_url must be https" in str(snap.endpoints["production_json"].detail)
    assert "enlighten_url must be https" in caplog.text


def big_login(conn: standin.Connection, request: standin.Request) -> None:
    """Enlighten whose login answers 64 MiB of JSON, streamed, with no Content-Length."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    if not conn.send(head + b'{"session_id": "sid", "pad": "'):
        return
    for _ in range(64):
        if not conn.send(b"x" * (1024 * 1024)):
            return
    conn.send(b'"}')


@pytest.mark.e2e
def test_an_oversized_enlighten_answer_is_refused():
    with standin.StandIn(big_login) as server:
        url = f"http://{server.host}"
        settings = GatewaySettings(
            name="roof", host="192.0.2.10", **cloud_settings(enlighten_url=url, entrez_url=url)
        )  # type: ignore[arg-type]
        auth = Auth(settings, None, lambda endpoint, code: None)
        auth.configure(GatewayInfo(serial=SERIAL_A, firmware="D8.2.4345", web_tokens=True))
        with pytest.raises(Exception, match="enlighten_login") as refused:
            auth.refresh(requests.Session(), "https://192.0.2.10")
    assert "could not get a token from Enlighten" in str(refused.value)
    assert [r.path for r in server.requests] == ["/login/login.json"]  # never on to /tokens


# --------------------------------------------------------------------------------------------
# A rejected credential does not hammer the gateway


def data_requests(stand_in: StandIn) -> list[str]:
    return [p for p in stand_in.asked() if p != "/info"]


def test_a_rejected_token_is_not_sent_again_before_the_back_off_ends(requests_mock, caplog):
    gw = StandIn("https://192.0.2.10", SERIAL_A).install(requests_mock)  # accepts nothing
    clocks = Clocks()
    gateway = client("192.0.2.10", clocks, token=Secret(make_token(SERIAL_A)))
    with caplog.at_level(logging.INFO):
        gateway.collect(timeout=5)
        # The token went with the first request; its 401 had the token checked: rejected.
        assert data_requests(gw) == ["/ivp/meters", "/auth/check_jwt"]
        for _ in range(9):  # a minute of scrapes 6 s apart
            clocks.advance(6)
            assert not gateway.collect(timeout=5).up
        assert data_requests(gw) == []
        clocks.advance(7)  # the 60 s window has passed: one request, still rejected
        gateway.collect(timeout=5)
        assert data_requests(gw) == ["/ivp/meters"]
        clocks.advance(100)  # inside the doubled (120 s) window
        gateway.collect(timeout=5)
        assert data_requests(gw) == []
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "rejected the token" in warnings[0].getMessage()


def test_a_new_token_in_the_token_file_ends_the_back_off_at_once(requests_mock, tmp_path, caplog):
    gw = StandIn("https://192.0.2.10", SERIAL_A).install(requests_mock)
    path = tmp_path / "token.jwt"
    path.write_text(make_token(SERIAL_A, "old"))
    clocks = Clocks()
    gateway = client("192.0.2.10", clocks, token_file=path)
    gateway.collect(timeout=5)
    fresh = make_token(SERIAL_A, "pasted")
    gw.accept.add(fresh)
    path.write_text(fresh)
    clocks.advance(5)
    with caplog.at_level(logging.INFO):
        assert gateway.collect(timeout=5).up
    assert fresh in gw.tokens_received()
    assert "accepts the token again" in caplog.text


def test_a_wrong_digest_password_is_a_credentials_error_retried_after_a_minute(requests_mock, caplog):
    gw = StandIn("https://192.0.2.10", SERIAL_A, firmware="D5.0.62")
    gw.routes["/api/v1/production/inverters"] = INVERTERS
    gw.install(requests_mock)
    clocks = Clocks()
    gateway = client("192.0.2.10", clocks, password=Secret("000000"))
    with caplog.at_level(logging.INFO):
        snap = gateway.collect(timeout=5)
        inverters = snap.endpoints["api_v1_inverters"]
        assert inverters.outcome is Outcome.UNAUTHORIZED
        assert inverters.detail == "password rejected for user envoy"
        assert inverters.url == "https://192.0.2.10/api/v1/production/inverters"
        assert "api_v1_inverters (/api/v1/production/inverters) is not available" not in caplog.text
        assert "/api/v1/production/inverters" in gw.asked()
        clocks.advance(30)
        snap = gateway.collect(timeout=5)
        assert snap.endpoints["api_v1_inverters"].ok is False
        assert "/api/v1/production/inverters" not in gw.asked()  # inside the 60 s window
        clocks.advance(31)
        gw.digest_ok = True  # the password was fixed meanwhile (or the gateway is back)
        snap = gateway.collect(timeout=5)
        assert "/api/v1/production/inverters" in gw.asked()
    assert snap.endpoints["api_v1_inverters"].ok
    assert "accepts the digest credentials again" in caplog.text


def test_an_installer_only_endpoint_is_named_as_such(requests_mock, caplog):
    gw = StandIn("https://192.0.2.10", SERIAL_A, firmware="R3.9.36", protected=("/ivp/meters",))
    gw.routes["/api/v1/production/inverters"] = INVERTERS
    gw.install(requests_mock)
    gateway = client("192.0.2.10", Clocks())
    with caplog.at_level(logging.INFO):
        snap = gateway.collect(timeout=5)
    assert "only the installer user may read it" in str(snap.endpoints["meters"].detail)
    assert "only the installer user may read it" in caplog.text


class CountingDemo(DemoGateway):
    """The loopback demo gateway (firmware 8: token auth), noting the path of each request."""

    def __init__(self) -> None:
        super().__init__(Plant(), "127.0.0.1", 0)
        self.asked: list[str] = []

    def handle(self, target: str, authorization: str, cookie: str) -> Response:
        self.asked.append(urlsplit(target).path)
        return super().handle(target, authorization, cookie)


NEEDS_TOKEN = (
    "firmware D8.2.4345 needs a token: set token, token_file, or enlighten_username and enlighten_password"
)


def warning_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.e2e
def test_a_token_era_gateway_without_any_token_source_is_asked_nothing_but_info(caplog):
    """No token, no token_file, no Enlighten credentials: each request would only earn a 401 (8
    of them and 8 warnings per collection before). Only /info (open, cached hourly) goes out,
    the endpoints show 0 with the reason, it is logged once, and a token given by a config
    reload is used at the next collection."""
    demo = CountingDemo().start()
    settings = GatewaySettings(name="home", host=demo.url)
    fleet = Fleet([settings], lambda s: GatewayClient(s, None))
    try:
        with caplog.at_level(logging.INFO):
            for _ in range(10):
                snap = fleet.clients()[0].collect(timeout=10)
            got = samples(scrape(GatewayCollector(fleet.clients(), 10.0)))
        assert demo.asked == ["/info"]
        data = sorted(key for key in snap.endpoints if key != "info")
        assert "production_json" in data and "meters" in data
        for key in data:
            assert value(got, "enphase_endpoint_up", gateway="home", endpoint=key) == 0
            assert snap.endpoints[key].outcome is Outcome.WITHHELD
            assert NEEDS_TOKEN in str(snap.endpoints[key].detail)
        assert value(got, "enphase_up", gateway="home") == 0
        warnings = warning_lines(caplog)
        assert len(warnings) == 1 and NEEDS_TOKEN in warnings[0]

        fleet.apply([replace(settings, token=Secret(demo.token))])  # the config now has one
        demo.asked.clear()
        assert fleet.clients()[0].collect(timeout=10).up
        assert "/production.json" in demo.asked or "/ivp/meters/readings" in demo.asked
    finally:
        fleet.apply([])
        demo.stop()


@pytest.mark.parametrize("content", [None, ""], ids=["token-file-missing", "token-file-empty"])
def test_a_token_file_without_a_token_withholds_every_data_request(requests_mock, tmp_path, caplog, content):
    gw = StandIn("https://192.0.2.10", SERIAL_A).install(requests_mock)
    path = tmp_path / "token.jwt"
    if content is not None:
        path.write_text(content)
    clocks = Clocks()
    gateway = client("192.0.2.10", clocks, token_file=path)
    with caplog.at_level(logging.INFO):
        for _ in range(10):
            snap = gateway.collect(timeout=5)
            clocks.advance(6)
        assert data_requests(gw) == []
        reason = "is empty" if content == "" else "cannot read the token file"
        warnings = warning_lines(caplog)
        assert len(warnings) == 1 and reason in warnings[0]
        assert not snap.up
        assert snap.endpoints["meters"].outcome is Outcome.WITHHELD
        assert reason in str(snap.endpoints["meters"].detail)  # the status page says why
        token = make_token(SERIAL_A)
        gw.accept.add(token)
        path.write_text(token)  # the user pastes one: asked at the next collection
        assert gateway.collect(timeout=5).up
    assert token in gw.tokens_received()


@pytest.mark.e2e
def test_an_enlighten_answer_trickled_byte_by_byte_is_cut_at_the_deadline(monkeypatch, tmp_path):
    """requests' timeout bounds each read only: a login answer trickled at a byte every 0.1 s
    would hold the collection for as long as Enlighten likes. The whole exchange is bounded."""
    monkeypatch.setattr("envoy_exporter.gateway.auth.enlighten.ENLIGHTEN_TIMEOUT_S", 1.0)
    server = standin.StandIn(standin.trickle_body)
    url = f"http://{server.host}"
    settings = GatewaySettings(name="roof", host="192.0.2.10", **cloud_settings(enlighten_url=url))  # type: ignore[arg-type]
    auth = Auth(settings, None, lambda endpoint, code: None)
    auth.configure(GatewayInfo(serial=SERIAL_A, firmware="D8.2.4345", web_tokens=True))
    outcome: list[BaseException | None] = []

    def fetch() -> None:
        try:
            auth.refresh(requests.Session(), "https://192.0.2.10")
            outcome.append(None)
        except Exception as exc:  # the new code says why the request is withheld
            outcome.append(exc)

    worker = threading.Thread(target=fetch, daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout=8)
    elapsed = time.monotonic() - started
    server.stop()
    assert not worker.is_alive(), "the Enlighten login was still being read after 8 s"
    assert elapsed < 4
    assert "enlighten_login: timed out after " in str(outcome[0])


def test_the_rejected_credentials_are_a_gauge_per_credential():
    fake = FakeClient("roof", credentials={"token": False, "enlighten": True})
    parsed = samples(scrape(GatewayCollector((fake,), 2.0)))
    assert value(parsed, "enphase_credentials_rejected", gateway="roof", credential="token") == 0
    assert value(parsed, "enphase_credentials_rejected", gateway="roof", credential="enlighten") == 1


def test_a_wrong_digest_password_is_a_rejected_credential_until_it_is_fixed(requests_mock):
    gw = StandIn("https://192.0.2.10", SERIAL_A, firmware="D5.0.62")
    gw.routes["/api/v1/production/inverters"] = INVERTERS
    gw.install(requests_mock)
    clocks = Clocks()
    gateway = client("192.0.2.10", clocks, password=Secret("000000"))
    gateway.collect(timeout=5)
    assert gateway.credentials_rejected() == {"password": True}
    clocks.advance(61)
    gw.digest_ok = True
    gateway.collect(timeout=5)
    assert gateway.credentials_rejected() == {"password": False}


def test_a_rejected_token_is_a_rejected_credential(requests_mock):
    StandIn("https://192.0.2.10", SERIAL_A).install(requests_mock)  # accepts nothing
    gateway = client("192.0.2.10", Clocks(), token=Secret(make_token(SERIAL_A)))
    gateway.collect(timeout=5)
    assert gateway.credentials_rejected() == {"token": True}


def test_an_accepted_token_is_no_rejected_credential(requests_mock):
    token = make_token(SERIAL_A)
    StandIn("https://192.0.2.10", SERIAL_A, accept={token}).install(requests_mock)
    gateway = client("192.0.2.10", Clocks(), token=Secret(token))
    assert gateway.collect(timeout=5).up
    assert gateway.credentials_rejected() == {"token": False}


def test_a_refused_enlighten_login_is_a_rejected_credential(requests_mock):
    StandIn("https://192.0.2.10", SERIAL_A).install(requests_mock)
    requests_mock.post(f"{ENLIGHTEN}/login/login.json", status_code=401, json={"message": "Invalid"})
    gateway = client("192.0.2.10", Clocks(), **cloud_settings())
    snapshot = gateway.collect(timeout=5)
    assert gateway.credentials_rejected() == {"token": False, "enlighten": True}
    assert f"Enlighten refused the login of {CLOUD_USER}" in str(snapshot.endpoints["production_json"].detail)


def test_an_enlighten_outage_is_no_rejected_credential(requests_mock):
    StandIn("https://192.0.2.10", SERIAL_A).install(requests_mock)
    requests_mock.post(f"{ENLIGHTEN}/login/login.json", status_code=503)
    gateway = client("192.0.2.10", Clocks(), **cloud_settings())
    gateway.collect(timeout=5)
    assert gateway.credentials_rejected() == {"token": False, "enlighten": False}
