"""What an announcement on the LAN can and cannot do (the trust model of docs/security.md).

The fleet is wired as the exporter wires it (shared labels, one Enlighten account registry,
configured gateways telling discovery their serial), the gateways and Enlighten are requests-mock
stand-ins, announcements are handed to ``Discovery.announce`` as the browser's worker does, and
the certificate each address shows is a table (``Certificates``), so no network is involved.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import standin
from conftest import Clocks
from test_credentials import (
    ENLIGHTEN,
    ENTREZ,
    PRODUCTION,
    SERIAL_A,
    SERIAL_B,
    Cloud,
    StandIn,
    cloud_settings,
    info_xml,
    make_token,
)

from envoy_exporter.config.load import ConfigError, load_config
from envoy_exporter.config.settings import DEFAULT_CACHE_TTL, DiscoverySettings, GatewaySettings, Secret
from envoy_exporter.fleet import discovery as discovery_module
from envoy_exporter.fleet.discovery import Discovery, Found
from envoy_exporter.fleet.labels import Labels
from envoy_exporter.fleet.pins import Pins, fingerprint
from envoy_exporter.fleet.registry import Fleet
from envoy_exporter.gateway.auth.accounts import EnlightenAccounts
from envoy_exporter.gateway.auth.serial_claims import SerialClaims
from envoy_exporter.gateway.client import GatewayClient

NO_CACHE = {family: 0.0 for family in DEFAULT_CACHE_TTL}
DEFAULTS = {**cloud_settings(), "cache_ttl": NO_CACHE, "timeout": 2.0}
HOME = "192.0.2.10"
ROGUE = "192.0.2.66"


@dataclass
class Certificates:
    """The certificate fingerprint each address shows (none: no TLS there)."""

    shown: dict[str, str] = field(default_factory=dict)
    probed: list[str] = field(default_factory=list)

    def __call__(self, address: str, port: int) -> str | None:
        self.probed.append(address)
        return self.shown.get(address)


class Site:
    """The exporter's fleet and discovery, as ``cli.serve`` wires them."""

    def __init__(
        self,
        configured: Sequence[GatewaySettings],
        state_dir: Path,
        certificates: Certificates | None = None,
        settings: DiscoverySettings | None = None,
        networks: Sequence[str] = ("192.0.2.0/24",),
        defaults: dict | None = None,
    ) -> None:
        self.clocks = Clocks()
        self.certificates = certificates or Certificates()
        labels, accounts, claims = Labels(), EnlightenAccounts(self.clocks.clock), SerialClaims()
        self.discovery: Discovery | None = None
        self.waiting: list[str] = []

        def make_client(gateway: GatewaySettings) -> GatewayClient:
            return GatewayClient(
                gateway,
                state_dir,
                clock=self.clocks.clock,
                wall=self.clocks.now,
                labels=labels,
                accounts=accounts,
                claims=claims,
                on_serial=lambda: self.discovery.reconsider() if self.discovery else None,
            )

        self.fleet = Fleet([g for g in configured if not g.found_by_serial], make_client)
        self.discovery = Discovery(
            self.fleet.apply,
            configured,
            DEFAULTS if defaults is None else defaults,
            settings or DiscoverySettings(zeroconf=True),
            pins=Pins(state_dir),
            networks=[ipaddress.ip_network(n) for n in networks],
            reported=lambda: {
                s.host: c.serial for s, c in self.fleet.gateways() if not s.discovered and not s.serial
            },
            waiting=self._wait,
            probe=self.certificates,
        )
        self.discovery.reconsider()

    def _wait(self, names: Sequence[str]) -> None:
        self.waiting = list(names)
        self.fleet.wait_for(names)

    def collect(self) -> dict[str, bool]:
        ups = [(c, c.collect(timeout=10).up) for c in self.fleet.clients()]
        return {c.name: up for c, up in ups}

    def hosts(self) -> list[tuple[str, str]]:
        return [(c.name, c.host) for c in self.fleet.clients()]

    def close(self) -> None:
        self.fleet.apply(())


