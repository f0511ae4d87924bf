"""The production-family parsers: /info, /production.json, /production (HTML), /api/v1/*,
/ivp/pdm/device_data.

Fixtures are written here, shaped after the real captures in ../shared (serials and values
are invented). The last part runs the parsers over those captures when they are present.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_FIXTURES, needs_shared
from hypothesis import given, settings
from hypothesis import strategies as st

from envoy_exporter.snapshot.model import WH, DeviceData, GatewayInfo, ProductionJson, Reading, V1Inverters
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers.api_v1 import parse_v1_inverters, parse_v1_production
from envoy_exporter.snapshot.parsers.device_data import parse_device_data
from envoy_exporter.snapshot.parsers.info import parse_info
from envoy_exporter.snapshot.parsers.production_html import parse_production_html
from envoy_exporter.snapshot.parsers.production_json import parse_production_json


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# --------------------------------------------------------------------------------------------
# /info

INFO_LEGACY = b"""<?xml version='1.0' encoding='UTF-8'?>
<envoy_info>
  <time>1600000000</time>
  <device>
    <sn>990011223344</sn>
    <pn>800-00069-r05</pn>
    <software>R3.9.36</software>
    <apiver>1</apiver>
  </device>
  <package name='app'>
    <pn>500-00002-r01</pn>
    <version>03.17.03</version>
  </package>
