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
from envoy_exporter.snapshot.history import Point
from envoy_exporter.snapshot.model import EndpointResult, Flow, InverterReading, Reading, Snapshot
from envoy_exporter.snapshot.outcome import Outcome
from envoy_exporter.web.landing import capture_help, render_landing
from envoy_exporter.web.server import ExporterServer, make_server
from envoy_exporter.web.status import GatewayStatus, Inverters, Problem, fleet_status

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
            "info": EndpointResult(Outcome.CACHED),
            "production_json": EndpointResult(Outcome.TIMEOUT, "no answer within 10 s"),
            "inventory": EndpointResult(Outcome.UNAUTHORIZED, "token rejected"),
        },
    )
    return FakeClient("barn & <b>shed</b>", snapshot=snapshot, token_expiry=now - 60, fresh=False)


def test_status_before_any_collection_asks_no_gateway():
    home = FakeClient("home", token_expiry=NOW + 30 * 86400)
    (status,) = fleet_status(_fleet(home), NOW)
    assert status == GatewayStatus("home", None, None, None, None, NOW + 30 * 86400)
    assert home.calls == 0


def test_status_after_a_collection():
    home, barn = FakeClient("home", token_expiry=NOW + 30 * 86400), _broken()
    fleet = _fleet(home, barn)
    _collect(fleet)
    got = {s.name: s for s in fleet_status(fleet, NOW)}
    status = got["home"]
    assert (status.serial, status.firmware, status.up, status.data_age) == (
        "999012345678",
        "D8.2.4345",
        True,
        2.0,
    )
    assert (status.production_w, status.consumption_w, status.net_w) == (3000.0, 1200.0, -1800.0)
    assert (status.production_today_j, status.consumption_today_j) == (12 * 3600, 7 * 3600)
    assert status.battery_soc == 0.7 and status.inverters == Inverters(2, 2, ())
    assert status.last_error == "device inventory: not JSON"
    shed = got["barn & <b>shed</b>"]
    assert shed.up is False and shed.data_age == 7200
    assert (
        shed.last_error
        == "production and consumption: no answer within 10 s; device inventory: token rejected"
    )


def test_a_gateway_that_never_answered_has_no_data_age():
    never = FakeClient(
        "new", snapshot=Snapshot(collected_at=NOW, endpoints={"info": EndpointResult(Outcome.INTERNAL)})
    )
    fleet = _fleet(never)
    _collect(fleet)
    (status,) = fleet_status(fleet, NOW)
    assert (
        status.up is False
        and status.data_age is None
        and status.last_error == "gateway info: an internal error of the exporter"
    )


def test_silent_microinverters_are_named_against_their_newest_peer():
    # The captures are old: what counts is how far behind the newest report one is, not now.
    old = NOW - 400 * 86400
    inverters = tuple(
        InverterReading(serial=serial, power_w=200.0, last_report_s=old - behind)
        for serial, behind in (("A1", 0), ("A2", 290), ("A3", 7200), ("A4", 3600))
    )
    fleet = _fleet(FakeClient("roof", snapshot=replace(rich_snapshot(), inverters=inverters)))
    _collect(fleet)
    (status,) = fleet_status(fleet, NOW)
    assert status.inverters == Inverters(reporting=2, total=4, silent=("A3", "A4"))
    page = render_landing([status], "/metrics", now=NOW)
    assert "Microinverters: 2 of 4 reporting" in page and "silent: A3, A4" in page


def test_a_rejected_token_does_not_show_its_expiry():
    client = FakeClient("home", token_expiry=NOW + 30 * 86400, credentials={"token": True})
    fleet = _fleet(client)
    _collect(fleet)
    (status,) = fleet_status(fleet, NOW)
    assert status.token_expiry is None
    assert "token expires" not in render_landing([status], "/metrics", now=NOW)


def test_today_is_left_out_where_the_gateway_reports_its_lifetime_there():
    # 8.3 firmware: today = seven days = lifetime.
    lifetime = Reading(power_w=500.0, lifetime_j=9e9, today_j=9e9, last_seven_days_j=9e9)
    snapshot = replace(rich_snapshot(), production=Flow(total=lifetime))
    fleet = _fleet(FakeClient("collar", snapshot=snapshot))
    _collect(fleet)
    (status,) = fleet_status(fleet, NOW)
    assert status.production_today_j is None and status.consumption_today_j == 7 * 3600
    assert "Today: used 7 Wh" in render_landing([status], "/metrics", now=NOW)