def configured(**fields) -> GatewaySettings:
    return GatewaySettings(**{"name": None, **DEFAULTS, **fields})


@pytest.fixture
def cloud(requests_mock) -> Cloud:
    return Cloud().install(requests_mock)


def logins(requests_mock) -> int:
    return sum(1 for r in requests_mock.request_history if r.url == f"{ENLIGHTEN}/login/login.json")


def token_requests(requests_mock) -> int:
    return sum(1 for r in requests_mock.request_history if r.url == f"{ENTREZ}/tokens")


# --------------------------------------------------------------------------------------------
# The configuration settles identity


@pytest.mark.parametrize("order", ["after-its-info", "before-its-info"])
def test_an_announcement_of_a_configured_gateways_serial_gets_nothing(requests_mock, tmp_path, cloud, order):
    home = StandIn(f"https://{HOME}", SERIAL_A).install(requests_mock)
    rogue = StandIn(f"https://{ROGUE}", SERIAL_A).install(requests_mock)  # claims the same serial
    cloud.gateways[SERIAL_A] = home
    site = Site([configured(host=HOME)], tmp_path)  # by host, without serial
    if order == "after-its-info":
        assert site.collect() == {SERIAL_A: True}
    site.discovery.announce(Found(SERIAL_A, ROGUE, 80))
    for _ in range(3):
        assert site.collect() == {SERIAL_A: True}
        site.clocks.advance(60)
    assert site.hosts() == [(SERIAL_A, HOME)]  # not moved, not served twice
    assert rogue.seen == [] and rogue.tokens_received() == set()
    assert (logins(requests_mock), token_requests(requests_mock)) == (1, 1)
    site.close()


def test_a_gateway_configured_by_host_name_is_not_served_twice_at_its_address(requests_mock, tmp_path, cloud):
    cloud.gateways[SERIAL_A] = StandIn("https://envoy.local", SERIAL_A).install(requests_mock)
    StandIn(f"https://{HOME}", SERIAL_A).install(requests_mock)
    site = Site([configured(host="envoy.local")], tmp_path)
    site.discovery.announce(Found(SERIAL_A, HOME, 80))  # before its first /info
    assert site.collect() == {SERIAL_A: True}
    site.discovery.announce(Found(SERIAL_A, HOME, 80))
    site.collect()
    assert site.hosts() == [(SERIAL_A, "envoy.local")]
    site.close()


def test_discovered_gateways_wait_for_the_configured_ones_to_tell_their_serial(
    requests_mock, tmp_path, cloud
):
    cloud.gateways[SERIAL_A] = StandIn(f"https://{HOME}", SERIAL_A).install(requests_mock)
    cloud.gateways[SERIAL_B] = StandIn("https://192.0.2.11", SERIAL_B).install(requests_mock)
    site = Site([configured(host=HOME)], tmp_path)
    site.discovery.announce(Found(SERIAL_B, "192.0.2.11", 80))
    assert site.hosts() == [(HOME, HOME)]  # held back: the configured one has not answered yet
    site.collect()
    assert site.hosts() == [(SERIAL_A, HOME), (SERIAL_B, "192.0.2.11")]
    assert site.collect() == {SERIAL_A: True, SERIAL_B: True}
    assert logins(requests_mock) == 1  # one login serves both gateways of the account
    site.close()


def test_a_configured_gateway_that_stays_down_holding_discovery_back_is_one_warning(
    requests_mock, tmp_path, cloud, caplog, monkeypatch
):
    monkeypatch.setattr(discovery_module, "HOLD_WARNING_S", 0.2, raising=False)
    requests_mock.get(re.compile(f"https?://{HOME}/.*"), exc=requests.ConnectionError)
    site = Site([configured(host=HOME)], tmp_path)
    with caplog.at_level(logging.INFO):
        for n in range(5):  # more and more gateways held back, and the configured one down
            site.discovery.announce(Found(f"48230100010{n}", f"192.0.2.{30 + n}", 80))
            site.collect()
        time.sleep(1.0)
    assert site.hosts() == [(HOME, HOME)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "discov" in r.name]
    assert len(warnings) == 1
    assert f"the configured gateway at {HOME}" in warnings[0] and "give it its serial" in warnings[0]
    infos = [r.getMessage() for r in caplog.records if "wait until the configured gateway" in r.getMessage()]
    assert len(infos) == 1
    site.close()
    site.discovery.close()