</envoy_info>
"""

INFO_MODERN = b"""<?xml version="1.0" encoding="UTF-8"?>
<envoy_info>
\t<time>1750000000</time>
\t<device>
\t\t<sn>990055667788</sn>
\t\t<pn>800-00654-r08</pn>
\t\t<software>D8.3.5433</software>
\t\t<imeter>true</imeter>
\t</device>
\t<web-tokens>true</web-tokens>
\t<package name="app"><pn>500-00002-r01</pn></package>
</envoy_info>
"""


def test_info_legacy_envoy_has_no_meter_or_token_flags() -> None:
    info = parse_info(INFO_LEGACY)
    assert info.serial == "990011223344"
    assert info.firmware == "R3.9.36"
    assert info.part_number == "800-00069-r05"  # the device's, not the package's
    assert info.metered is None
    assert info.web_tokens is None
    assert info.version == (3, 9, 36)


def test_info_modern_gateway() -> None:
    info = parse_info(INFO_MODERN)
    assert (info.serial, info.firmware) == ("990055667788", "D8.3.5433")
    assert info.metered is True
    assert info.web_tokens is True
    assert info.needs_token


def test_info_standard_gateway_is_not_metered() -> None:
    info = parse_info(INFO_MODERN.replace(b"<imeter>true", b"<imeter>false"))
    assert info.metered is False


def test_info_odd_flag_text_is_not_reported() -> None:
    info = parse_info(INFO_MODERN.replace(b"<imeter>true", b"<imeter>maybe"))
    assert info.metered is None
    assert info.serial == "990055667788"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(INFO_MODERN[:120], id="truncated"),
        pytest.param(b'{"sn": "990055667788"}', id="json"),
        pytest.param(b"<html><body>Not here</body></html>", id="html-without-device"),
        pytest.param(INFO_MODERN.replace(b"<sn>990055667788</sn>", b""), id="no-serial"),
        pytest.param(INFO_MODERN.replace(b"<sn>990055667788</sn>", b"<sn> </sn>"), id="blank-serial"),
        pytest.param(INFO_MODERN.replace(b"<software>D8.3.5433</software>", b""), id="no-software"),
        pytest.param(b"<?xml version='1.0' encoding='nonsense'?><envoy_info/>", id="unknown-encoding"),
        pytest.param(
            b'<!DOCTYPE e [<!ENTITY a "aaaa">]><envoy_info><device><sn>&a;</sn></device></envoy_info>',
            id="entity",
        ),
    ],
)
def test_info_rejects(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_info(body)


# --------------------------------------------------------------------------------------------
# /production.json


def inverters_section(count: int = 16, w_now: float = 2310, wh_lifetime: float = 845_000) -> dict:
    return {
        "type": "inverters",
        "activeCount": count,
        "readingTime": 1_750_000_100,
        "wNow": w_now,
        "whLifetime": wh_lifetime,
    }


def eim_line(w_now: float, scale: float = 1.0) -> dict:
    return {
        "wNow": w_now,
        "whLifetime": 400_000.5 * scale,
        "varhLeadLifetime": 12.0,
        "vahLifetime": 500_000.0,
        "rmsCurrent": 4.2 * scale,
        "rmsVoltage": 231.4,
        "reactPwr": 55.5,
        "apprntPwr": 980.25,
        "pwrFactor": 0.97,
        "whToday": 3_100.25 * scale,
        "whLastSevenDays": 21_000.75 * scale,
    }


def eim_section(
    measurement_type: str | None, active: int = 1, lines: list[dict] | None = None, w_now: float = 2900.5
) -> dict:
    section = {"type": "eim", "activeCount": active, "readingTime": 1_750_000_123, **eim_line(w_now, 3)}
    if measurement_type is not None:
        section["measurementType"] = measurement_type
    if lines is not None:
        section["lines"] = lines
    return section


IDLE_ACB = {"type": "acb", "activeCount": 0, "readingTime": 0, "wNow": 0, "whNow": 0, "state": "idle"}


def test_production_json_standard_envoy_s_has_only_inverters() -> None:
    result = parse_production_json(dumps({"production": [inverters_section()], "storage": [IDLE_ACB]}))
    assert result.inverters is not None
    assert result.inverters.active_count == 16
    assert result.inverters.reading_time == 1_750_000_100
    assert result.inverters.power_w == 2310
    assert result.inverters.lifetime_j == 845_000 * 3600
    assert result.production is None
    assert result.consumption == ()
    # An idle, empty ACB section says "no AC batteries": count 0, no time, no charge level.
    assert result.storage is not None
    assert result.storage.active_count == 0
    assert result.storage.soc_ratio is None
    assert result.storage.state == "idle"


def test_production_json_metered_three_phase() -> None:
    lines = [eim_line(1000.0), eim_line(950.5), eim_line(-2.25)]
    body = dumps(
        {
            "production": [inverters_section(), eim_section("production", lines=lines)],
            "consumption": [
                eim_section("total-consumption", lines=lines, w_now=4100),
                eim_section("net-consumption", lines=lines, w_now=1200),
            ],
            "storage": [IDLE_ACB],
        }
    )
    result = parse_production_json(body)
    production = result.production
    assert production is not None
    assert production.measurement_type == "production"
    assert production.active_count == 1
    assert production.reading_time == 1_750_000_123
    assert production.total == Reading(
        power_w=2900.5,
        lifetime_j=pytest.approx(1_200_001.5 * WH),
        today_j=pytest.approx(9_300.75 * WH),
        last_seven_days_j=pytest.approx(63_002.25 * WH),
        voltage_v=231.4,
        current_a=pytest.approx(12.6),
        reactive_var=55.5,
        apparent_va=980.25,
        power_factor=0.97,
    )
    assert [line.power_w for line in production.lines] == [1000.0, 950.5, -2.25]
    assert production.lines[0].lifetime_j == 400_000.5 * 3600
    assert production.lines[0].voltage_v == 231.4
    assert [c.measurement_type for c in result.consumption] == ["total-consumption", "net-consumption"]
    total = result.consumption_of("total-consumption")
    net = result.consumption_of("net-consumption")
    assert total is not None and total.total.power_w == 4100
    assert net is not None and net.total.power_w == 1200
    assert len(net.lines) == 3


def test_production_json_split_phase_keeps_trailing_all_zero_line() -> None:
    zero = dict.fromkeys(eim_line(0.0), 0.0)
    body = dumps({"production": [eim_section("production", lines=[eim_line(700.0), eim_line(650.0), zero])]})
    production = parse_production_json(body).production
    assert production is not None
    assert len(production.lines) == 3
    assert production.lines[2] == Reading(
        power_w=0.0,
        lifetime_j=0.0,
        today_j=0.0,
        last_seven_days_j=0.0,
        voltage_v=0.0,
        current_a=0.0,
        reactive_var=0.0,
        apparent_va=0.0,
        power_factor=0.0,
    )


def test_production_json_disabled_cts_keep_active_count_zero() -> None:
    body = dumps(
        {
            "production": [inverters_section(count=9), eim_section("production", active=0)],
            "consumption": [
                eim_section("total-consumption", active=0),
                eim_section("net-consumption", active=0),
            ],
        }
    )
    result = parse_production_json(body)
    assert result.inverters is not None and result.inverters.active_count == 9
    assert result.production is not None and result.production.active_count == 0
    assert [c.active_count for c in result.consumption] == [0, 0]
    # The section still carries the stale numbers; judging them is the assembler's part.
    assert result.production.total.power_w == 2900.5


def test_production_json_consumption_without_measurement_type() -> None:
    consumption = eim_section(None, active=0)
    del consumption["readingTime"]
    body = dumps({"production": [inverters_section(), eim_section(None)], "consumption": [consumption]})
    result = parse_production_json(body)
    assert result.production is not None and result.production.measurement_type is None
    assert len(result.consumption) == 1
    assert result.consumption[0].measurement_type is None
    assert result.consumption[0].reading_time is None
    assert result.consumption_of("total-consumption") is None


def test_production_json_acb_storage() -> None:
    acb = {
        "type": "acb",
        "activeCount": 3,
        "readingTime": 1_750_000_000,
        "wNow": 180,
        "whNow": 1200,
        "state": "discharging",
        "percentFull": 40,
    }
    storage = parse_production_json(dumps({"production": [inverters_section()], "storage": [acb]})).storage
    assert storage is not None
    assert storage.active_count == 3
    assert storage.power_w == 180
    assert storage.energy_j == 1200 * 3600
    assert storage.state == "discharging"
    assert storage.soc_ratio == pytest.approx(0.40)


def test_production_json_zero_reading_time_is_not_reported() -> None:
    section = inverters_section()
    section["readingTime"] = 0
    inverters = parse_production_json(dumps({"production": [section]})).inverters
    assert inverters is not None and inverters.reading_time is None


def test_production_json_ignores_unknown_section_types() -> None:
    body = dumps({"production": [{"type": "rgms", "activeCount": 0}, inverters_section()]})
    result = parse_production_json(body)
    assert result.inverters is not None and result.production is None


LEGACY_PRODUCTION_PAGE = b"""    <!DOCTYPE html PUBLIC "-//W3C//DTD HTML 4.01//EN">
    <html lang="en"><head><title>production</title></head><body>
      <h1>System Energy Production</h1>
      <div><table>
      <tr><td colspan="3">System has been live since
                             <div class=good>Mon Jun 01, 2015 09:00 AM PDT</div></td></tr>
      <tr><td>Currently</td>    <td> 4.87 kW</td></tr><tr><td>Today</td>     <td> 31.2 kWh</td></tr>
      <tr><td>Past Week</td>    <td>  212 kWh</td></tr>
      <tr><td>Since Installation</td>    <td> 87.4 MWh</td></tr>
      </table><br></div>
    </body></html>
