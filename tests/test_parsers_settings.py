"""The slow-cache endpoints: the battery profile (``/admin/lib/tariff``), the system controller's
dry contacts and generator, and the gateway's connectivity (``/home.json``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import FIXTURES, SHARED_FIXTURES, needs_shared
from parser_mutations import assert_damage_is_handled, assert_truncations_refused

from envoy_exporter.snapshot.model import DryContact, Generator, HomeStatus, NetworkInterface, StorageSettings
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers.ensemble_relays import parse_dry_contacts, parse_generator
from envoy_exporter.snapshot.parsers.home import parse_home
from envoy_exporter.snapshot.parsers.tariff import parse_tariff

SETTINGS = FIXTURES / "settings"


def _body(name: str) -> bytes:
    return (SETTINGS / name).read_bytes()


# --------------------------------------------------------------------------------------------
# /admin/lib/tariff


def test_storage_settings_in_base_units() -> None:
    assert parse_tariff(_body("admin_lib_tariff_backup.json")) == StorageSettings(
        mode="backup", reserve_ratio=0.80, very_low_ratio=0.15, charge_from_grid=True
    )


def test_a_tariff_without_storage_settings_reports_nothing() -> None:
    assert parse_tariff(_body("admin_lib_tariff_no_storage.json")) == StorageSettings()


def test_an_empty_mode_is_no_mode() -> None:
    body = json.dumps({"tariff": {"storage_settings": {"mode": "", "reserved_soc": 10}}}).encode()
    assert parse_tariff(body) == StorageSettings(reserve_ratio=0.10)


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": "404 - Not Found"}',
        b"<!DOCTYPE html><html><head></head></html>",  # what firmware 3.18 answers
        b'{"tariff": {"storage_settings": {"reserved_soc": 250}}}',
        b'{"tariff": {"storage_settings": {"reserved_soc": -5}}}',
        b'{"tariff": {"storage_settings": {"charge_from_grid": "yes"}}}',
        b'{"tariff": []}',
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


# --------------------------------------------------------------------------------------------
# Damaged answers: a result or ParseError, nothing else

GOOD = [
    (parse_tariff, "admin_lib_tariff_backup.json"),
    (parse_dry_contacts, "ivp_ensemble_dry_contacts.json"),
    (parse_generator, "ivp_ensemble_generator_running.json"),
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
        settings = parse_tariff((SHARED_FIXTURES / name / "admin_lib_tariff").read_bytes())
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