# --------------------------------------------------------------------------------------------
# Moves: the token follows only to an address that shows the pinned certificate


def test_a_move_needs_the_pinned_certificate_and_never_fetches_a_token(
    requests_mock, tmp_path, cloud, caplog
):
    first, real_new, rogue_at = "192.0.2.20", "192.0.2.21", "192.0.2.66"
    genuine = StandIn(f"https://{first}", SERIAL_B).install(requests_mock)
    moved = StandIn(f"https://{real_new}", SERIAL_B).install(requests_mock)
    rogue = StandIn(f"https://{rogue_at}", SERIAL_B).install(requests_mock)
    cloud.gateways[SERIAL_B] = genuine
    certs = Certificates({first: "a" * 64, real_new: "a" * 64, rogue_at: "e" * 64})
    site = Site([], tmp_path, certs)
    site.discovery.announce(Found(SERIAL_B, first, 80))
    assert site.collect() == {SERIAL_B: True}
    assert (tmp_path / "pins" / f"{SERIAL_B}.json").stat().st_mode & 0o777 == 0o600

    with caplog.at_level(logging.WARNING):
        for _ in range(8):  # one serial announced alternately at two addresses
            site.discovery.announce(Found(SERIAL_B, rogue_at, 80))
            site.collect()
            site.discovery.announce(Found(SERIAL_B, first, 80))
            site.collect()
    assert site.hosts() == [(SERIAL_B, first)]
    assert rogue.seen == []
    warnings = [r.getMessage() for r in caplog.records if "does not show the certificate" in r.getMessage()]
    assert len(warnings) == 1 and f"delete {tmp_path / 'pins' / (SERIAL_B + '.json')}" in warnings[0]

    # The real gateway moves (DHCP): same certificate, so its token follows it from the cache
    # (an hour later: the account's memory of the token it issued is long gone).
    site.clocks.advance(3600)
    moved.accept |= genuine.accept
    site.discovery.announce(Found(SERIAL_B, real_new, 80))
    assert site.hosts() == [(SERIAL_B, real_new)]
    assert site.collect() == {SERIAL_B: True}
    assert moved.tokens_received() == genuine.accept
    assert (logins(requests_mock), token_requests(requests_mock)) == (1, 1)
    site.close()


def test_after_a_restart_the_pin_still_holds(requests_mock, tmp_path, cloud):
    StandIn("https://192.0.2.20", SERIAL_B).install(requests_mock)
    rogue = StandIn(f"https://{ROGUE}", SERIAL_B).install(requests_mock)
    certs = Certificates({"192.0.2.20": "a" * 64, ROGUE: "e" * 64})
    Site([], tmp_path, certs).discovery.announce(Found(SERIAL_B, "192.0.2.20", 80))
    restarted = Site([], tmp_path, certs)
    restarted.discovery.announce(Found(SERIAL_B, ROGUE, 80))  # first heard after the restart
    assert restarted.hosts() == []
    restarted.collect()
    assert rogue.seen == []
    # What a user does after a legitimate change: delete the pin.
    (tmp_path / "pins" / f"{SERIAL_B}.json").unlink()
    again = Site([], tmp_path, certs)
    again.discovery.announce(Found(SERIAL_B, ROGUE, 80))
    assert again.hosts() == [(SERIAL_B, ROGUE)]