"""


def wrong(path: list[Any], value: Any, base: dict) -> bytes:
    """``base`` with the item at ``path`` replaced by ``value``."""
    data = json.loads(json.dumps(base))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return dumps(data)


FULL_PRODUCTION = {
    "production": [inverters_section(), eim_section("production", lines=[eim_line(1.0)])],
    "consumption": [eim_section("total-consumption")],
    "storage": [IDLE_ACB],
}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(dumps(FULL_PRODUCTION)[:90], id="truncated"),
        pytest.param(LEGACY_PRODUCTION_PAGE, id="html-on-pre-v4"),
        pytest.param(b'{"status":401,"error":"","info":"Authentication required"}', id="error-body"),
        pytest.param(b"[]", id="list"),
        pytest.param(wrong(["production"], {"type": "inverters"}, FULL_PRODUCTION), id="dict-for-list"),
        pytest.param(wrong(["production", 0], "inverters", FULL_PRODUCTION), id="string-section"),
        pytest.param(wrong(["production", 0, "wNow"], "2310", FULL_PRODUCTION), id="string-power"),
        pytest.param(wrong(["production", 0, "whLifetime"], [1], FULL_PRODUCTION), id="list-energy"),
        pytest.param(wrong(["production", 0, "activeCount"], True, FULL_PRODUCTION), id="bool-count"),
        pytest.param(wrong(["production", 0, "activeCount"], None, FULL_PRODUCTION), id="no-count"),
        pytest.param(wrong(["production", 1, "lines"], {"L1": {}}, FULL_PRODUCTION), id="dict-lines"),
        pytest.param(wrong(["production", 1, "lines", 0], 7, FULL_PRODUCTION), id="number-line"),
        pytest.param(wrong(["production", 1, "measurementType"], 3, FULL_PRODUCTION), id="number-type"),
        pytest.param(wrong(["consumption", 0, "rmsVoltage"], {}, FULL_PRODUCTION), id="dict-voltage"),
        pytest.param(wrong(["storage", 0, "percentFull"], "18%", FULL_PRODUCTION), id="string-percent"),
        pytest.param(wrong(["storage", 0, "state"], 1, FULL_PRODUCTION), id="number-state"),
    ],
)
def test_production_json_rejects(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_production_json(body)


# --------------------------------------------------------------------------------------------
# /production: the legacy Envoy-C/R/LCD page


def test_production_html_legacy_page() -> None:
    reading = parse_production_html(LEGACY_PRODUCTION_PAGE)
    assert reading == Reading(
        power_w=4870.0,
        today_j=31_200 * WH,
        last_seven_days_j=212_000 * WH,
        lifetime_j=87_400_000 * WH,
    )


@pytest.mark.parametrize(
    ("cells", "power_w", "lifetime_wh"),
    [
        pytest.param(("0 W", "0 Wh", "0 Wh", "14.6 MWh"), 0.0, 14_600_000, id="night"),
        pytest.param(("512 W", "800 Wh", "9.75 kWh", "1.02 MWh"), 512.0, 1_020_000, id="watts"),
        pytest.param(
            ("1.25 MW", "3.10 MWh", "20.5 MWh", "655 MWh"), 1_250_000.0, 655_000_000, id="megawatts"
        ),
    ],
)
def test_production_html_units(cells: tuple[str, ...], power_w: float, lifetime_wh: float) -> None:
    labels = ("Currently", "Today", "Past Week", "Since Installation")
    row = "".join(
        f"<tr><td>{label}</td>    <td>  {cell}</td></tr>" for label, cell in zip(labels, cells, strict=True)
    )
    reading = parse_production_html(f"<table>{row}</table>".encode())
    assert reading.power_w == power_w
    assert reading.lifetime_j == lifetime_wh * WH


def test_production_html_partial_page_reports_what_it_has() -> None:
    reading = parse_production_html(b"<table><tr><td>Currently</td><td> 2.5 kW</td></tr></table>")
    assert reading == Reading(power_w=2500.0)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(LEGACY_PRODUCTION_PAGE[:200], id="truncated"),
        pytest.param(dumps(FULL_PRODUCTION), id="json-on-newer-firmware"),
        pytest.param(b"<html><body><h2>401 Unauthorized</h2></body></html>", id="unauthorized"),
        pytest.param(b"<html><body><h2>Page Not Found</h2></body></html>", id="not-found"),
        pytest.param(b"<td>Currently</td><td>" + b"9" * 40 + b" kW</td>", id="absurd-number"),
        pytest.param(b"\xff\xfe\x00garbage", id="binary"),
    ],
)
def test_production_html_rejects(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_production_html(body)


# --------------------------------------------------------------------------------------------
# /api/v1/production and /api/v1/production/inverters

V1_PRODUCTION = {
    "wattHoursToday": 9120,
    "wattHoursSevenDays": 88123,
    "wattHoursLifetime": 4_567_890,
    "wattsNow": 1875,
}


def test_v1_production() -> None:
    assert parse_v1_production(dumps(V1_PRODUCTION)) == Reading(
        power_w=1875,
        today_j=9120 * 3600,
        last_seven_days_j=88123 * 3600,
        lifetime_j=4_567_890 * 3600,
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b'{"wattHoursToday": 91', id="truncated"),
        pytest.param(LEGACY_PRODUCTION_PAGE, id="html"),
        pytest.param(b'{"status":401,"error":"","info":"Authentication required","moreInfo":""}', id="401"),
        pytest.param(dumps([V1_PRODUCTION]), id="list"),
        pytest.param(dumps({**V1_PRODUCTION, "wattsNow": "1875"}), id="string-power"),
        pytest.param(dumps({**V1_PRODUCTION, "wattHoursLifetime": [1]}), id="list-energy"),
    ],
)
def test_v1_production_rejects(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_v1_production(body)


def v1_entry(serial: str, watts: int, dev_type: int | None = 1, date: int = 1_750_000_000) -> dict:
    entry = {"serialNumber": serial, "lastReportDate": date, "lastReportWatts": watts, "maxReportWatts": 295}
    if dev_type is not None:
        entry["devType"] = dev_type
    return entry


def test_v1_inverters_old_firmware_has_no_dev_type() -> None:
    body = dumps([v1_entry("770000000001", 120, None), v1_entry("770000000002", 118, None)])
    result = parse_v1_inverters(body)
    assert [i.serial for i in result.inverters] == ["770000000001", "770000000002"]
    first = result.inverters[0]
    assert (first.power_w, first.max_power_w, first.last_report_s) == (120, 295, 1_750_000_000)
    assert first.lifetime_j is None  # the v1 list knows no energy
    assert result.batteries == ()


def test_v1_inverters_separates_ac_batteries() -> None:
    body = dumps(
        [
            v1_entry("770000000001", 210),
            v1_entry("880000000001", 3, dev_type=11),
            v1_entry("770000000002", 205),
            v1_entry("880000000002", 0, dev_type=11),
            v1_entry("660000000001", 5, dev_type=7),  # a device type we do not export
        ]
    )
    result = parse_v1_inverters(body)
    assert [i.serial for i in result.inverters] == ["770000000001", "770000000002"]
    assert [b.serial for b in result.batteries] == ["880000000001", "880000000002"]
    assert result.batteries[0].power_w == 3
    assert result.batteries[0].max_power_w == 295


def test_v1_inverters_never_reported_has_no_report_time() -> None:
    result = parse_v1_inverters(dumps([v1_entry("770000000009", 0, date=0)]))
    assert result.inverters[0].last_report_s is None


def test_v1_inverters_empty_list() -> None:
    result = parse_v1_inverters(b"[]")
    assert result.inverters == () and result.batteries == ()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(dumps([v1_entry("770000000001", 210)])[:40], id="truncated"),
        pytest.param(b"<html><body>401</body></html>", id="html"),
        pytest.param(b'{"status":401,"error":"","info":"Authentication required","moreInfo":""}', id="401"),
        pytest.param(dumps(["770000000001"]), id="string-entry"),
        pytest.param(dumps([{**v1_entry("x", 1), "serialNumber": None}]), id="no-serial"),
        pytest.param(dumps([{**v1_entry("x", 1), "serialNumber": 770000000001}]), id="number-serial"),
        pytest.param(dumps([{**v1_entry("x", 1), "lastReportWatts": "210"}]), id="string-watts"),
        pytest.param(dumps([{**v1_entry("x", 1), "devType": "1"}]), id="string-devtype"),
        pytest.param(dumps([{**v1_entry("x", 1), "lastReportDate": {}}]), id="dict-date"),
    ],
)
def test_v1_inverters_rejects(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_v1_inverters(body)


# --------------------------------------------------------------------------------------------
# /ivp/pdm/device_data


def pcu(serial: str, *, active: bool = True, gone: bool = False, watts: int = 240) -> dict:
    return {
        "devName": "pcu",
        "sn": serial,
        "active": active,
        "modGone": gone,
        "channels": [
            {
                "chanEid": 1627390000,
                "created": 1_750_000_400,
                "wattHours": {"today": 1402, "yesterday": 1333, "week": 9001},
                "watts": {"now": watts, "nowUsed": 0, "max": 366},
                "lastReading": {
                    "eid": 1627390000,
                    "endDate": 1_750_000_400,
                    "duration": 903,
                    "joulesProduced": 216_000,
                    "acVoltageINmV": 239_512,
                    "acFrequencyINmHz": 49_987,
                    "dcVoltageINmV": 33_250,
                    "dcCurrentINmA": 7_215,
                    "channelTemp": 41,
                    "acCurrentInmA": 1_003,
                },
                "lifetime": {
                    "createdTime": 1_700_000_000,
                    "duration": 50_000_000,
                    "joulesProduced": 987_654_321,
                },
            }
        ],
    }


def removed_pcu(serial: str) -> dict:
    return {
        "devName": "pcu",
        "sn": serial,
        "active": False,
        "modGone": True,
        "channels": [
            {"chanEid": 1, "created": 0, "watts": {"now": 0, "max": 0}, "lastReading": {}, "lifetime": {}}
        ],
    }


CT_METER = {
    "devName": "eim",
    "sn": "990055667788EIM1",
    "active": True,
    "modGone": True,
    "channels": [{"watts": {"now": 2000, "max": 4000}, "lastReading": {"curr_w": 2000, "wh_dlvd_cum": 5}}],
}


def acb(serial: str, *, produced: int = 0, used: int = 0, duration: int = 900, active: bool = True) -> dict:
    """An AC battery as firmware 8 lists it in device_data (shaped after 8.3.5169): its
    ``watts.now`` is unsigned and not its power; its last reading has both directions' energy."""
    return {
        "devName": "acb",
        "sn": serial,
        "active": active,
        "modGone": False,
        "channels": [
            {
                "chanEid": 1795160000,
                "created": 1_750_000_400,
                "wattHours": {"today": 41000, "yesterday": 0, "week": 0},
                "watts": {"now": 6, "nowUsed": 1, "max": 270},
                "lastReading": {
                    "eid": 1795160000,
                    "endDate": 1_750_000_400,
                    "duration": duration,
                    "joulesProduced": produced,
                    "joulesUsed": used,
                    "acVoltageINmV": 236_000,
                    "dcVoltageINmV": 21_800,
                    "SOC": 37,
                    "SOH": 88,
                    "minCellTemp": 27,
                    "maxCellTemp": 29,
                },
                "lifetime": {
                    "createdTime": 1_700_000_000,
                    "joulesProduced": 3_000_000,
                    "joulesUsed": 3_600_000,
                },
            }
        ],
    }


