"""Zeroconf discovery end to end, on loopback: the real exporter finds an announced gateway,
serves it under its serial in /probe and /sd, with the credentials of ``defaults:``, and follows
it by serial to a new address. A configured entry with its serial takes it over on reload.

The gateways are stand-ins of firmware 5 (open /info and /api/v1/production, plain http) on
127.0.0.2 and 127.0.0.3, announced by our own python-zeroconf on 127.0.0.1 only."""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from conftest import free_port
from exporter_process import OPENER, get, running_exporter, wait_for
from test_discovery import Announcer

pytestmark = pytest.mark.e2e

pytest.importorskip("zeroconf")

FOLLOW_TIMEOUT_S = 30.0


class LegacyGateway:
    """A firmware-5 Envoy-S standard: /info and /api/v1/production, no auth; counts requests."""

    def __init__(self, serial: str, host: str, port: int, watts: int):
        self.serial = serial
        self.watts = watts
        self.requests: list[str] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gateway.requests.append(self.path)
                if self.path == "/info":
                    self._answer("text/xml", gateway.info())
                elif self.path == "/api/v1/production":
                    body = {
                        "wattHoursToday": 1,
                        "wattHoursSevenDays": 7,
                        "wattHoursLifetime": 1000,
                        "wattsNow": watts,
                    }
                    self._answer("application/json", json.dumps(body).encode())
                else:
                    self.send_error(404)

            def _answer(self, content_type: str, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def info(self) -> bytes:
        return (
            "<?xml version='1.0' encoding='UTF-8'?><envoy_info><time>1700000000</time><device>"
            f"<sn>{self.serial}</sn><pn>800-00555-r03</pn><software>D5.0.62</software>"
            "<imeter>false</imeter></device><web-tokens>false</web-tokens></envoy_info>"
        ).encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def announcer() -> Iterator[Announcer]:
    a = Announcer()
    yield a
    a.close()


def probe(address: str, target: str) -> str:
    status, body = get(f"http://{address}/probe?target={target}", timeout=20)
    return body.decode() if status == 200 else ""


def sd_serials(address: str, serial: str) -> dict[str, str]:
    """The /sd targets that carry ``serial``. Only those: mDNS on loopback is shared by every
    process on the machine, so a test running beside this one may announce gateways of its own."""
    status, body = get(f"http://{address}/sd")
    groups = json.loads(body) if status == 200 else []
    found = {g["labels"]["__param_target"]: g["labels"].get("__meta_enphase_serial", "") for g in groups}
    return {target: s for target, s in found.items() if s == serial}


def test_a_discovered_gateway_is_served_under_its_serial_and_followed(tmp_path, announcer):
    serial = str(random.randrange(10**11, 10**12))
    port = free_port()
    first = LegacyGateway(serial, "127.0.0.2", port, watts=500)
    second = LegacyGateway(serial, "127.0.0.3", port, watts=700)
    try:
        with running_exporter(
            tmp_path,
            {
                "discovery": {"zeroconf": True, "interfaces": ["127.0.0.1"]},
                "defaults": {"timeout": 2, "username": "envoy", "password": "123456"},
            },
            ready="/-/healthy",
        ) as exporter:
            process, address, log = exporter.process, exporter.address, exporter.log
            announcer.announce(serial, port, address="127.0.0.2")
            up = f'enphase_up{{gateway="{serial}"}} 1.0'
            wait_for(
                "discovered and up", lambda: up in probe(address, serial), FOLLOW_TIMEOUT_S, process, log
            )
            assert (
                'enphase_production_power_watts{gateway="' + serial + '",source="inverters"} 500.0'
                in probe(address, serial)
            )
            assert sd_serials(address, serial) == {serial: serial}
            assert first.requests and not second.requests

            # DHCP moves it: the same serial is announced at another address.
            announcer.announce(serial, port, address="127.0.0.3")
            moved = f'enphase_production_power_watts{{gateway="{serial}",source="inverters"}} 700.0'
            wait_for(
                "followed to its new address",
                lambda: moved in probe(address, serial),
                FOLLOW_TIMEOUT_S,
                process,
                log,
            )
            assert sd_serials(address, serial) == {serial: serial}  # still one gateway, same label
            assert "discovered gateway" in log.read_text() and "moved from 127.0.0.2" in log.read_text()
            assert "123456" not in log.read_text()
    finally:
        first.close()
        second.close()


def post(url: str) -> tuple[int, str]:
    request = urllib.request.Request(url, method="POST")
    try:
        with OPENER.open(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_a_configured_entry_claims_a_discovered_gateway_on_reload(tmp_path, announcer):
    serial = str(random.randrange(10**11, 10**12))
    port = free_port()
    gateway = LegacyGateway(serial, "127.0.0.2", port, watts=500)
    discovery = {"zeroconf": True, "interfaces": ["127.0.0.1"]}
    try:
        with running_exporter(tmp_path, {"discovery": discovery}, ready="/-/healthy") as exporter:
            process, address, log = exporter.process, exporter.address, exporter.log
            announcer.announce(serial, port, address="127.0.0.2")
            wait_for(
                "discovered",
                lambda: sd_serials(address, serial) == {serial: serial},
                FOLLOW_TIMEOUT_S,
                process,
                log,
            )

            # The operator names it: a reload, and the configured entry takes it over.
            config = tmp_path / "exporter.yml"
            entry = {"name": "garage", "host": f"http://127.0.0.2:{port}", "serial": serial}
            config.write_text(yaml.safe_dump({"discovery": discovery, "gateways": [entry]}))
            assert post(f"http://{address}/-/reload") == (200, "OK\n")
            assert sd_serials(address, serial) == {"garage": serial}  # served once, under its configured name
            wait_for(
                "claimed",
                lambda: 'enphase_up{gateway="garage"} 1.0' in probe(address, "garage"),
                20,
                process,
                log,
            )
            assert probe(address, serial) == ""  # no second target

            # Another reload that drops the entry: the gateway is still found, under its serial again.
            config.write_text(yaml.safe_dump({"discovery": discovery}))
            assert post(f"http://{address}/-/reload") == (200, "OK\n")
            assert sd_serials(address, serial) == {serial: serial}

            # Discovery itself does not change while running.
            config.write_text(yaml.safe_dump({"discovery": {"zeroconf": False}, "gateways": [entry]}))
            status, body = post(f"http://{address}/-/reload")
            assert status == 500 and "discovery: cannot change while running" in body
            # Nor does state_dir (the refusal names the key, as a ConfigError must).
            config.write_text(
                yaml.safe_dump({"discovery": discovery, "state_dir": str(tmp_path / "elsewhere")})
            )
            status, body = post(f"http://{address}/-/reload")
            assert status == 500 and "state_dir: cannot change while running" in body
            assert sd_serials(address, serial) == {serial: serial}
    finally:
        gateway.close()


def test_an_announcement_of_a_configured_gateways_serial_is_ignored_and_a_serial_only_entry_found(
    tmp_path, announcer
):
    """The real exporter: a gateway configured by address (no serial) reports its serial; the
    same serial announced from another address gets no request and no second target. A
    gateway configured by serial alone is found where it is announced, under its own name."""
    serial, other = (str(random.randrange(10**11, 10**12)) for _ in range(2))
    port = free_port()
    home = LegacyGateway(serial, "127.0.0.2", port, watts=500)
    rogue = LegacyGateway(serial, "127.0.0.3", port, watts=9999)
    barn = LegacyGateway(other, "127.0.0.4", port, watts=300)
    try:
        config = {
            "discovery": {"zeroconf": True, "interfaces": ["127.0.0.1"]},
            "gateways": [{"name": "home", "host": f"127.0.0.2:{port}"}, {"name": "barn", "serial": other}],
        }
        with running_exporter(tmp_path, config, ready="/-/healthy") as exporter:
            process, address, log = exporter.process, exporter.address, exporter.log
            try:
                OPENER.open(f"http://{address}/probe?target=barn", timeout=20)
                pytest.fail("a gateway not found yet was probed")
            except urllib.error.HTTPError as e:
                assert e.code == 503 and b"not found on the network yet" in e.read()
            wait_for(
                "home up",
                lambda: 'enphase_up{gateway="home"} 1.0' in probe(address, "home"),
                FOLLOW_TIMEOUT_S,
                process,
                log,
            )
            announcer.announce(serial, port, address="127.0.0.3")
            announcer.announce(other, port, address="127.0.0.4")
            wait_for(
                "barn found",
                lambda: 'enphase_up{gateway="barn"} 1.0' in probe(address, "barn"),
                FOLLOW_TIMEOUT_S,
                process,
                log,
            )
            assert "is a configured gateway's serial; ignored" in log.read_text()
            assert probe(address, serial) == ""  # no second target for home's serial
            assert 'source="inverters"} 500.0' in probe(address, "home")  # still the real one
            assert rogue.requests == []
            assert sd_serials(address, other) == {"barn": other}
    finally:
        for gateway in (home, rogue, barn):
            gateway.close()