def test_pins_that_cannot_be_saved_are_one_warning_until_saving_works_again(tmp_path, caplog, monkeypatch):
    import errno

    from envoy_exporter.fleet import pins

    full = {"on": True}
    real_write = pins.write_atomic

    def write(path: Path, data: bytes) -> None:
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(path, data)

    monkeypatch.setattr(pins, "write_atomic", write)
    certs = Certificates({f"192.0.2.{n}": f"{n:02d}" * 32 for n in range(40, 50)})
    site = Site([], tmp_path, certs)
    with caplog.at_level(logging.INFO, logger="envoy_exporter.fleet.pins"):
        for n in range(40, 45):
            site.discovery.announce(Found(f"4823010001{n}", f"192.0.2.{n}", 80))
        full["on"] = False
        for n in range(45, 50):
            site.discovery.announce(Found(f"4823010001{n}", f"192.0.2.{n}", 80))
    said = [r.getMessage() for r in caplog.records if r.name == "envoy_exporter.fleet.pins"]
    assert len(said) == 2, said
    assert "No space left on device" in said[0] and "saved" in said[1]
    assert len(list((tmp_path / "pins").glob("*.json"))) == 5


def test_many_new_clients_for_one_serial_ask_enlighten_once(requests_mock, tmp_path, cloud):
    """A gateway re-created again and again (moves, reloads) without a token cache."""
    cloud.gateways[SERIAL_A] = StandIn(f"https://{HOME}", SERIAL_A).install(requests_mock)
    accounts, clocks = EnlightenAccounts(Clocks().clock), Clocks()
    for _ in range(8):
        client = GatewayClient(
            configured(host=HOME), None, clock=clocks.clock, wall=clocks.now, accounts=accounts
        )
        assert client.collect(timeout=10).up
        client.close()
        clocks.advance(7)
    assert (logins(requests_mock), token_requests(requests_mock)) == (1, 1)


def tls_gateway(serial: str, context) -> standin.StandIn:
    """A firmware-8 gateway on loopback, https only, that answers anything with a token."""
    info = info_xml(serial, "D8.2.4345").encode()

    def script(conn: standin.Connection, request: standin.Request) -> None:
        if request.path == "/info":
            standin.answer(info)(conn, request)
        elif "authorization" not in request.headers and "cookie" not in request.headers:
            standin.answer(b"", "401 Unauthorized")(conn, request)
        else:
            answers = {"/auth/check_jwt": b"<html>Valid token.</html>", "/production.json": PRODUCTION}
            body = answers.get(request.path.split("?")[0])
            status = "200 OK" if body else "404 Not Found"
            standin.answer(body.encode() if isinstance(body, str) else body or b"{}", status)(conn, request)

    return standin.StandIn(script, tls=context)


def tokens_sent(gateway: standin.StandIn) -> list[str]:
    return [r.path for r in gateway.requests if "authorization" in r.headers]


@pytest.mark.e2e
def test_the_pinned_certificate_is_checked_on_every_connection_not_only_at_the_announcement(tmp_path, caplog):
    """The address was proven when the announcement was weighed; later another device answers
    there (the gateway's old DHCP lease, or a relay that stops relaying): it gets no token."""
    genuine, other = standin.make_cert(tmp_path, "envoy"), standin.make_cert(tmp_path, "other")
    gateway = tls_gateway(SERIAL_B, standin.server_context(*genuine))
    defaults = {"token": Secret(make_token(SERIAL_B)), "cache_ttl": NO_CACHE, "timeout": 2.0}
    site = Site([], tmp_path, fingerprint, networks=["127.0.0.0/8"], defaults=defaults)
    try:
        site.discovery.announce(Found(SERIAL_B, "127.0.0.1", gateway.port))
        assert site.collect() == {SERIAL_B: True}
        assert tokens_sent(gateway)
        gateway.requests.clear()

        gateway.tls = standin.server_context(*other)  # another certificate at the same address
        gateway.drop()
        site.clocks.advance(60)
        site.collect()
        assert tokens_sent(gateway) == []
        assert "it is not the one this gateway showed when it was first found" in caplog.text
        assert {r.scheme for r in gateway.requests} <= {"https"}  # and no plain-http fallback
    finally:
        site.close()
        gateway.stop()