def device_data(*devices: dict, limit: int = 50) -> dict:
    data: dict[str, Any] = {str(553648384 + 256 * n): device for n, device in enumerate(devices)}
    data["deviceCount"] = len(devices)
    data["deviceDataLimit"] = limit
    return data


def test_device_data_reads_active_pcus_in_base_units() -> None:
    body = dumps(
        device_data(pcu("550000000001"), removed_pcu("550000000002"), CT_METER, pcu("550000000003", watts=17))
    )
    inverters = parse_device_data(body).inverters
    assert [i.serial for i in inverters] == ["550000000001", "550000000003"]
    first = inverters[0]
    assert first.power_w == 240
    assert first.max_power_w == 366
    assert first.last_report_s == 1_750_000_400
    assert first.lifetime_j == 987_654_321  # already joules
    assert first.today_j == 1402 * 3600
    assert first.ac_voltage_v == 239.512
    assert first.ac_current_a == 1.003
    assert first.dc_voltage_v == 33.25
    assert first.dc_current_a == 7.215
    assert first.ac_frequency_hz == 49.987
    assert first.temperature_c == 41
    assert first.last_report_duration_s == 903  # the report covers 903 s ...
    assert first.last_report_energy_j == 216_000  # ... in which it produced 216 kJ (60 Wh)
    assert inverters[1].power_w == 17