def test_production_reads_zero_not_a_few_watts_backwards_at_night():
    snapshot = replace(rich_snapshot(), production=Flow(total=Reading(power_w=-3.8)))
    fleet = _fleet(FakeClient("night", snapshot=snapshot))
    _collect(fleet)
    assert fleet_status(fleet, NOW)[0].production_w == 0.0


def test_before_the_first_scrape_the_page_says_what_is_not_read_yet():
    start_up = replace(rich_snapshot(), inverters=(), batteries=(), storage=None, partial=True)
    fleet = _fleet(FakeClient("home", snapshot=start_up))
    _collect(fleet)
    (status,) = fleet_status(fleet, NOW)
    assert status.partial and status.inverters is None and status.production_w == 3000.0
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", render_landing([status], "/metrics", now=NOW)))
    assert "Microinverters and batteries: not read yet; the first scrape reads them" in text


def test_a_gateway_without_inverters_says_nothing_of_them_once_read():
    whole = replace(rich_snapshot(), inverters=())
    fleet = _fleet(FakeClient("home", snapshot=whole))
    _collect(fleet)
    (status,) = fleet_status(fleet, NOW)
    assert not status.partial
    assert "Microinverters" not in render_landing([status], "/metrics", now=NOW)


def test_the_page_shows_the_system_now():
    status = GatewayStatus(
        "home",
        "999012345678",
        "D8.2.4345",
        True,
        2.0,
        NOW + 30 * 86400,
        production_w=3420.0,
        consumption_w=850.0,
        net_w=-2570.0,
        production_today_j=12.5e3 * 3600,
        consumption_today_j=900 * 3600,
        battery_soc=0.89,
        battery_w=-1084.0,
        inverters=Inverters(17, 17, ()),
    )
    text = re.sub(r"<[^>]+>", " ", render_landing([status], "/metrics", now=NOW))
    text = re.sub(r"\s+", " ", text)
    for shown in (
        "Production 3.42 kW",
        "Consumption 850 W",
        "Grid 2.57 kW exporting",
        "Battery 89 % charging 1.08 kW",
        "Today: produced 12.5 kWh · used 900 Wh",
        "Microinverters: 17 of 17 reporting",
        "serial 999012345678 · firmware D8.2.4345 · data 2 s old",
    ):
        assert shown in text


def test_the_chart_draws_the_last_hour_to_scale():
    points = tuple(Point(NOW - 3600 + 60 * i, 1000.0 + 10 * i, 500.0) for i in range(61))
    status = GatewayStatus("home", None, None, True, 1.0, None, history=points)
    page = render_landing([status], "/metrics", now=NOW)
    (svg,) = re.findall(r"<svg .*?</svg>", page)
    production, consumption = re.findall(r'points="([^"]+)"', svg)
    first, *_, last = [tuple(map(float, xy.split(","))) for xy in production.split()]
    assert first == (0.0, 80 - 1000 / 1600 * 76) and last == (300.0, 4.0)  # the peak at the top
    assert len(consumption.split()) == 61 and "top of the chart 1.60 kW" in page
    assert "<script" not in page


def test_a_chart_younger_than_an_hour_spans_what_there_is():
    points = (Point(NOW - 90, 400.0, 100.0), Point(NOW - 30, 800.0, None))
    page = render_landing(
        [GatewayStatus("home", None, None, True, 1.0, None, history=points)], "/metrics", NOW
    )
    (production,) = re.findall(r'points="([^"]+)"', page)  # one consumption point draws no line
    assert production == "0.0,42.0 200.0,4.0"
    legend = re.search(r'<p class="legend">(.*?)</p>', page).group(1)
    assert legend.endswith("production · last 2 min, top of the chart 800 W") and "consumption" not in legend


def test_without_two_points_the_chart_says_it_fills_in():
    status = GatewayStatus("home", None, None, True, 1.0, None, history=(Point(NOW, 1.0, 2.0),))
    page = render_landing([status], "/metrics", now=NOW)
    assert "<svg" not in page and "fills in as the exporter collects" in page


def test_a_gateway_up_with_problems_says_so_beside_up():
    problem = Problem("inverter list: password rejected for user envoy (http://192.0.2.10)")
    fine = GatewayStatus("fine", None, None, True, 1.0, None)
    partly = GatewayStatus("partly", None, None, True, 1.0, None, (problem,))
    page = render_landing([fine, partly], "/metrics", NOW)
    assert '<span class="state up">up</span>' in page
    assert '<span class="state up partly">up, with problems</span>' in page