@pytest.mark.e2e
def test_a_move_nothing_could_prove_gets_no_token_even_if_the_new_address_speaks_tls_later(tmp_path):
    """Neither address showed a certificate when the move was weighed (the genuine one busy, the
    announcer refusing the check's handshake): the gateway may follow, as a gateway before
    firmware 7 must, but nothing that needs proof follows it: no token, over https or not."""
    certificate = standin.make_cert(tmp_path, "envoy")
    genuine = tls_gateway(SERIAL_B, standin.server_context(*certificate))
    rogue = tls_gateway(SERIAL_B, standin.server_context(*standin.make_cert(tmp_path, "rogue")))
    defaults = {"token": Secret(make_token(SERIAL_B)), "cache_ttl": NO_CACHE, "timeout": 2.0}
    site = Site([], tmp_path, Certificates(), networks=["127.0.0.0/8"], defaults=defaults)
    try:
        site.discovery.announce(Found(SERIAL_B, "127.0.0.1", genuine.port))
        assert site.collect() == {SERIAL_B: True}
        site.discovery.announce(Found(SERIAL_B, "127.0.0.1", rogue.port))
        site.clocks.advance(60)
        site.collect()
        assert tokens_sent(rogue) == []
    finally:
        site.close()
        genuine.stop()
        rogue.stop()


# --------------------------------------------------------------------------------------------
# A gateway configured by serial alone


def test_a_gateway_named_by_serial_alone_is_found_and_keeps_its_name(requests_mock, tmp_path, cloud):
    cloud.gateways[SERIAL_B] = StandIn("https://192.0.2.30", SERIAL_B).install(requests_mock)
    entry = configured(name="barn", host="", serial=SERIAL_B)
    site = Site([entry], tmp_path, Certificates({"192.0.2.30": "b" * 64}))
    assert site.hosts() == [] and site.waiting == ["barn"] and site.fleet.waiting("barn")
    site.discovery.announce(Found(SERIAL_B, "192.0.2.30", 80))
    assert site.hosts() == [("barn", "192.0.2.30")] and site.waiting == []
    assert site.collect() == {"barn": True}
    assert (tmp_path / "counters-barn.json").exists()
    site.close()


def test_a_gateway_named_by_serial_alone_is_not_moved_by_another_certificate(requests_mock, tmp_path, cloud):
    genuine = StandIn("https://192.0.2.30", SERIAL_B).install(requests_mock)
    rogue = StandIn(f"https://{ROGUE}", SERIAL_B).install(requests_mock)
    cloud.gateways[SERIAL_B] = genuine
    entry = configured(name="barn", host="", serial=SERIAL_B)
    site = Site([entry], tmp_path, Certificates({"192.0.2.30": "b" * 64, ROGUE: "e" * 64}))
    site.discovery.announce(Found(SERIAL_B, "192.0.2.30", 80))
    assert site.collect() == {"barn": True}
    for _ in range(4):
        site.discovery.announce(Found(SERIAL_B, ROGUE, 80))
        site.clocks.advance(60)
        assert site.collect() == {"barn": True}
    assert site.hosts() == [("barn", "192.0.2.30")]
    assert rogue.seen == []
    assert (logins(requests_mock), token_requests(requests_mock)) == (1, 1)
    site.close()


def test_a_serial_only_entry_is_valid_with_discovery_and_checked_without(tmp_path, capsys):
    from envoy_exporter.cli import main

    config = tmp_path / "exporter.yml"
    config.write_text(f'discovery: {{zeroconf: true}}\ngateways:\n  - {{name: barn, serial: "{SERIAL_B}"}}\n')
    (gateway,) = load_config(config, env={}).gateways
    assert (gateway.name, gateway.host, gateway.serial, gateway.found_by_serial) == (
        "barn",
        "",
        SERIAL_B,
        True,
    )
    assert main(["--config.file", str(config), "--check-config"]) == 0
    config.write_text(f'gateways:\n  - {{name: barn, serial: "{SERIAL_B}"}}\n')
    with pytest.raises(ConfigError) as refused:
        load_config(config, env={})
    assert refused.value.key == "gateways[0].host"
    assert "set discovery.zeroconf" in refused.value.message


# --------------------------------------------------------------------------------------------
# Bounds


