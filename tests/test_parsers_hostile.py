"""Hostile gateway answers against the parsers: time linear in the size of any input, one absurd
number costing only itself, and /info values fit to be labels."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from exporter_fakes import samples, scrape, value
from standin import StandIn, answer

from envoy_exporter.collector import GatewayCollector
from envoy_exporter.config.settings import GatewaySettings
from envoy_exporter.gateway.client import GatewayClient
from envoy_exporter.snapshot.model import WH
from envoy_exporter.snapshot.outcome import Outcome
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers.api_v1 import parse_v1_inverters
from envoy_exporter.snapshot.parsers.info import parse_info
from envoy_exporter.snapshot.parsers.inventory import parse_inventory
from envoy_exporter.snapshot.parsers.meters import parse_meter_readings
from envoy_exporter.snapshot.parsers.production_json import parse_production_json

HUGE = "9" * 5000  # past Python's int-string limit (4,300 digits)

# --------------------------------------------------------------------------------------------
# Linear time

# Each parser is timed on 256 kB and on 1 MB of repeated hostile patterns, in a child process
# so that a quadratic parser fails the test by its timeout instead of holding the suite. The
# figure is CPU time, the best of five runs of each size taken in turn: robust on a loaded machine.
TIMING = textwrap.dedent(
    """
    import json, time
    from envoy_exporter.gateway.endpoints import CATALOGUE

    PATTERNS = [b"<", b"<a", b"< 1 W", b"Currently ", b"Today 1", b"1", b"[", b'{"a":', b"<a>", b'"']

    def cpu(parse, body):
        started = time.process_time()
        try:
            parse(body)
        except Exception:
            pass
        return time.process_time() - started

    def best(parse, small, large):
        # Alternated, so that a slow spell of a shared machine falls on both sizes alike.
        pairs = [(cpu(parse, small), cpu(parse, large)) for _ in range(5)]
        return min(p[0] for p in pairs), min(p[1] for p in pairs)

    worst = {}
    for key, parse in ((e.key, e.parse) for e in CATALOGUE):
        for pattern in PATTERNS:
            small, large = ((pattern * (n // len(pattern) + 1))[:n] for n in (256_000, 1_000_000))
            worst[f"{key} {pattern!r}"] = best(parse, small, large)
    print(json.dumps(worst))
    """
)


@pytest.mark.e2e
def test_every_parser_takes_time_linear_in_its_input():
    child = subprocess.run([sys.executable, "-c", TIMING], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    timings = json.loads(child.stdout)
    slow = {case: large for case, (_, large) in timings.items() if large > 1.0}
    assert slow == {}, "1 MB took over a second"
    # Linear: 4x the input costs about 4x the time; quadratic would be 16x. Tiny times are noise.
    superlinear = {
        case: round(large / small, 1)
        for case, (small, large) in timings.items()
        if large > 0.02 and large / small > 8
    }
    assert superlinear == {}


# --------------------------------------------------------------------------------------------
# One absurd number costs only itself

PRODUCTION_JSON = {
    "production": [
        {"type": "inverters", "activeCount": 2, "readingTime": 1750000000, "wNow": 512, "whLifetime": 6000},
        {
            "type": "eim",
            "activeCount": 0,
            "measurementType": "production",
            "readingTime": 1750000000,
            "wNow": 498.5,
            "whLifetime": 7000,
            "whToday": 12,
            "whLastSevenDays": 80,
        },
    ],
    "consumption": [],
}


def with_number(doc: object, old: str, digits: str) -> bytes:
    """``doc`` as JSON, with the value written as ``old`` replaced by a literal of ``digits``."""
    text = json.dumps(doc)
    assert old in text
    return text.replace(old, digits, 1).encode()


def test_a_5000_digit_integer_in_production_json_costs_only_its_value():
    parsed = parse_production_json(with_number(PRODUCTION_JSON, "6000", HUGE))
    assert parsed.inverters.lifetime_j is None
    assert parsed.inverters.power_w == 512.0
    assert parsed.production.total.power_w == 498.5
    assert parsed.production.total.lifetime_j == 7000 * WH


def test_a_5000_digit_integer_in_the_inverter_list_costs_only_its_value():
    inverters = [
        {"serialNumber": "900000000201", "lastReportDate": 1750000000, "devType": 1, "lastReportWatts": 111,
         "maxReportWatts": 290},
        {"serialNumber": "900000000202", "lastReportDate": 1750000000, "devType": 1, "lastReportWatts": 222,
         "maxReportWatts": 290},
    ]  # fmt: skip
    parsed = parse_v1_inverters(with_number(inverters, "111", "-" + HUGE))
    assert [(i.serial, i.power_w) for i in parsed.inverters] == [
        ("900000000201", None),
        ("900000000202", 222.0),
    ]


def test_a_huge_float_and_an_overflowing_exponent_cost_only_their_values():
    body = b'[{"eid": 1, "activePower": 5.0, "freq": 1e999, "voltage": 1' + b"0" * 400 + b".5}]"
    (reading,) = parse_meter_readings(body)
    assert (reading.total.power_w, reading.total.frequency_hz, reading.total.voltage_v) == (5.0, None, None)


INFO = (
    "<?xml version='1.0' encoding='UTF-8'?><envoy_info><device><sn>{sn}</sn><pn>{pn}</pn>"
    "<software>{fw}</software><imeter>false</imeter></device></envoy_info>"
)


def info(sn: str = "122302045041", pn: str = "800-00654-r08", fw: str = "D7.6.175") -> bytes:
    return INFO.format(sn=sn, pn=pn, fw=fw).encode()


def standard_gateway(conn, request) -> None:
    """An Envoy-S standard on firmware 5 whose inverter list carries a 5,000-digit integer."""
    bodies = {
        "/info": info(fw="D5.0.62"),
        "/production.json?details=1": json.dumps(
            {"production": [PRODUCTION_JSON["production"][0]], "consumption": []}
        ).encode(),
        "/api/v1/production": b'{"wattsNow": 512, "wattHoursToday": 12, "wattHoursSevenDays": 80, '
        b'"wattHoursLifetime": 6000}',
        "/api/v1/production/inverters": (
            b'[{"serialNumber": "900000000201", "lastReportDate": 1750000000, "lastReportWatts": '
            + HUGE.encode()
            + b'}, {"serialNumber": "900000000202", "lastReportDate": 1750000000, "lastReportWatts": 222}]'
        ),
    }
    body = bodies.get(request.path)
    answer(body or b"{}", "200 OK" if body else "404 Not Found")(conn, request)


@pytest.mark.e2e
def test_a_5000_digit_integer_does_not_cost_the_collection():
    with StandIn(standard_gateway) as gateway:
        settings = GatewaySettings(
            name=None, host=f"http://{gateway.host}", serial="122302045041", timeout=3.0
        )
        client = GatewayClient(settings, None)
        snapshot = client.collect(timeout=10)
        client.close()
    assert snapshot.up
    assert snapshot.endpoints["api_v1_inverters"].ok
    assert [(i.serial, i.power_w) for i in snapshot.inverters] == [
        ("900000000201", None),
        ("900000000202", 222.0),
    ]


# --------------------------------------------------------------------------------------------
# /info values become labels


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(info(sn="1" * 100_000), id="100-kB-serial"),
        pytest.param(info(sn="12230204504<1"), id="markup-in-serial"),
        pytest.param(info(sn="1223 0204"), id="space-in-serial"),
        pytest.param(info(sn='12"}\nfake_metric 1'), id="exposition-injection"),
        pytest.param(info(fw="D7.6.175" * 1000), id="8-kB-firmware"),
        pytest.param(info(fw="D7.6.175\nx"), id="newline-in-firmware"),
    ],
)
def test_info_with_unfit_serial_or_firmware_is_bad(body):
    with pytest.raises(ParseError, match=r"/info <(sn|software)> is not"):
        parse_info(body.replace(b"<1<", b"&lt;1<"))


def test_info_drops_an_unfit_part_number_only():
    parsed = parse_info(info(pn="x" * 10_000))
    assert (parsed.serial, parsed.firmware, parsed.part_number) == ("122302045041", "D7.6.175", None)


@pytest.mark.parametrize("serial", ["122302045041", "121426016034", "xxxxxxxxxxxx", "envoyserial"])
def test_info_accepts_the_serials_of_the_captures(serial):
    # Real gateways have 12 digits; the anonymised shared captures letters.
    assert parse_info(info(sn=serial)).serial == serial


@pytest.mark.e2e
def test_a_60_kb_serial_leaves_the_known_identity(caplog):
    # Under /info's answer bound, so the parser is what refuses it.
    served = [info(), info(sn="1" * 60_000)]
    lock = threading.Lock()

    def gateway_script(conn, request):
        if request.path == "/info":
            with lock:
                body = served.pop(0) if len(served) > 1 else served[0]
            answer(body)(conn, request)
        else:
            answer(b"{}", "404 Not Found")(conn, request)

    with StandIn(gateway_script) as gateway:
        settings = GatewaySettings(
            name=None, host=f"http://{gateway.host}", timeout=3.0, cache_ttl={"info": 0.0}
        )
        client = GatewayClient(settings, None)
        first = client.collect(timeout=10)
        time.sleep(0.01)
        second = client.collect(timeout=10)
        client.close()
    assert first.info.serial == "122302045041"
    assert (
        second.endpoints["info"].outcome is Outcome.BAD_DATA
    )  # under /info's size bound: the parser refuses it
    assert second.info.serial == "122302045041"  # the known identity stays in use
    assert "1" * 1000 not in caplog.text


# --------------------------------------------------------------------------------------------
# Text from the other endpoints becomes labels too

LONG = "1" * 100_000


def device_gateway(conn, request) -> None:
    """A firmware 5 gateway whose inverter list and inventory each carry one 100 kB text."""
    good = {"serial_num": "900000000301", "part_num": "800-00630-r02", "img_pnum_running": "520-00082-r01",
            "device_status": ["envoy.global.ok"], "producing": True, "communicating": True}  # fmt: skip
    bodies = {
        "/info": info(fw="D5.0.62"),
        "/api/v1/production": b'{"wattsNow": 512, "wattHoursToday": 12, "wattHoursSevenDays": 80, '
        b'"wattHoursLifetime": 6000}',
        "/api/v1/production/inverters": json.dumps(
            [{"serialNumber": LONG, "lastReportDate": 1750000000, "lastReportWatts": 5}]
        ).encode(),
        "/inventory.json": json.dumps(
            [
                {
                    "type": "PCU",
                    "devices": [
                        good,
                        {**good, "serial_num": LONG},
                        {
                            **good,
                            "serial_num": "900000000302",
                            "part_num": LONG,
                            "device_status": [LONG, "ok"],
                        },
                        {**good, "serial_num": "900000000303", "img_pnum_running": "520\n00082"},
                    ],
                }
            ]
        ).encode(),
    }
    body = bodies.get(request.path)
    answer(body or b"{}", "200 OK" if body else "404 Not Found")(conn, request)


@pytest.mark.e2e
def test_a_100_kb_device_serial_or_status_does_not_make_metrics_huge(caplog):
    # Every string a gateway sends may become a label value: one of 100 kB made 20 MB of
    # /metrics per scrape (once per series of the device). It is not reported, like an absurd number.
    with StandIn(device_gateway) as gateway:
        client = GatewayClient(GatewaySettings(name="g", host=f"http://{gateway.host}", timeout=3.0), None)
        with caplog.at_level(logging.DEBUG):
            client.collect(timeout=10)
            text = scrape(GatewayCollector([client], 10.0))
        client.close()
    assert len(text) < 100_000
    assert LONG[:1000] not in text and LONG[:1000] not in caplog.text
    got = samples(text)
    good = {"gateway": "g", "serial": "900000000301", "device_type": "PCU"}
    assert value(got, "enphase_device_producing", **good) == 1
    # The device with the long part number keeps its other series; the long one is not reported.
    assert value(got, "enphase_device_producing", **{**good, "serial": "900000000302"}) == 1
    assert value(got, "enphase_device_status", **{**good, "serial": "900000000302", "status": "ok"}) == 1
    assert value(got, "enphase_device_producing", **{**good, "serial": "900000000303"}) == 1


def test_a_device_with_endless_status_codes_costs_a_bounded_number_of_series():
    # Each status code is a series: 390,000 codes in one 3.4 MB inventory made 33 MB of /metrics
    # per scrape and took the process to 280 MB. Real devices report at most a few.
    codes = [f"envoy.status.{i}" for i in range(100_000)]
    body = json.dumps([{"type": "PCU", "devices": [{"serial_num": "900000000301", "device_status": codes}]}])
    (device,) = parse_inventory(body.encode()).devices
    assert device.statuses == tuple(codes[:16])  # in the gateway's order