def test_the_page_escapes_and_links():
    statuses = [
        GatewayStatus("home", "999012345678", "D8.2.4345", True, 2.0, NOW + 30 * 86400),
        GatewayStatus("a<script>x</script>", None, None, None, None, None, (Problem("info: <b>401</b>"),)),
    ]
    page = render_landing(statuses, "/metrics", now=NOW)
    assert page.count('<section class="gateway') == 2
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


@pytest.mark.e2e
def test_a_gateway_without_a_token_says_on_the_page_what_to_set():
    # Firmware 8 (the demo gateway) and only Home Assistant's username/password: the page
    # names the keys that would work, not a bare 401.
    demo = start_demo()
    settings = GatewaySettings(name="home", host=demo.url, username="owner", password=Secret("pw-81"))
    demo_url = demo.url.rstrip("/")
    fleet = Fleet([settings], lambda s: GatewayClient(s, None))
    try:
        _collect(fleet)
        (status,) = fleet_status(fleet, time.time())
    finally:
        fleet.apply([])
        demo.stop()
    assert status.up is False and status.firmware == "D8.2.4345"
    (problem,) = status.problems
    assert problem.what == (
        "CT meter settings, production and consumption and 6 more: firmware D8.2.4345 needs a token: set "
        "token, token_file, or enlighten_username and enlighten_password (username and password are the "
        f"gateway's own login before firmware 7, unused here) ({demo_url})"
    )


# --------------------------------------------------------------------------------------------
# In a browser


@pytest.fixture
def served() -> Iterator[ExporterServer]:
    now = time.time()
    home = FakeClient("home", snapshot=rich_snapshot(collected_at=now - 2), token_expiry=now + 86400)
    for minute in range(60):  # a morning hour: production climbs past consumption
        home.history.add(now - 3600 + 60 * minute, 50.0 * minute, 900.0 + 300 * (minute % 7 == 0))
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


@pytest.mark.e2e
@needs_chromium
def test_the_cards_in_the_browser_dom(served, tmp_path):
    proc = _chromium(tmp_path, "--dump-dom", served.url + "/")
    cards = re.findall(r'<section class="gateway[^"]*" id="gw-[^"]*">(.*?)</section>', proc.stdout, re.S)
    assert len(cards) == 2, proc.stderr[-2000:]
    home, barn = cards
    shown_in_home = ("home", "999012345678", "D8.2.4345", ">up, with problems<", "3.00 kW", "1.20 kW")
    for shown in (*shown_in_home, "2 of 2 reporting"):
        assert shown in home
    assert "/probe?target=home" in home and "/capture?target=home" in home and "<polyline" in home
    assert "barn &amp; &lt;b&gt;shed&lt;/b&gt;" in barn and ">down<" in barn and "token rejected" in barn
    assert "token expired" in barn and "data 2 h old" in barn


PRODUCTION_AMBER = (217, 140, 0)
CONSUMPTION_BLUE = (31, 111, 178)


@pytest.mark.e2e
@needs_chromium
@pytest.mark.parametrize("width", [390, 1280])  # a phone and a desktop
def test_a_screenshot_shows_the_cards_and_the_chart(served, tmp_path, width):
    shot = tmp_path / "landing.png"
    proc = _chromium(tmp_path, f"--screenshot={shot}", f"--window-size={width},1400", served.url + "/")
    assert shot.is_file(), proc.stderr[-2000:]
    size, pixels = _png_pixels(shot.read_bytes())
    assert size == (width, 1400)
    colours = Counter(pixels)
    count = colours.most_common(1)[0][1]  # the background
    ink = 1 - count / len(pixels)
    assert ink > 0.02  # text, borders and the header shading; a blank page has none
    # The red of "down" and the error text is on the page, and the chart's two lines.
    assert any(r > 150 and g < 60 and b < 80 for r, g, b in colours)
    assert colours[PRODUCTION_AMBER] > 50 and colours[CONSUMPTION_BLUE] > 50
    # Nothing is cut off at the right edge: the last columns are the page's background.
    right_edge = {pixels[y * width + width - 1] for y in range(size[1])}
    assert len(right_edge) <= 2


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


@pytest.mark.e2e
def test_the_capture_page_gives_the_command_for_that_gateway(served):
    with urllib.request.urlopen(served.url + "/capture?target=home", timeout=10) as response:
        page = response.read().decode()
    assert "envoy-exporter capture --config.file exporter.yml --target home --out capture-home" in page
    with urllib.request.urlopen(served.url + "/capture?target=elsewhere", timeout=10) as response:
        assert "--target NAME" in response.read().decode()  # only configured gateways are named
    assert "--target 'barn & <b>shed</b>'" in capture_help("barn & <b>shed</b>")