def test_device_data_keeps_active_pcus_flagged_mod_gone() -> None:
    # Firmware 8.3.5169 flags every live PCU modGone; only "active" tells removed ones apart.
    inverters = parse_device_data(
        dumps(device_data(pcu("550000000004", gone=True), removed_pcu("550000000005")))
    ).inverters
    assert [i.serial for i in inverters] == ["550000000004"]


def test_device_data_without_readings_reports_none() -> None:
    bare = pcu("550000000006")
    bare["channels"][0] = {"watts": {"now": 0, "max": 250}}
    (inverter,) = parse_device_data(dumps(device_data(bare))).inverters
    assert inverter.max_power_w == 250
    assert inverter.ac_voltage_v is None and inverter.lifetime_j is None and inverter.last_report_s is None
    assert inverter.last_report_duration_s is None and inverter.last_report_energy_j is None


def test_device_data_reads_ac_batteries_power_from_their_last_reports_energy() -> None:
    body = dumps(
        device_data(
            pcu("550000000001"),
            acb("121900000011", used=1_800, duration=900),  # charging at 2 W
            acb("121900000012", produced=270_000, used=0, duration=900),  # discharging at 300 W
            acb("121900000013", active=False, produced=9_000),  # removed
            CT_METER,
        )
    )
    data = parse_device_data(body)
    assert [i.serial for i in data.inverters] == ["550000000001"]
    assert [(b.serial, b.battery_type, b.power_w) for b in data.batteries] == [
        ("121900000011", "acb", -2.0),
        ("121900000012", "acb", 300.0),
    ]
    first = data.batteries[0]
    assert first.soc_ratio == 0.37 and first.temperature_c == 29
    assert first.state is None  # device_data has no charge_status: the inventory tells it


