"""The slow-cache endpoints: the battery profile (``/admin/lib/tariff``), the system controller's
dry contacts and generator, and the gateway's connectivity (``/home.json``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import FIXTURES, SHARED_FIXTURES, needs_shared
from parser_mutations import assert_damage_is_handled, assert_truncations_refused

from envoy_exporter.snapshot.model import (
    DayType,
    DryContact,
    DryContactSetting,
    Generator,
    HomeStatus,
    NetworkInterface,
    RatePeriod,
    Rates,
    Season,
    StorageSettings,
    Tariff,
)
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers.ensemble_relays import (
    parse_dry_contact_settings,
    parse_dry_contacts,
    parse_generator,
)
from envoy_exporter.snapshot.parsers.home import parse_home
from envoy_exporter.snapshot.parsers.tariff import parse_tariff

SETTINGS = FIXTURES / "settings"


def _body(name: str) -> bytes:
    return (SETTINGS / name).read_bytes()


# --------------------------------------------------------------------------------------------
# /admin/lib/tariff


def test_storage_settings_in_base_units() -> None:
    assert parse_tariff(_body("admin_lib_tariff_backup.json")).storage == StorageSettings(
        mode="backup", reserve_ratio=0.80, very_low_ratio=0.15, charge_from_grid=True
    )


def test_a_tariff_without_storage_settings_reports_nothing() -> None:
    assert parse_tariff(_body("admin_lib_tariff_no_storage.json")).storage == StorageSettings()


def test_an_empty_mode_is_no_mode() -> None:
    body = json.dumps({"tariff": {"storage_settings": {"mode": "", "reserved_soc": 10}}}).encode()
    assert parse_tariff(body).storage == StorageSettings(reserve_ratio=0.10)


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": "404 - Not Found"}',
        b"<!DOCTYPE html><html><head></head></html>",  # what firmware 3.18 answers
        b'{"tariff": {"storage_settings": {"reserved_soc": 250}}}',
        b'{"tariff": {"storage_settings": {"reserved_soc": -5}}}',
        b'{"tariff": {"storage_settings": {"charge_from_grid": "yes"}}}',
        b'{"tariff": []}',
        b'{"tariff": {"single_rate": {"rate": -0.2}}}',
        b'{"tariff": {"seasons": [{"start": "13/1", "days": []}]}}',
        b'{"tariff": {"seasons": [{"start": "summer", "days": []}]}}',
        b'{"tariff": {"seasons": [{"start": "1/1"}, {"start": "1/1"}]}}',
        b'{"tariff": {"seasons": [{"start": "1/1", "days": [{"days": "Mon,Funday", "periods": []}]}]}}',
        b'{"tariff": {"seasons": [{"start": "1/1", "days": [{"days": "Mon", "periods": [{"start": 1440}]}]}]}}',  # noqa: E501
        b'{"tariff": {"seasons": {"start": "1/1"}}}',
        '{"tariff": {"seasons": [{"start": "1/\u00b2", "days": []}]}}'.encode(),  # a superscript 2
        '{"tariff": {"seasons": [{"start": "\u0661/\u0662", "days": []}]}}'.encode(),  # Arabic-Indic digits
    ],
)
def test_bad_tariff(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_tariff(body)


# --------------------------------------------------------------------------------------------
# /ivp/ensemble/dry_contacts and /ivp/ensemble/generator


def test_dry_contacts_open_and_closed() -> None:
    assert parse_dry_contacts(_body("ivp_ensemble_dry_contacts.json")) == (
        DryContact("NC1", closed=False),
        DryContact("NC2", closed=True),
        DryContact("NO1", closed=True),
        DryContact("NO2", closed=False),
    )


def test_dry_contacts_without_id_unknown_status_or_twice_are_left_out() -> None:
    body = json.dumps(
        {
            "dry_contacts": [
                {"status": "closed"},
                {"id": "NC1", "status": "tripped"},
                {"id": "NO1", "status": "open"},
                {"id": "NO1", "status": "closed"},
            ]
        }
    ).encode()
    assert parse_dry_contacts(body) == (DryContact("NO1", closed=False),)


def test_a_running_generator() -> None:
    assert parse_generator(_body("ivp_ensemble_generator_running.json")) == Generator(
        present=True, relay_closed=True
    )


def test_no_generator_has_no_relay_state() -> None:
    # Gateways with a system controller but no generator answer "present": 0 with an "open"
    # oper_state (8.2.4345, 8.3.1598_collar): the relay of a generator that is not there is
    # not reported, so the generator alert and dashboard never show a relay that means nothing.
    body = b'{"admin_state": "unknown", "oper_state": "open", "present": 0, "type": 1}'
    assert parse_generator(body) == Generator(present=False, relay_closed=None)


def test_relay_state_without_presence_is_kept() -> None:
    # Nothing says the generator is absent: the relay is reported as the gateway gives it.
    assert parse_generator(b'{"oper_state": "close"}') == Generator(present=None, relay_closed=True)


def test_dry_contact_settings() -> None:
    assert parse_dry_contact_settings(_body("ivp_ss_dry_contact_settings.json")) == (
        DryContactSetting("NC1", kind="load", mode="soc", soc_low_ratio=0.25, soc_high_ratio=0.55),
        DryContactSetting("NO1", kind="3rd-pv", mode="manual", soc_low_ratio=0.70, soc_high_ratio=0.90),
        DryContactSetting("NO2", kind="none", mode="manual", soc_low_ratio=0.30, soc_high_ratio=0.70),
    )
    assert parse_dry_contact_settings(b"[]") == ()  # firmware 3: no system controller


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": "404 - Not Found"}',
        b'{"dry_contacts": {"id": "NC1"}}',
        b'{"dry_contacts": [{"id": "NC1", "soc_low": 130}]}',
        b'{"dry_contacts": [{"id": "NC1", "mode": 3}]}',
    ],
)
def test_bad_dry_contact_settings(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_dry_contact_settings(body)


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (parse_dry_contacts, b'{ "error" : "404 - Not Found" }'),
        (parse_dry_contacts, b'{"dry_contacts": {"id": "NC1"}}'),
        (parse_generator, b'{ "error" : "404 - Not Found" }'),
        (parse_generator, b'{"present": "yes"}'),
        (parse_generator, b"[]"),
    ],
)
def test_bad_relays(parse: Callable[[bytes], Any], body: bytes) -> None:
    with pytest.raises(ParseError):
        parse(body)


# --------------------------------------------------------------------------------------------
# /home.json


def test_home_enlighten_link_and_interfaces() -> None:
    assert parse_home(_body("home.json")) == HomeStatus(
        enlighten_connected=True,
        last_enlighten_report_s=1764500000.0,
        interfaces=(
            # Ethernet's 1-of-1 "signal" is no signal: only wireless interfaces have one.
            NetworkInterface("eth0", "ethernet", up=True),
            NetworkInterface("wlan0", "wifi", up=True, signal_ratio=0.4),
            NetworkInterface("ppp0", "cellular", up=False),  # 0 of 0: no modem
        ),
        timezone="Europe/Amsterdam",
    )


def test_home_without_interfaces() -> None:
    body = b'{"network": {"web_comm": false, "last_enlighten_report_time": 0}}'
    assert parse_home(body) == HomeStatus(enlighten_connected=False)


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>Envoy</body></html>",
        b'{"timezone": "UTC"}',
        b'{"network": {"interfaces": {}}}',
        b'{"network": {"web_comm": "true"}}',
    ],
)
def test_bad_home(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_home(body)


def test_a_time_of_use_tariff() -> None:
    answer = parse_tariff(_body("admin_lib_tariff_time_of_use.json"))
    # Older firmware's name for the economy profile
    assert answer.storage.mode == "economy"
    weekdays, every_day = frozenset(range(5)), frozenset(range(7))
    assert answer.tariff == Tariff(
        currency="USD",
        buy=Rates(
            flat=0.2,
            seasons=(  # sorted by start
                Season(
                    (5, 1),
                    (
                        DayType(
                            every_day,
                            (
                                RatePeriod(360, 0.21, "off_peak"),
                                RatePeriod(960, 0.48, "peak"),
                                RatePeriod(1320, 0.15, "filler"),
                            ),
                        ),
                    ),
                    "summer",
                ),
                Season(
                    (11, 1),
                    (
                        DayType(
                            weekdays,
                            (
                                RatePeriod(0, 0.18, "filler"),
                                RatePeriod(1020, 0.36, "peak"),
                                RatePeriod(1260, 0.18, "filler"),
                            ),
                        ),
                        DayType(frozenset({5, 6}), (RatePeriod(0, 0.17, "filler"),)),
                    ),
                    "winter",
                ),
            ),
        ),
        sell=Rates(
            flat=0.05,
            seasons=(
                Season(
                    (1, 1),
                    (
                        DayType(
                            every_day,
                            (
                                RatePeriod(0, 0.04, "filler"),
                                RatePeriod(1020, 0.09, "evening"),
                                RatePeriod(1260, 0.04, "filler"),
                            ),
                        ),
                    ),
                    "all_year",
                ),
            ),
        ),
    )
    assert answer.tariff.held


def test_a_flat_tariff_and_none() -> None:
    flat = parse_tariff(_body("admin_lib_tariff_backup.json")).tariff
    assert flat == Tariff("AUD", buy=Rates(flat=0.28), sell=Rates(flat=0.05))
    assert flat.held
    none = parse_tariff(b'{"tariff": {"currency": {"code": "EUR"}, "single_rate": {"rate": 0, "sell": 0}}}')
    assert none.tariff is not None and not none.tariff.held
    assert parse_tariff(b'{"tariff": {"storage_settings": {"mode": "backup"}}}').tariff is None


# --------------------------------------------------------------------------------------------
# Damaged answers: a result or ParseError, nothing else

GOOD = [
    (parse_tariff, "admin_lib_tariff_backup.json"),
    (parse_tariff, "admin_lib_tariff_time_of_use.json"),
    (parse_dry_contacts, "ivp_ensemble_dry_contacts.json"),
    (parse_generator, "ivp_ensemble_generator_running.json"),
    (parse_dry_contact_settings, "ivp_ss_dry_contact_settings.json"),
    (parse_home, "home.json"),
]


@pytest.mark.parametrize(("parse", "name"), GOOD)
def test_every_damaged_value_gives_a_result_or_parse_error(parse: Callable[[bytes], Any], name: str) -> None:
    assert_damage_is_handled(parse, _body(name))


@pytest.mark.parametrize(("parse", "name"), GOOD)
def test_every_truncation_is_a_parse_error(parse: Callable[[bytes], Any], name: str) -> None:
    assert_truncations_refused(parse, _body(name))


# --------------------------------------------------------------------------------------------
# The real captures and what pyenphase asserts for them


def _expected() -> dict[str, dict[str, Any]]:
    return json.loads((SHARED_FIXTURES / "expected.json").read_text())


@needs_shared
def test_captures_match_pyenphase_storage_settings() -> None:
    checked = 0
    for name, expected in _expected().items():
        values = expected.get("tariff_storage_settings")
        if not values:
            continue
        settings = parse_tariff((SHARED_FIXTURES / name / "admin_lib_tariff").read_bytes()).storage
        assert settings.mode == values["mode"], name
        assert settings.reserve_ratio == pytest.approx(values["reserved_soc"] / 100), name
        assert settings.very_low_ratio == pytest.approx(values["very_low_soc"] / 100), name
        assert settings.charge_from_grid is values["charge_from_grid"], name
        checked += 1
    assert checked == 14


@needs_shared
def test_captures_match_pyenphase_dry_contacts() -> None:
    checked = 0
    for name, expected in _expected().items():
        values = expected.get("dry_contacts")
        if not values:
            continue
        contacts = parse_dry_contacts((SHARED_FIXTURES / name / "ivp_ensemble_dry_contacts").read_bytes())
        assert {c.contact: c.closed for c in contacts} == {k: v == "closed" for k, v in values.items()}, name
        checked += 1
    assert checked == 5


@needs_shared
def test_every_captured_home_parses() -> None:
    homes = [parse_home(path.read_bytes()) for path in sorted(SHARED_FIXTURES.glob("*/home"))]
    assert len(homes) >= 4
    assert all(h.last_enlighten_report_s and h.interfaces for h in homes)


@needs_shared
def test_captures_dry_contact_settings() -> None:
    found = {}
    for path in sorted(SHARED_FIXTURES.glob("*/ivp_ss_dry_contact_settings")):
        try:
            found[path.parent.name] = parse_dry_contact_settings(path.read_bytes())
        except ParseError:
            continue  # a 404 (no system controller support) or a login page where the capture had no access
    nc1 = found["8.1.41"][0]
    assert (nc1.contact, nc1.kind, nc1.mode, nc1.soc_low_ratio, nc1.soc_high_ratio) == (
        "NC1",
        "load",
        "soc",
        0.3,
        0.4,
    )
    assert found["8.3.5167_3rd-pv"][0].kind == "3rd-pv"
    assert len(found) >= 15
    assert all(len(settings) == 4 for settings in found.values())  # NC1, NC2, NO1, NO2
