"""One scrape against real gateway clients and the project's own simulated gateway on loopback:
each client owns its collections and their deadline, the scrape only waits and reads.

The gateways are ``envoy_exporter.demo``'s simulated IQ Gateway, made slow per path where a test
needs it; the clients, threads, sockets and deadlines are real.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from exporter_fakes import samples, scrape, value

from envoy_exporter.collector import GatewayCollector
from envoy_exporter.config.settings import DEFAULT_CACHE_TTL, GatewaySettings, Secret
from envoy_exporter.demo.server import DemoGateway, Response
from envoy_exporter.demo.simulator import Plant
from envoy_exporter.fleet.labels import Labels
from envoy_exporter.gateway.client import GatewayClient
from envoy_exporter.snapshot.outcome import Outcome

pytestmark = pytest.mark.e2e


class SlowGateway(DemoGateway):
    """The demo gateway, answering the paths in ``delays`` that many seconds late."""

    def __init__(self) -> None:
        super().__init__(Plant(), "127.0.0.1", 0)
        self.delays: dict[str, float] = {}
        self.asked: list[tuple[float, str]] = []
        self.start()

    def handle(self, target: str, authorization: str, cookie: str) -> Response:
        path = urlsplit(target).path
        self.asked.append((time.monotonic(), path))
        time.sleep(self.delays.get(path, 0.0))
        return super().handle(target, authorization, cookie)


@pytest.fixture
def gateways() -> Iterator[list[SlowGateway]]:
    made: list[SlowGateway] = []
    yield made
    for gateway in made:
        gateway.stop()


def slow_gateway(gateways: list[SlowGateway]) -> SlowGateway:
    gateways.append(SlowGateway())
    return gateways[-1]


def settings_for(gateway: SlowGateway, name: str | None = "demo", **ttl: float) -> GatewaySettings:
    return GatewaySettings(
        name=name, host=gateway.url, token=Secret(gateway.token), cache_ttl={**DEFAULT_CACHE_TTL, **ttl}
    )


def scrape_once(client: GatewayClient, timeout: float) -> dict:
    return samples(scrape(GatewayCollector([client], timeout)))


def test_a_later_scrape_with_a_longer_budget_gets_fresh_data(gateways) -> None:
    """Scrape A (0.2 s budget) starts a collection whose production data takes over a second;
    scrape B joins it 50 ms later with a 5 s budget. B waits for it and gets fresh data, up 1;
    A does not. (When the scrape layer kept its own deadline, B inherited A's and got up 0.)"""
    gateway = slow_gateway(gateways)
    client = GatewayClient(settings_for(gateway, production=0.0, readings=0.0), None)
    try:
        assert client.collect(timeout=30).up  # detection done; the next collection is a plain one
        gateway.delays = {"/production.json": 1.0, "/ivp/meters/readings": 1.0}
        got: dict[str, dict] = {}
        a = threading.Thread(target=lambda: got.update(a=scrape_once(client, 0.2)))
        a.start()
        time.sleep(0.05)
        started = time.monotonic()
        got["b"] = scrape_once(client, 5.0)
        waited = time.monotonic() - started
        a.join(10)
    finally:
        client.close()
    assert 0.9 < waited < 4.5
    assert value(got["b"], "enphase_up", gateway="demo") == 1
    assert value(got["b"], "enphase_data_age_seconds", gateway="demo") < 1.0
    assert value(got["a"], "enphase_up", gateway="demo") == 0
    # One collection served both: each slow path was asked once after the first collection.
    slow = [path for at, path in gateway.asked if at >= started - 0.05 and path in gateway.delays]
    assert len(slow) == len(set(slow))


def test_a_gateway_that_never_answered_ages_from_the_exporter_start() -> None:
    with socket.socket() as s:  # a loopback port nobody listens on: every request is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wall = [1_750_000_000.0]
    client = GatewayClient(
        GatewaySettings(name="gone", host=f"http://127.0.0.1:{port}", timeout=1.0),
        None,
        wall=lambda: wall[0],
    )
    try:
        ages = []
        for _ in range(3):
            wall[0] += 60.0
            client.collect(timeout=10)
            got = samples(scrape(GatewayCollector([client], 5.0, wall=lambda: wall[0])))
            assert value(got, "enphase_up", gateway="gone") == 0
            ages.append(value(got, "enphase_data_age_seconds", gateway="gone"))
    finally:
        client.close()
    assert ages == [60.0, 120.0, 180.0]


def test_two_gateways_reporting_one_serial_never_serve_duplicate_series(gateways, caplog) -> None:
    # Two simulated gateways report the same serial; neither is named, so both would be
    # labelled by it. The second one is an error naming both hosts, logged once.
    first, second = slow_gateway(gateways), slow_gateway(gateways)
    labels = Labels()
    clients = [
        GatewayClient(settings_for(gateway, name=None), None, labels=labels) for gateway in (first, second)
    ]
    try:
        assert clients[0].collect(timeout=20).up  # the first to answer holds the label
        with caplog.at_level(logging.ERROR):
            for _ in range(3):
                got = samples(scrape(GatewayCollector(clients, 20.0)))  # asserts no duplicate series
        assert value(got, "enphase_up", gateway=first.serial) == 1
        assert value(got, "enphase_up", gateway=second.url) == 0
        assert value(got, "enphase_production_power_watts", gateway=second.url, source="meter") is None
        assert value(got, "enphase_endpoint_up", gateway=second.url, endpoint="info") == 0
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1
        assert first.url in errors[0] and second.url in errors[0] and first.serial in errors[0]
        # The gateway that held the serial goes away: the other one may serve it now.
        clients[0].close()
        assert clients[1].collect(timeout=20).up
        assert clients[1].name == first.serial
    finally:
        for client in clients:
            client.close()


def test_named_gateways_may_report_one_serial(gateways) -> None:
    # Their labels differ, so their series do too (the conformance check's captures share serials).
    first, second = slow_gateway(gateways), slow_gateway(gateways)
    labels = Labels()
    clients = [
        GatewayClient(settings_for(gateway, name=name), None, labels=labels)
        for gateway, name in ((first, "a"), (second, "b"))
    ]
    try:
        got = samples(scrape(GatewayCollector(clients, 20.0)))
    finally:
        for client in clients:
            client.close()
    assert value(got, "enphase_up", gateway="a") == 1
    assert value(got, "enphase_up", gateway="b") == 1


def test_a_serial_that_is_another_unnamed_gateways_host_label_is_refused(caplog) -> None:
    # An unnamed gateway goes by its host until its /info answers ("envoy" here, down at the
    # moment). Another gateway reporting the serial "envoy" took the same label: two gateways'
    # series under gateway="envoy", and /probe?target=envoy could find the wrong one.
    from standin import StandIn, answer

    info = (
        b"<?xml version='1.0'?><envoy_info><device><sn>envoy</sn><pn>800-00654-r08</pn>"
        b"<software>D5.0.62</software></device></envoy_info>"
    )

    def impostor(conn, request) -> None:
        answer(
            info if request.path == "/info" else b"{}",
            "200 OK" if request.path == "/info" else "404 Not Found",
        )(conn, request)

    labels = Labels()
    down = GatewayClient(GatewaySettings(name=None, host="envoy"), None, labels=labels)
    with StandIn(impostor) as gateway:
        other = GatewayClient(
            GatewaySettings(name=None, host=f"http://{gateway.host}", timeout=3.0), None, labels=labels
        )
        try:
            with caplog.at_level(logging.ERROR):
                snapshot = other.collect(timeout=10)
        finally:
            other.close()
            down.close()
    assert snapshot.endpoints["info"].outcome is Outcome.CONFLICT
    assert other.name != "envoy" and down.name == "envoy"
    assert "the gateway at envoy" in caplog.text


def test_a_client_closed_by_a_reload_does_not_keep_its_label_from_its_successor(gateways) -> None:
    # A scrape that took the client list before a reload still collects the old client once
    # more. That collection took the serial label again, for good: the new client of the same
    # gateway was "already served by the gateway at <its own host>", down until a restart.
    gateway = slow_gateway(gateways)
    labels = Labels()
    settings = settings_for(gateway, name=None)
    old = GatewayClient(settings, None, labels=labels)
    try:
        assert old.collect(timeout=20).up
        new = GatewayClient(replace(settings, timeout=settings.timeout + 1), None, labels=labels)
        old.close()  # what Fleet.apply does after making the new client
        old.collect(timeout=20)  # the late scrape
        assert new.collect(timeout=20).up
        assert new.name == gateway.serial
    finally:
        old.close()
        new.close()


class CountingPool:
    """A worker pool that counts what is handed to it."""

    def __init__(self) -> None:
        self.submitted = 0

    def submit(self, task) -> None:
        self.submitted += 1
        threading.Thread(target=task, daemon=True).start()


def test_a_probe_answered_from_the_cache_stays_on_the_scrapes_thread(gateways) -> None:
    gateway = slow_gateway(gateways)
    pool = CountingPool()
    client = GatewayClient(settings_for(gateway), None, workers=pool)
    try:
        assert client.collect(timeout=30).up
        pool.submitted = 0
        asked = len(gateway.asked)
        got = scrape_once(client, 5.0)  # every endpoint still in the cache
        assert value(got, "enphase_up", gateway="demo") == 1
        assert pool.submitted == 0 and len(gateway.asked) == asked
        time.sleep(5.1)  # the meter readings' lifetime: the next collection asks the gateway
        got = scrape_once(client, 5.0)
        assert value(got, "enphase_up", gateway="demo") == 1
        assert pool.submitted == 1  # it went to a worker, once
        assert len(gateway.asked) > asked
    finally:
        client.close()
