"""Zeroconf discovery: announcements parsed, merged with the configuration, followed by serial.

The browser is tested against an announcer of our own, registered with python-zeroconf on
127.0.0.1 only: multicast on the loopback interface, nothing sent on a real network. Serials are
random per test, so parallel runs on one machine cannot mix their announcements up.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from envoy_exporter.config.settings import DEFAULT_CACHE_TTL, GatewaySettings, Secret
from envoy_exporter.fleet.discovery import (
    SERVICE_TYPE,
    Discovery,
    Found,
    ZeroconfBrowser,
    merge,
    parse_announcement,
)

zeroconf = pytest.importorskip("zeroconf")

DEFAULTS = {
    "enlighten_username": "me@example.com",
    "enlighten_password": Secret("pw"),
    "cache_ttl": DEFAULT_CACHE_TTL,
}
WAIT_S = 15.0


def random_serial() -> str:
    return str(random.randrange(10**11, 10**12))


def test_announcements_are_parsed():
    found = parse_announcement(
        {b"serialnum": b"122212345678", b"protovers": b"7.6.175"}, ["192.168.1.50"], 80
    )
    assert found == Found("122212345678", "192.168.1.50", 80)
    assert found.host == "192.168.1.50"
    # IPv4 preferred, link-local IPv6 never (a URL cannot carry its zone).
    assert parse_announcement(
        {b"serialnum": b"122212345678"}, ["fe80::1", "fd00::5", "10.0.0.9"], 80
    ).address == ("10.0.0.9")
    assert (
        parse_announcement({b"serialnum": b"122212345678"}, ["fe80::1", "fd00::5"], 443).host
        == "https://[fd00::5]"
    )
    assert parse_announcement({b"serialnum": b"122212345678"}, ["127.0.0.1"], 8080).host == "127.0.0.1:8080"


@pytest.mark.parametrize(
    ("properties", "addresses", "port"),
    [
        ({}, ["10.0.0.9"], 80),
        ({b"serialnum": None}, ["10.0.0.9"], 80),
        ({b"serialnum": b"x" * 100_000}, ["10.0.0.9"], 80),  # a serial is a short run of digits
        ({b"serialnum": b"12345678901234567890123"}, ["10.0.0.9"], 80),
        ({b"serialnum": b"\xff\xfe"}, ["10.0.0.9"], 80),
        ({b"serialnum": b"122212345678"}, [], 80),
        ({b"serialnum": b"122212345678"}, ["fe80::1", "not-an-ip", "0.0.0.0", "224.0.0.251"], 80),
        ({b"serialnum": b"122212345678"}, ["10.0.0.9"], 0),
    ],
)
def test_unusable_announcements_are_ignored(properties, addresses, port):
    assert parse_announcement(properties, addresses, port) is None


def test_found_gateways_are_served_under_their_serial_with_the_defaults():
    configured = [GatewaySettings(name="home", host="192.168.1.50", serial="122212345678")]
    found = [Found("333312345678", "192.168.1.77", 80), Found("222212345678", "192.168.1.66", 80)]
    merged = merge(configured, found, DEFAULTS)
    assert merged[0] is configured[0]
    assert [(g.name, g.host, g.serial) for g in merged[1:]] == [
        ("222212345678", "192.168.1.66", "222212345678"),
        ("333312345678", "192.168.1.77", "333312345678"),
    ]
    assert all(g.enlighten_username == "me@example.com" and g.enlighten_password == "pw" for g in merged[1:])
    assert all(g.token is None and g.token_file is None for g in merged[1:])


@pytest.mark.parametrize(
    "entry",
    [
        GatewaySettings(name="home", host="192.168.1.50", serial="122212345678"),  # by serial, anywhere
        GatewaySettings(name=None, host="https://192.168.1.77/"),  # by address (its label comes from /info)
        GatewaySettings(name="122212345678", host="envoy.local"),  # a label that is its serial
    ],
)
def test_a_configured_entry_claims_a_found_gateway(entry):
    assert merge([entry], [Found("122212345678", "192.168.1.77", 80)], DEFAULTS) == [entry]


def test_discovery_applies_configured_plus_found_and_follows_a_move():
    applied: list[list[GatewaySettings]] = []
    configured = [GatewaySettings(name="home", host="192.168.1.50", serial="122212345678")]
    discovery = Discovery(applied.append, configured, DEFAULTS)
    discovery.announce(Found("222212345678", "192.168.1.66", 80))
    discovery.announce(Found("222212345678", "192.168.1.66", 80))  # the same again: nothing to do
    discovery.announce(Found("222212345678", "192.168.1.99", 80))  # DHCP gave it a new address
    assert [[g.host for g in gateways] for gateways in applied] == [
        ["192.168.1.50", "192.168.1.66"],
        ["192.168.1.50", "192.168.1.99"],
    ]
    assert applied[-1][1].name == "222212345678"  # same label: same series, same state files
    # A reload that now configures it: the configured entry wins, nothing is served twice.
    discovery.configure([*configured, GatewaySettings(name="barn", host="192.168.1.99")], DEFAULTS)
    assert [g.label for g in applied[-1]] == ["home", "barn"]


class Announcer:
    """A gateway's mDNS announcement, on loopback only."""

    def __init__(self) -> None:
        self.zeroconf = zeroconf.Zeroconf(interfaces=["127.0.0.1"], ip_version=zeroconf.IPVersion.V4Only)
        self.infos: dict[str, zeroconf.ServiceInfo] = {}

    def announce(self, serial: str, port: int, address: str = "127.0.0.1") -> None:
        info = zeroconf.ServiceInfo(
            SERVICE_TYPE,
            f"envoy{serial}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(address)],
            port=port,
            properties={"serialnum": serial, "protovers": "7.6.175"},
            server=f"envoy{serial}.local.",
        )
        if serial in self.infos:
            self.zeroconf.update_service(info)
        else:
            self.zeroconf.register_service(info, allow_name_change=False)
        self.infos[serial] = info

    def close(self) -> None:
        self.zeroconf.unregister_all_services()
        self.zeroconf.close()