def test_device_data_ac_battery_without_a_usable_report_has_no_power() -> None:
    zero_length = acb("121900000014", used=900, duration=0)
    no_energy = acb("121900000015")
    del no_energy["channels"][0]["lastReading"]["joulesUsed"]
    no_channel = {**acb("121900000016"), "channels": []}
    data = parse_device_data(dumps(device_data(zero_length, no_energy, no_channel, pcu("550000000001"))))
    assert [(b.serial, b.power_w) for b in data.batteries] == [("121900000014", None), ("121900000015", None)]
    assert [i.serial for i in data.inverters] == ["550000000001"]  # the PCUs are not the price


def test_device_data_refuses_a_list_cut_at_its_limit() -> None:
    body = dumps(device_data(pcu("550000000001"), pcu("550000000002"), limit=2))
    with pytest.raises(ParseError, match="limit"):
        parse_device_data(body)


def broken_pcu(path: list[Any], value: Any) -> bytes:
    return wrong(
        [next(iter(device_data(pcu("550000000001")))), *path], value, device_data(pcu("550000000001"))
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(dumps(device_data(pcu("550000000001")))[:300], id="truncated"),
        pytest.param(b"<html><body>Error</body></html>", id="html"),
        pytest.param(dumps([pcu("550000000001")]), id="list"),
        pytest.param(dumps({"553648384": "pcu"}), id="string-device"),
        pytest.param(broken_pcu(["sn"], None), id="no-serial"),
        pytest.param(broken_pcu(["active"], "yes"), id="string-active"),
        pytest.param(broken_pcu(["devName"], 1), id="number-devname"),
        pytest.param(broken_pcu(["channels"], None), id="no-channels"),
        pytest.param(broken_pcu(["channels"], []), id="empty-channels"),
        pytest.param(broken_pcu(["channels"], {"0": {}}), id="dict-channels"),
        pytest.param(broken_pcu(["channels", 0], "ch"), id="string-channel"),
        pytest.param(broken_pcu(["channels", 0, "watts"], 240), id="number-watts"),
        pytest.param(broken_pcu(["channels", 0, "watts", "now"], "240"), id="string-power"),
        pytest.param(broken_pcu(["channels", 0, "lastReading", "acVoltageINmV"], [1]), id="list-voltage"),
        pytest.param(broken_pcu(["channels", 0, "lifetime", "joulesProduced"], True), id="bool-energy"),
        pytest.param(wrong(["deviceCount"], "1", device_data(pcu("550000000001"))), id="string-count"),
    ],
)
def test_device_data_rejects(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_device_data(body)


# --------------------------------------------------------------------------------------------
# Arbitrary input: ParseError or a result, never another exception

PARSERS: dict[str, Callable[[bytes], object]] = {
    "info": parse_info,
    "production_json": parse_production_json,
    "production_html": parse_production_html,
    "v1_production": parse_v1_production,
    "v1_inverters": parse_v1_inverters,
    "device_data": parse_device_data,
}

# Every node of a valid body replaced by each of these (or deleted) must still give a result
# or ParseError: this walks all the places a firmware could put a surprise.
SURPRISES: list[Any] = ["x", "", [], {}, True, None, 0.5, 10**400]
DELETE = object()


def node_paths(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    children = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    return [path] + [p for key, child in children for p in node_paths(child, (*path, key))]


def mutated(base: Any, path: tuple[Any, ...], value: Any) -> bytes:
    if not path:
        return dumps(value)
    data = json.loads(json.dumps(base))
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return dumps(data)


VALID_BODIES: dict[str, Any] = {
    "production_json": FULL_PRODUCTION,
    "v1_production": V1_PRODUCTION,
    "v1_inverters": [v1_entry("770000000001", 210), v1_entry("880000000001", 3, dev_type=11)],
    "device_data": device_data(
        pcu("550000000001"), removed_pcu("550000000002"), CT_METER, acb("121900000011", used=900)
    ),
}


# What each parser gives for a body it makes sense of.
RESULT_TYPES: dict[str, type] = {
    "info": GatewayInfo,
    "production_json": ProductionJson,
    "production_html": Reading,
    "v1_production": Reading,
    "v1_inverters": V1Inverters,
    "device_data": DeviceData,
}


def result_or_error(name: str, body: bytes) -> object:
    """The parser's result, or the ParseError it raised; anything else it raises propagates."""
    try:
        return PARSERS[name](body)
    except ParseError as exc:
        return exc


@pytest.mark.parametrize("name", VALID_BODIES)
def test_surprise_anywhere_gives_result_or_parse_error(name: str) -> None:
    base = VALID_BODIES[name]
    kinds = Counter(
        type(result_or_error(name, mutated(base, path, value)))
        for path in node_paths(base)
        for value in [*SURPRISES, *([DELETE] if path else [])]
    )
    # Both happen: a surprise where it matters is refused, one in an optional place is survived.
    assert set(kinds) == {RESULT_TYPES[name], ParseError}, kinds


@pytest.mark.parametrize("name", ["info", "production_html"])
@settings(max_examples=25, deadline=None, database=None)
@given(
    raw=st.binary(max_size=80)
    | st.text(alphabet="<>/ =\"'&;!?-.0123456789kMWhsnCurrently", max_size=80).map(str.encode)
)
def test_text_parsers_raise_only_parse_error(name: str, raw: bytes) -> None:
    assert isinstance(result_or_error(name, raw), RESULT_TYPES[name] | ParseError)


# --------------------------------------------------------------------------------------------
# The real captures in ../shared

ENDPOINT_FILES = {
    "info": re.compile(r"info"),
    "production_json": re.compile(r"production\.json(_details_1(\.json)?)?"),
    "production_html": re.compile(r"production"),
    "v1_production": re.compile(r"api_v1_production"),
    "v1_inverters": re.compile(r"api_v1_production_inverters"),
    "device_data": re.compile(r"ivp_pdm_device_data(_\d+)?"),
}


def capture_files(endpoint: str) -> list[Path]:
    if not SHARED_FIXTURES.is_dir():
        return []
    pattern = ENDPOINT_FILES[endpoint]
    return sorted(p for p in SHARED_FIXTURES.glob("*/*") if pattern.fullmatch(p.name))


CAPTURES = [
    pytest.param(endpoint, path, id=f"{endpoint}-{path.parent.name}-{path.name}")
    for endpoint in ENDPOINT_FILES
    for path in capture_files(endpoint)
]


def expected() -> dict[str, Any]:
    return json.loads((SHARED_FIXTURES / "expected.json").read_text())


# The captures each parser must refuse; every other capture of its endpoint must parse.
REFUSED = {
    # pre-v4 Envoys answer /production.json with an HTML page
    "production_json": {"3.7.0", "3.8.10", "3.9.36", "3.9.36_bad_auth"},
    "v1_inverters": {"3.9.36_bad_auth"},  # {"status": 401, ...}
}
HTML_PAGE_CAPTURES = {"3.7.0", "3.8.10", "3.9.36", "3.9.36_bad_auth"}  # newer ones answer JSON


@needs_shared
@pytest.mark.parametrize(("endpoint", "path"), CAPTURES)
def test_capture_parses_or_raises_parse_error(endpoint: str, path: Path) -> None:
    capture = path.parent.name
    if endpoint == "production_html":
        refused = capture not in HTML_PAGE_CAPTURES
    else:
        refused = capture in REFUSED.get(endpoint, set())
    if refused:
        with pytest.raises(ParseError):
            PARSERS[endpoint](path.read_bytes())
    else:
        PARSERS[endpoint](path.read_bytes())


@needs_shared
def test_every_capture_has_been_tried() -> None:
    captures = [p for p in SHARED_FIXTURES.iterdir() if p.is_dir()]
    assert len(capture_files("info")) == len(captures)
    assert all(capture_files(endpoint) for endpoint in ENDPOINT_FILES)


def tag_text(raw: str, tag: str) -> str:
    match = re.search(f"<{tag}>([^<]+)</{tag}>", raw)
    assert match is not None
    return match.group(1)


@needs_shared
@pytest.mark.parametrize("path", capture_files("info"), ids=lambda p: p.parent.name)
def test_capture_info_serial_and_firmware(path: Path) -> None:
    raw = path.read_text()
    info = parse_info(path.read_bytes())
    assert info.serial == tag_text(raw, "sn")
    assert info.firmware == tag_text(raw, "software")
    assert info.firmware.lstrip("DRM").split(".")[0] == path.parent.name.split(".")[0]


@needs_shared
def test_capture_pre_v4_production_json_is_html() -> None:
    for name in ("3.7.0", "3.8.10", "3.9.36"):
        with pytest.raises(ParseError, match="HTML"):
            parse_production_json((SHARED_FIXTURES / name / "production.json").read_bytes())


@needs_shared
def test_capture_legacy_page_matches_expected() -> None:
    want = expected()["3.7.0"]["production"]
    reading = parse_production_html((SHARED_FIXTURES / "3.7.0" / "production").read_bytes())
    assert reading.power_w == want["watts_now"]
    assert reading.today_j == want["watt_hours_today"] * WH
    assert reading.last_seven_days_j == want["watt_hours_last_7_days"] * WH
    assert reading.lifetime_j == want["watt_hours_lifetime"] * WH


@needs_shared
def test_capture_consumption_without_measurement_type() -> None:
    result = parse_production_json((SHARED_FIXTURES / "4.2.33" / "production.json").read_bytes())
    assert [c.measurement_type for c in result.consumption] == [None]


@needs_shared
def test_capture_split_phase_trailing_zero_line() -> None:
    body = (SHARED_FIXTURES / "8.3.5433_tot_is_net_cons" / "production.json_details_1").read_bytes()
    production = parse_production_json(body).production
    assert production is not None
    assert len(production.lines) == 3
    assert production.lines[2].power_w == 0 and production.lines[2].lifetime_j == 0
    assert production.lines[0].lifetime_j == pytest.approx(7201352.16 * WH)


@needs_shared
def test_capture_acb_storage() -> None:
    storage = parse_production_json(
        (SHARED_FIXTURES / "8.2.4382_ACB" / "production.json").read_bytes()
    ).storage
    assert storage is not None
    assert (storage.active_count, storage.state, storage.soc_ratio) == (3, "discharging", 0.25)


@needs_shared
def test_capture_v1_inverters_acb() -> None:
    result = parse_v1_inverters(
        (SHARED_FIXTURES / "8.2.4382_ACB" / "api_v1_production_inverters").read_bytes()
    )
    assert (len(result.inverters), len(result.batteries)) == (17, 3)


@needs_shared
def test_capture_ac_batteries_in_device_data_add_up_to_the_storage_section() -> None:
    # 8.3.5169: two ACBs, each drew ~938 J in 932 s; the storage section of production.json,
    # read at the second one's endDate, says -2 W for both ("idle", the standby draw).
    folder = SHARED_FIXTURES / "8.3.5169_ACB_inventory"
    batteries = parse_device_data((folder / "ivp_pdm_device_data").read_bytes()).batteries
    assert [b.serial for b in batteries] == ["121917000000", "122047000000"]
    assert [round(b.power_w, 3) for b in batteries] == [round(-939 / 932, 3), round(-938 / 932, 3)]
    assert [b.soc_ratio for b in batteries] == [0.02, 0.0]
    (storage,) = json.loads((folder / "production.json").read_bytes())["storage"]
    assert sum(b.power_w for b in batteries) == pytest.approx(storage["wNow"], abs=0.5)


DEVICE_DATA_CAPTURES = [
    "8.2.4345_with_device_data",
    "8.3.5289_modGone",
    "8.3.5169_ACB_inventory",
    "8.3.5433_tot_is_net_cons",
]


@needs_shared
@pytest.mark.parametrize("name", DEVICE_DATA_CAPTURES)
def test_capture_device_data_matches_expected(name: str) -> None:
    want = expected()[name]["inverters"]
    inverters = {
        i.serial: i
        for i in parse_device_data((SHARED_FIXTURES / name / "ivp_pdm_device_data").read_bytes()).inverters
    }
    assert len(inverters) == want["count"]
    for serial, sample in want["samples"].items():
        got = inverters[serial]
        assert got.ac_voltage_v == sample["ac_voltage"]
        assert got.ac_current_a == sample["ac_current"]
        assert got.ac_frequency_hz == sample["ac_frequency"]
        assert got.dc_voltage_v == sample["dc_voltage"]
        assert got.dc_current_a == sample["dc_current"]
        assert got.temperature_c == sample["temperature"]
        assert got.last_report_s == sample["last_report_date"]
        assert got.power_w == sample["last_report_watts"]
        assert got.max_power_w == sample["max_report_watts"]
        assert got.today_j == sample["energy_today"] * WH
        # pyenphase reports lifetime Wh rounded from the gateway's joules; we keep the joules.
        assert got.lifetime_j is not None
        assert round(got.lifetime_j / WH) == sample["lifetime_energy"]
