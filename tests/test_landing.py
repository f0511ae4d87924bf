"""The landing page: one row per gateway, from what the exporter holds, checked in a real browser.

The browser test runs Debian's headless ``chromium`` against the server on loopback and skips
cleanly when it is not installed.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import threading
import time
import urllib.request
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from exporter_fakes import NOW, FakeClient, rich_snapshot

from envoy_exporter.config.settings import GatewaySettings, Secret
from envoy_exporter.demo import start_demo
from envoy_exporter.fleet.registry import Fleet
from envoy_exporter.gateway.client import GatewayClient
from envoy_exporter.snapshot.model import EndpointResult, Snapshot
from envoy_exporter.web.landing import capture_help, render_landing
from envoy_exporter.web.server import ExporterServer, make_server
from envoy_exporter.web.status import GatewayStatus, fleet_status

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian package chromium)")


def _fleet(*clients: FakeClient) -> Fleet:
    by_name = {c.name: c for c in clients}
    settings = [GatewaySettings(name=c.name, host=f"http://{i}.example") for i, c in enumerate(clients)]
    return Fleet(settings, lambda s: by_name[s.name])


def _collect(fleet: Fleet) -> None:
    """As a first scrape does."""
    for client in fleet.clients():
        client.start().result(timeout=5)


def _broken(now: float = NOW) -> FakeClient:
    """A gateway that answered once and now fails: stale data and an error to show."""
    snapshot = replace(
        rich_snapshot(collected_at=now - 7200),
        endpoints={
            "info": EndpointResult(True, "cached"),
            "production_json": EndpointResult(False, "timeout", "no answer within 10 s"),
            "inventory": EndpointResult(False, "401", "token rejected"),
        },
    )
    return FakeClient("barn & <b>shed</b>", snapshot=snapshot, token_expiry=now - 60, fresh=False)


def test_status_before_any_collection_asks_no_gateway():
    home = FakeClient("home", token_expiry=NOW + 30 * 86400)
    (status,) = fleet_status(_fleet(home), NOW)
    assert status == GatewayStatus("home", None, None, None, None, NOW + 30 * 86400, None)
    assert home.calls == 0


def test_status_after_a_collection():
    home, barn = FakeClient("home", token_expiry=NOW + 30 * 86400), _broken()
    fleet = _fleet(home, barn)
    _collect(fleet)
    got = {s.name: s for s in fleet_status(fleet, NOW)}
    assert got["home"] == GatewayStatus(
        "home", "999012345678", "D8.2.4345", True, 2.0, NOW + 30 * 86400, "inventory: parse (not JSON)"
    )
    shed = got["barn & <b>shed</b>"]
    assert shed.up is False and shed.data_age == 7200
    assert (
        shed.last_error == "inventory: 401 (token rejected); production_json: timeout (no answer within 10 s)"
    )


def test_a_gateway_that_never_answered_has_no_data_age():
    never = FakeClient(
        "new", snapshot=Snapshot(collected_at=NOW, endpoints={"info": EndpointResult(False, "error")})
    )
    fleet = _fleet(never)
    _collect(fleet)
    (status,) = fleet_status(fleet, NOW)
    assert status.up is False and status.data_age is None and status.last_error == "info: error"


def test_the_page_escapes_and_links():
    statuses = [
        GatewayStatus("home", "999012345678", "D8.2.4345", True, 2.0, NOW + 30 * 86400, None),
        GatewayStatus("a<script>x</script>", None, None, None, None, None, "info: <b>401</b>"),
    ]
    page = render_landing(statuses, "/metrics", now=NOW)
    assert page.count('<tr class="gateway">') == 2
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;401" in page
    assert 'href="/probe?target=home"' in page and 'href="/capture?target=home"' in page
    assert 'href="/probe?target=a%3Cscript%3Ex%3C%2Fscript%3E"' in page
    assert "2025-07-15 15:06 UTC (in 30 d)" in page and ">up<" in page and "not yet" in page
    assert "<meta name='viewport'" in page


def test_the_page_links_the_exporters_own_pages():
    page = render_landing([], "/export", now=NOW)
    links = re.findall(r'href="([^"]+)"', page)
    assert links == ["/export", "/sd", "/-/healthy", "/-/ready"]
    assert "No gateway configured." in page


def test_a_gateway_without_a_token_says_on_the_page_what_to_set():
    # Firmware 8 (the demo gateway) and only Home Assistant's username/password: the page
    # names the keys that would work, not a bare 401.
    demo = start_demo()
    settings = GatewaySettings(name="home", host=demo.url, username="owner", password=Secret("pw-81"))
    fleet = Fleet([settings], lambda s: GatewayClient(s, None))
    try:
        _collect(fleet)
        (status,) = fleet_status(fleet, time.time())
    finally:
        fleet.apply([])
        demo.stop()
    assert status.up is False and status.firmware == "D8.2.4345"
    assert status.last_error == (
        "api_v1_inverters, device_data, ensemble_inventory, home, inventory, meters, production_json, "
        "tariff: auth (firmware D8.2.4345 needs a token: set token, token_file, or enlighten_username "
        "and enlighten_password (username and password are the gateway's own login before firmware 7, "
        "unused here))"
    )


# --------------------------------------------------------------------------------------------
# In a browser


@pytest.fixture
def served() -> Iterator[ExporterServer]:
    now = time.time()
    home = FakeClient("home", snapshot=rich_snapshot(collected_at=now - 2), token_expiry=now + 86400)
    fleet = _fleet(home, _broken(now))
    _collect(fleet)
    server = make_server("127.0.0.1:0", fleet)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    server.ready.set()
    yield server
    server.shutdown()
    server.server_close()


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # the tests may run as root
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@needs_chromium
def test_the_rows_in_the_browser_dom(served, tmp_path):
    proc = _chromium(tmp_path, "--dump-dom", served.url + "/")
    dom = proc.stdout
    rows = re.findall(r'<tr class="gateway">(.*?)</tr>', dom, re.S)
    assert len(rows) == 2, proc.stderr[-2000:]
    home, barn = rows
    for cell in ("home", "999012345678", "D8.2.4345", ">up<", "/probe?target=home", "/capture?target=home"):
        assert cell in home
    assert "barn &amp; &lt;b&gt;shed&lt;/b&gt;" in barn and ">down<" in barn and "token rejected" in barn
    assert "(expired)" in barn and "2 h" in barn


@needs_chromium
@pytest.mark.parametrize("width", [390, 1280])  # a phone and a desktop
def test_a_screenshot_shows_the_table(served, tmp_path, width):
    shot = tmp_path / "landing.png"
    proc = _chromium(tmp_path, f"--screenshot={shot}", f"--window-size={width},900", served.url + "/")
    assert shot.is_file(), proc.stderr[-2000:]
    size, pixels = _png_pixels(shot.read_bytes())
    assert size == (width, 900)
    colours = Counter(pixels)
    count = colours.most_common(1)[0][1]  # the background
    ink = 1 - count / len(pixels)
    assert ink > 0.02  # text, borders and the header shading; a blank page has none
    # The red of "down" and the error text is on the page, not cut off to the right.
    assert any(r > 150 and g < 60 and b < 80 for r, g, b in colours)


def _png_pixels(data: bytes) -> tuple[tuple[int, int], list[tuple[int, int, int]]]:
    """The RGB pixels of an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0
    channels = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    pixels: list[tuple[int, int, int]] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride if kind else 0):
            a = line[i - channels] if i >= channels else 0
            b, c = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        pixels.extend(tuple(line[x : x + 3]) for x in range(0, stride, channels))
        previous = line
    return (width, height), pixels


def test_the_capture_page_gives_the_command_for_that_gateway(served):
    with urllib.request.urlopen(served.url + "/capture?target=home", timeout=10) as response:
        page = response.read().decode()
    assert "envoy-exporter capture --config.file exporter.yml --target home --out capture-home" in page
    with urllib.request.urlopen(served.url + "/capture?target=elsewhere", timeout=10) as response:
        assert "--target NAME" in response.read().decode()  # only configured gateways are named
    assert "--target 'barn & <b>shed</b>'" in capture_help("barn & <b>shed</b>")
