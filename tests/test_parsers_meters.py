"""``/ivp/meters`` and ``/ivp/meters/readings``: CT configuration and readings, in base units."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, SHARED_FIXTURES, needs_shared
from parser_mutations import assert_damage_is_handled, assert_truncations_refused

from envoy_exporter.snapshot.model import WH, MeterChannel, MeterConfig
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers.meters import parse_meter_readings, parse_meters

METERS = FIXTURES / "meters"


def _body(name: str) -> bytes:
    return (METERS / name).read_bytes()


# --------------------------------------------------------------------------------------------
# /ivp/meters


def test_three_phase_production_and_net_consumption() -> None:
    production, net = parse_meters(_body("ivp_meters_three_phase.json"))
    assert production == MeterConfig(
        eid=620756992,
        measurement_type="production",
        state="enabled",
        phase_mode="three",
        phase_count=3,
        metering_status="normal",
        status_flags=(),
    )
    assert production.enabled
    assert (net.eid, net.measurement_type, net.phase_count) == (620757248, "net-consumption", 3)


def test_split_phase_with_storage_backfeed_and_disabled_meters() -> None:
    meters = parse_meters(_body("ivp_meters_split_storage.json"))
    assert [(m.measurement_type, m.enabled) for m in meters] == [
        ("production", True),
        ("net-consumption", True),
        ("storage", True),
        ("backfeed", True),
        ("load", False),
        ("evse", False),
        ("pv3p", False),
    ]
    assert {m.phase_mode for m in meters} == {"split"}
    assert {m.phase_count for m in meters} == {2}
    backfeed = meters[3]
    assert backfeed.metering_status == "check-wiring"
    assert backfeed.status_flags == ("power-on-unused-phase",)
    assert meters[6].metering_status == "not-metering"


def test_no_cts_is_an_empty_answer() -> None:
    assert parse_meters(b"[]") == ()
    assert parse_meters(b"[]\n") == ()


def test_optional_meter_fields_may_be_absent() -> None:
    (meter,) = parse_meters(
        b'[{"eid": 7, "state": "enabled", "measurementType": "production", "phaseCount": 1}]'
    )
    assert meter == MeterConfig(
        eid=7,
        measurement_type="production",
        state="enabled",
        phase_mode=None,
        phase_count=1,
        metering_status=None,
    )


# --------------------------------------------------------------------------------------------
# /ivp/meters/readings


def test_three_phase_readings_in_base_units() -> None:
    production, net = parse_meter_readings(_body("ivp_meters_readings_three_phase.json"))
    assert production.total == MeterChannel(
        eid=620756992,
        timestamp_s=1767225600.0,
        power_w=2841.5,
        reactive_var=61.25,
        apparent_va=2903.75,
        voltage_v=690.9,
        current_a=12.6,
        frequency_hz=50.031,
        power_factor=0.98,
        delivered_j=1523400.125 * WH,
        received_j=88.5 * WH,
    )
    assert [c.eid for c in production.channels] == [1711276305, 1711276306, 1711276307]
    assert [c.power_w for c in production.channels] == [950.25, 945.0, 946.25]
    assert production.channels[0].delivered_j == pytest.approx(508100.5 * WH)
    assert production.channels[2].voltage_v == 230.2
    # The net meter's own aggregate, not a sum of its channels: one phase imports, two export.
    assert net.total.power_w == -1630.75
    assert [c.power_w for c in net.channels] == [-710.5, 125.25, -1045.5]
    assert net.total.received_j == pytest.approx(1804110.25 * WH)
    assert net.channels[1].power_factor == 0.83


def test_split_phase_readings_keep_every_channel_and_unknown_meters() -> None:
    readings = parse_meter_readings(_body("ivp_meters_readings_split_storage.json"))
    assert [r.total.eid for r in readings] == [
        620756992,
        620757248,
        620757504,
        620758016,
        620758272,
        1006632960,
    ]
    storage = readings[2]
    assert storage.total.power_w == 1620.0
    assert storage.total.delivered_j == pytest.approx(801234.5 * WH)
    assert [c.power_w for c in storage.channels] == [810.0, 810.0, 0.0]
    backfeed = readings[3]
    assert backfeed.total.timestamp_s == 1767229199.0
    assert backfeed.total.frequency_hz == 0.0
    assert backfeed.total.received_j == pytest.approx(5120.25 * WH)
    # Unused channels are reported as they come; leaving them out is assemble's job.
    assert len(backfeed.channels) == 3
    assert backfeed.channels[2].voltage_v == 0.0
    # A float timestamp (8.3 firmware writes 1785332841.0 on channels) is as good as an int.
    assert readings[5].channels[0].timestamp_s == 1767229200.0


def test_reading_without_channels_and_with_nulls() -> None:
    (reading,) = parse_meter_readings(
        b'[{"eid": 9, "timestamp": 0, "activePower": null, "actEnergyDlvd": 2.5}]'
    )
    assert reading.channels == ()
    assert reading.total == MeterChannel(eid=9, delivered_j=2.5 * WH)  # timestamp 0 = never


# --------------------------------------------------------------------------------------------
# Bad input: ParseError, never another exception

BAD_COMMON = [
    pytest.param(b"", id="empty"),
    pytest.param(b'[{"eid": 704643328, "state": "ena', id="truncated"),
    pytest.param(b"<html><head><title>401 Authorization Required</title></head></html>", id="html"),
    pytest.param(b"Error: 401\n", id="plain-text"),
    pytest.param(b'{"error": "404 - Not Found"}', id="error-object"),
    pytest.param(b'"meters"', id="string"),
    pytest.param(b"[1, 2]", id="list-of-numbers"),
    pytest.param(b"[[]]", id="list-of-lists"),
]


@pytest.mark.parametrize(
    "body",
    [
        *BAD_COMMON,
        pytest.param(
            b'[{"state": "enabled", "measurementType": "production", "phaseCount": 2}]', id="no-eid"
        ),
        pytest.param(
            b'[{"eid": "7", "state": "enabled", "measurementType": "x", "phaseCount": 2}]', id="eid-str"
        ),
        pytest.param(b'[{"eid": 7, "state": "enabled", "phaseCount": 2}]', id="no-type"),
        pytest.param(b'[{"eid": 7, "measurementType": "production", "phaseCount": 2}]', id="no-state"),
        pytest.param(
            b'[{"eid": 7, "state": true, "measurementType": "production", "phaseCount": 2}]', id="state-bool"
        ),
        pytest.param(
            b'[{"eid": 7, "state": "enabled", "measurementType": "production"}]', id="no-phase-count"
        ),
        pytest.param(
            b'[{"eid": 7, "state": "enabled", "measurementType": "production", "phaseCount": 1.5}]',
            id="count-float",
        ),
        pytest.param(
            b'[{"eid": 7, "state": "enabled", "measurementType": "p", "phaseCount": 1, "statusFlags": "x"}]',
            id="flags-str",
        ),
        pytest.param(
            b'[{"eid": 7, "state": "enabled", "measurementType": "p", "phaseCount": 1, "statusFlags": [1]}]',
            id="flag-number",
        ),
    ],
)
def test_bad_meters(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_meters(body)


@pytest.mark.parametrize(
    "body",
    [
        *BAD_COMMON,
        pytest.param(b'[{"activePower": 1.0}]', id="no-eid"),
        pytest.param(b'[{"eid": 1, "activePower": "12 W"}]', id="power-str"),
        pytest.param(b'[{"eid": 1, "actEnergyDlvd": true}]', id="energy-bool"),
        pytest.param(b'[{"eid": 1, "timestamp": "now"}]', id="timestamp-str"),
        pytest.param(b'[{"eid": 1, "channels": {"eid": 2}}]', id="channels-object"),
        pytest.param(b'[{"eid": 1, "channels": [3]}]', id="channel-number"),
        pytest.param(b'[{"eid": 1, "channels": [{"activePower": 1.0}]}]', id="channel-no-eid"),
    ],
)
def test_bad_readings(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_meter_readings(body)


GOOD = [
    (parse_meters, "ivp_meters_three_phase.json"),
    (parse_meters, "ivp_meters_split_storage.json"),
    (parse_meter_readings, "ivp_meters_readings_three_phase.json"),
]


@pytest.mark.parametrize(("parse", "name"), GOOD)
def test_every_damaged_value_gives_a_result_or_parse_error(parse: Callable[[bytes], Any], name: str) -> None:
    assert_damage_is_handled(parse, _body(name))


@pytest.mark.parametrize(("parse", "name"), GOOD)
def test_every_truncation_is_a_parse_error(parse: Callable[[bytes], Any], name: str) -> None:
    assert_truncations_refused(parse, _body(name))


# --------------------------------------------------------------------------------------------
# The real captures and what pyenphase asserts for them

_CHANNEL_FIELDS = {  # expected.json key -> (MeterChannel field, scale, tolerance), as check.py
    "active_power": ("power_w", 1.0, 1.0),
    "energy_delivered": ("delivered_j", WH, WH),
    "energy_received": ("received_j", WH, WH),
    "voltage": ("voltage_v", 1.0, 0.05),
    "current": ("current_a", 1.0, 0.05),
    "frequency": ("frequency_hz", 1.0, 0.05),
    "power_factor": ("power_factor", 1.0, 0.01),
    "timestamp": ("timestamp_s", 1.0, 0.0),
    "eid": ("eid", 1, 0),
}


def _captures(name: str) -> list[Path]:
    return sorted(SHARED_FIXTURES.glob(f"*/{name}"))


def _expected() -> dict[str, Any]:
    return json.loads((SHARED_FIXTURES / "expected.json").read_text())


def _check_channel(channel: MeterChannel, expected: dict[str, Any], where: str) -> None:
    for key, (field, scale, tolerance) in _CHANNEL_FIELDS.items():
        if expected.get(key) is not None:
            got = getattr(channel, field)
            assert got == pytest.approx(expected[key] * scale, abs=tolerance), f"{where} {key}"


@needs_shared
def test_every_meters_capture() -> None:
    outcomes = {}
    for path in _captures("ivp_meters"):
        try:
            outcomes[path.parent.name] = len(parse_meters(path.read_bytes()))
        except ParseError:
            outcomes[path.parent.name] = "ParseError"
    # The legacy "Error: 401" text and the 404 object are refused, [] is no CT at all.
    assert outcomes["3.8.10"] == "ParseError"
    assert outcomes["3.9.36_bad_auth"] == "ParseError"
    assert outcomes["5.0.62"] == 0
    assert outcomes["8.3.1598_collar"] == 7
    assert sum(isinstance(n, int) for n in outcomes.values()) >= 14


@needs_shared
def test_every_readings_capture() -> None:
    parsed = 0
    for path in _captures("ivp_meters_readings"):
        try:
            readings = parse_meter_readings(path.read_bytes())
        except ParseError:
            assert path.parent.name in ("3.8.10", "3.9.36_bad_auth")  # {"error": "404 - Not Found"}
            continue
        parsed += 1
        assert all(len(r.channels) == 3 for r in readings)
    assert parsed >= 15


@needs_shared
def test_captures_match_pyenphase_ctmeters() -> None:
    checked = 0
    for name, expected in _expected().items():
        ctmeters = expected.get("ctmeters")
        if not ctmeters:
            continue
        capture = SHARED_FIXTURES / name
        configs = {m.measurement_type: m for m in parse_meters((capture / "ivp_meters").read_bytes())}
        readings = {
            r.total.eid: r for r in parse_meter_readings((capture / "ivp_meters_readings").read_bytes())
        }
        for meter_type, values in ctmeters.items():
            config = configs[meter_type]
            assert config.eid == values["eid"]
            assert config.state == values["state"]
            assert config.metering_status == values["metering_status"]
            assert list(config.status_flags) == values["status_flags"]
            reading = readings[config.eid]
            _check_channel(reading.total, values, f"{name} {meter_type}")
            # pyenphase's phases are the reading's channels in order L1, L2, L3.
            for index, phase in enumerate(("L1", "L2", "L3")):
                phase_values = (expected.get("ctmeters_phases") or {}).get(meter_type, {}).get(phase)
                if phase_values is not None:
                    _check_channel(reading.channels[index], phase_values, f"{name} {meter_type} {phase}")
            checked += 1
    assert checked >= 20