def test_discovered_gateways_are_bounded_and_said_once(tmp_path, caplog):
    site = Site([], tmp_path, settings=DiscoverySettings(zeroconf=True, max_gateways=3))
    with caplog.at_level(logging.WARNING):
        for n in range(200):
            site.discovery.announce(Found(f"4823010{n:05d}", f"192.0.2.{n % 250 + 1}", 80))
    assert len(site.hosts()) == 3
    assert caplog.text.count("discovery.max_gateways") == 1


def test_only_allowed_serials_and_local_addresses_are_served(tmp_path):
    settings = DiscoverySettings(zeroconf=True, serials=(SERIAL_A,))
    site = Site([], tmp_path, settings=settings, networks=["192.0.2.0/24"])
    site.discovery.announce(Found(SERIAL_B, "192.0.2.40", 80))  # not allowed
    site.discovery.announce(Found(SERIAL_A, "198.51.100.7", 80))  # not on the browsed networks
    site.discovery.announce(Found(SERIAL_A, "127.0.0.1", 80))  # loopback, not browsed
    assert site.hosts() == [] and site.certificates.probed == []
    site.discovery.announce(Found(SERIAL_A, "192.0.2.41", 80))
    assert site.hosts() == [(SERIAL_A, "192.0.2.41")]


def test_nothing_refills_the_fleet_after_discovery_is_closed(requests_mock, tmp_path, cloud):
    cloud.gateways[SERIAL_A] = StandIn(f"https://{HOME}", SERIAL_A).install(requests_mock)
    site = Site([configured(host=HOME)], tmp_path)
    site.discovery.announce(Found(SERIAL_B, "192.0.2.11", 80))  # held back until HOME answers
    (client,) = site.fleet.clients()
    site.discovery.close()
    site.close()  # shutting down: the fleet is emptied
    assert client.collect(timeout=10).up  # a collection still running tells its serial now
    assert site.hosts() == []


class SlowCertificates(Certificates):
    """Addresses in ``silent`` accept a connection and never finish the TLS handshake: the
    check waits its whole timeout (here ``SILENT_S``) there."""

    SILENT_S = 1.0

    def __init__(self, silent: set[str]) -> None:
        super().__init__()
        self.silent = silent

    def __call__(self, address: str, port: int) -> str | None:
        if address in self.silent:
            time.sleep(self.SILENT_S)
        return super().__call__(address, port)


def test_announcements_at_addresses_that_never_answer_do_not_delay_another_gateway(tmp_path):
    silent = {f"192.0.2.{n}" for n in range(100, 108)}
    site = Site([], tmp_path, SlowCertificates(silent))
    try:
        for n, address in enumerate(sorted(silent)):  # one packet of 8 such announcements...
            site.discovery.announce_later(Found(f"48230100090{n}", address, 80))
        started = time.monotonic()
        site.discovery.announce_later(Found(SERIAL_A, "192.0.2.50", 80))  # ...then a real gateway
        while (SERIAL_A, "192.0.2.50") not in site.hosts() and time.monotonic() - started < 20:
            time.sleep(0.02)
        took = time.monotonic() - started
        assert took < SlowCertificates.SILENT_S / 2, f"found after {took:.1f} s"
        deadline = time.monotonic() + 10
        while len(site.hosts()) < 9 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(site.hosts()) == 9  # the others are still weighed, each on its own
    finally:
        site.discovery.close()
        site.close()


@pytest.mark.e2e
def test_probe_and_sd_for_a_gateway_not_found_yet(tmp_path):
    import http.client
    import json
    import threading

    from envoy_exporter.web.server import make_server

    site = Site([configured(name="barn", host="", serial=SERIAL_B)], tmp_path)
    server = make_server("127.0.0.1:0", site.fleet)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    server.ready.set()
    try:

        def get(path: str) -> tuple[int, bytes]:
            conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()

        assert get("/probe?target=barn") == (
            503,
            b"Gateway 'barn' is configured by serial and not found on the network yet\n",
        )
        assert get("/probe?target=elsewhere")[0] == 400
        status, body = get("/sd")
        assert status == 200 and json.loads(body) == []  # nothing to scrape until it is found
    finally:
        server.shutdown()
        server.server_close()
