"""End to end: the real exporter process keeps the production counter true against a gateway
that wraps at 2^32 J, reads 0 while rebooting, and across an exporter restart (docs/counters.md).

The gateway is a loopback stand-in of this test's own: an Envoy-S standard on firmware 5, which
serves ``/info`` and ``/api/v1/production`` and answers 404 to everything else.
"""

from __future__ import annotations

import json
import math
import stat
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from exporter_fakes import samples, value
from exporter_process import running_exporter

pytestmark = pytest.mark.e2e

WH = 3600  # joules in a watt-hour
WRAP_J = 2**32
GATEWAY = "e2e"
COUNTER = "enphase_production_energy_joules_total"
REPORTED = "enphase_production_energy_reported_joules"
CORRECTIONS = "enphase_energy_corrections_total"
SERIES = {"gateway": GATEWAY, "source": "inverters"}

# The gateway reports whole Wh, so a counter step can differ from the energy produced by the
# rounding of what it reports. The true energy here starts and moves in whole Wh, so only the
# wrap carries rounding: 2^32 J is 1,193,046.47 Wh, the gateway's figure falls by a rounded
# 1,193,046 Wh and the keeper adds back exactly 2^32 J, 0.47 Wh more. Half a Wh (one rounding)
# bounds that; the relative part (of the step) is only headroom for float arithmetic on values
# near 10^10 J.
ABS_TOL_J = 0.5 * WH
REL_TOL = 1e-6

WAIT_S = 20.0  # for the exporter to come up, and for a scrape to show a change

INFO_XML = b"""<?xml version='1.0' encoding='UTF-8'?>
<envoy_info>
  <time>1700000000</time>
  <device>
    <sn>121700000042</sn>
    <pn>800-00551-r02</pn>
    <software>D5.0.62</software>
    <euaid>4c8675</euaid>
    <seqnum>0</seqnum>
    <apiver>1</apiver>
    <imeter>false</imeter>
  </device>
</envoy_info>
"""


class StandInGateway:
    """The gateway's state: a true joule counter, and what the firmware makes of it.

    Real gateways lose 2^32 J of their lifetime now and then and report integer Wh, so the
    reported lifetime is ``round((true - wraps x 2^32) / 3600)``; while rebooting every energy
    reads 0. Guarded by a lock: the HTTP server answers from its own threads.
    """

    def __init__(self, lifetime_wh: int) -> None:
        self._lock = threading.Lock()
        self.true_j = lifetime_wh * WH
        self.wraps = 0
        self.rebooting = False

    def produce(self, wh: int, wrap: bool = False) -> None:
        with self._lock:
            self.true_j += wh * WH
            self.wraps += int(wrap)
            self.rebooting = False

    def reboot(self) -> None:
        with self._lock:
            self.rebooting = True

    def reported_wh(self) -> int:
        with self._lock:
            if self.rebooting:
                return 0
            return round((self.true_j - self.wraps * WRAP_J) / WH)

    def production(self) -> bytes:
        lifetime = self.reported_wh()
        # Today and seven days are the gateway's own gauges; any plausible figures do.
        body = {
            "wattHoursToday": min(lifetime, 20_161),
            "wattHoursSevenDays": min(lifetime, 366_671),
            "wattHoursLifetime": lifetime,
            "wattsNow": 0 if lifetime == 0 else 4_200,
        }
        return json.dumps(body).encode()


def _handler(gateway: StandInGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/info":
                self._send(200, "application/xml", INFO_XML)
            elif self.path == "/api/v1/production":
                self._send(200, "application/json", gateway.production())
            else:
                self._send(404, "text/html", b"<html><body>404 Not Found</body></html>")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the exporter's log tells what was asked

    return Handler


@pytest.fixture
def gateway() -> Iterator[tuple[StandInGateway, str]]:
    state = StandInGateway(lifetime_wh=8_100_000)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, name="stand-in-gateway", daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def _fresh(port: int, gateway: StandInGateway) -> dict:
    """Scrapes until the exporter shows the gateway's current raw lifetime: with cache_ttl 0 each
    scrape collects anew, but the first ones after a start may join the warm-up collection."""
    expected = gateway.reported_wh() * WH
    deadline = time.monotonic() + WAIT_S
    while True:
        parsed = samples(_get(f"http://127.0.0.1:{port}/metrics"))
        if value(parsed, COUNTER, **SERIES) is not None and value(parsed, REPORTED, **SERIES) == expected:
            return parsed
        if time.monotonic() > deadline:
            pytest.fail(f"no scrape showed {expected} J reported; last: {value(parsed, REPORTED, **SERIES)}")
        time.sleep(0.05)


def _counter(parsed: dict) -> float:
    counter = value(parsed, COUNTER, **SERIES)
    assert counter is not None
    return counter


def _corrections(parsed: dict, kind: str) -> float | None:
    return value(parsed, CORRECTIONS, gateway=GATEWAY, kind=kind)


def _assert_moved(before: float, after: float, produced_wh: int, step: str) -> None:
    moved, produced = after - before, produced_wh * WH
    assert math.isclose(moved, produced, rel_tol=REL_TOL, abs_tol=ABS_TOL_J), (
        f"{step}: the counter moved {moved / WH:.3f} Wh, {produced_wh} Wh were produced"
    )


def test_counter_stays_true_through_wrap_reboot_and_restart(gateway, tmp_path):
    state, url = gateway
    state_dir = tmp_path / "state"
    config = tmp_path / "exporter.yml"
    # max_power_w: the keeper allows max power x time since the last rise x 2 + 1 Wh, and the
    # steps here come a fraction of a second apart.
    config.write_text(
        f"state_dir: {state_dir}\n"
        "cache_ttl: 0\n"
        "gateways:\n"
        f"  - name: {GATEWAY}\n"
        f"    host: {url}\n"
        "    max_power_w: 1000000000\n"
    )

    with running_exporter(tmp_path, config) as exporter:
        port = exporter.port
        start = _counter(_fresh(port, state))

        state.produce(100)
        step1 = _counter(_fresh(port, state))
        _assert_moved(start, step1, 100, "1. +100 Wh")

        state.produce(50, wrap=True)
        parsed = _fresh(port, state)
        step2 = _counter(parsed)
        _assert_moved(step1, step2, 50, "2. a 2^32 J wrap with 50 Wh")
        assert _corrections(parsed, "wrap") == 1
        # The raw gauge keeps what the gateway said, wrapped: 1,193,046 Wh below the true lifetime.
        assert value(parsed, REPORTED, **SERIES) == (8_100_000 + 150 - 1_193_046) * WH

        state.reboot()
        parsed = _fresh(port, state)
        step3 = _counter(parsed)
        _assert_moved(step2, step3, 0, "3. zeros while rebooting")
        assert (_corrections(parsed, "bogus") or 0) >= 1

        state.produce(30)
        parsed = _fresh(port, state)
        step4 = _counter(parsed)
        _assert_moved(step3, step4, 30, "4. back with +30 Wh")
        assert _corrections(parsed, "wrap") == 1
        assert _corrections(parsed, "reset") == 0 and _corrections(parsed, "jump") == 0
        state_file = state_dir / f"counters-{GATEWAY}.json"
        assert state_file.is_file()
        assert stat.S_IMODE(state_file.stat().st_mode) == 0o600

    with running_exporter(tmp_path, config) as exporter:
        port = exporter.port
        restarted = _counter(_fresh(port, state))
        _assert_moved(step4, restarted, 0, "5. exporter restart")

        state.produce(20)
        step6 = _counter(_fresh(port, state))
        _assert_moved(restarted, step6, 20, "6. +20 Wh after the restart")