@pytest.fixture
def announcer() -> Iterator[Announcer]:
    a = Announcer()
    yield a
    a.close()


def wait_until(check, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {WAIT_S:.0f}s")


@pytest.mark.e2e
def test_browser_finds_an_announced_gateway_and_follows_it(announcer):
    serial = random_serial()
    seen: list[Found] = []
    lock = threading.Lock()

    def record(found: Found) -> None:
        if found.serial == serial:  # another test's announcer may be on the air
            with lock:
                seen.append(found)

    browser = ZeroconfBrowser(record, interfaces=["127.0.0.1"])
    try:
        announcer.announce(serial, 18080)
        wait_until(lambda: Found(serial, "127.0.0.1", 18080) in seen, "first announcement")
        announcer.announce(serial, 18080, address="127.0.0.2")  # DHCP gave it a new address
        wait_until(lambda: seen[-1] == Found(serial, "127.0.0.2", 18080), "updated announcement")
    finally:
        browser.close()


@pytest.mark.e2e
def test_hostile_or_unresolvable_names_neither_stop_nor_stall_the_browser(announcer, caplog):
    """Names are resolved on worker threads: the browser's callback returns at once (a name that
    never resolves would hold it 3 s), and a name python-zeroconf refuses is logged, escaped,
    instead of killing the browser thread."""
    serial = random_serial()
    seen: list[Found] = []
    browser = ZeroconfBrowser(seen.append, interfaces=["127.0.0.1"])
    added = zeroconf.ServiceStateChange.Added
    try:
        started = time.monotonic()
        for n in range(8):
            browser._on_change(browser._zeroconf, SERVICE_TYPE, f"ghost{n}-{serial}.{SERVICE_TYPE}", added)
        browser._on_change(browser._zeroconf, SERVICE_TYPE, "evil\x1b[2J\nlevel=error x", added)
        assert time.monotonic() - started < 2.5  # one blocking resolution alone takes 3 s
        announcer.announce(serial, 18081)
        wait_until(lambda: any(f.serial == serial for f in seen), "the real gateway, found meanwhile")
    finally:
        browser.close()
    (refused,) = [r for r in caplog.records if "ignoring the announcement" in r.getMessage()]
    assert refused.levelname == "WARNING" and "'evil\\x1b[2J\\nlevel=error x'" in refused.getMessage()


@pytest.mark.e2e
def test_closing_the_browser_gives_up_the_names_being_resolved_at_once_and_quietly(caplog):
    """Names still being resolved when the browser closes (at shutdown) are given up then: no
    thread is left waiting on zeroconf's stopped loop, to warn about them long after."""
    serial = random_serial()
    browser = ZeroconfBrowser(lambda found: None, interfaces=["127.0.0.1"])
    added = zeroconf.ServiceStateChange.Added
    for n in range(8):  # more names than resolvers: some still wait in the queue
        browser._on_change(browser._zeroconf, SERVICE_TYPE, f"ghost{n}-{serial}.{SERVICE_TYPE}", added)
    time.sleep(0.5)  # the first ones are being asked for, with seconds to go
    began = time.monotonic()
    browser.close()
    for thread in browser._resolvers:
        thread.join(max(0.0, began + 5 - time.monotonic()))
    assert [t.name for t in browser._resolvers if t.is_alive()] == []  # each held 13 s before
    assert time.monotonic() - began < 3.0
    assert [t for t in asyncio.all_tasks(browser._zeroconf.loop) if not t.done()] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
