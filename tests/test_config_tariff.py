"""The gateway's time zone and the prices given in the configuration (for gateways that hold no
tariff): valid forms, and errors that name their key and exit 2."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from envoy_exporter.cli import main
from envoy_exporter.config.load import ConfigError, load_config
from envoy_exporter.snapshot.model import Rates, Tariff
from envoy_exporter.snapshot.pricing import EXPORT, FLAT, IMPORT, Price, prices


def _load(tmp_path: Path, text: str):
    path = tmp_path / "exporter.yml"
    path.write_text(text)
    return load_config(path, env={})


def _error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    return caught.value


def test_a_timezone_per_gateway(tmp_path):
    settings = _load(tmp_path, "gateways:\n  - host: a\n    timezone: America/New_York\n  - host: b\n")
    assert [g.timezone for g in settings.gateways] == ["America/New_York", None]


def test_flat_rates_in_defaults_reach_every_gateway(tmp_path):
    text = "defaults:\n  tariff: {currency: eur, import: 0.30, export: 0.08}\ngateways:\n  - host: a\n"
    settings = _load(tmp_path, text)
    assert settings.gateways[0].tariff == Tariff("EUR", buy=Rates(flat=0.30), sell=Rates(flat=0.08))
    assert settings.defaults["tariff"] == settings.gateways[0].tariff  # discovered gateways too


def test_a_gateways_own_tariff_wins(tmp_path):
    text = (
        "defaults:\n  tariff: {currency: EUR, import: 0.30}\n"
        "gateways:\n  - host: a\n    tariff: {currency: GBP, import: 0.25}\n  - host: b\n"
    )
    own, inherited = _load(tmp_path, text).gateways
    assert own.tariff == Tariff("GBP", buy=Rates(flat=0.25))
    assert inherited.tariff == Tariff("EUR", buy=Rates(flat=0.30))


def test_periods_of_the_day(tmp_path):
    text = """
gateways:
  - host: a
    tariff:
      currency: EUR
      import: 0.25
      export: 0.07
      periods:
        - {start: "07:00", name: peak, import: 0.40, export: 0.10}
        - {start: "21:30", name: night, import: 0.18}
"""
    tariff = _load(tmp_path, text).gateways[0].tariff
    at = datetime.fromisoformat
    assert prices(tariff, at("2025-02-03 12:00")) == {
        IMPORT: Price(0.40, "peak"),
        EXPORT: Price(0.10, "peak"),
    }
    # a period without an export rate sells at the flat one
    assert prices(tariff, at("2025-02-03 22:00")) == {IMPORT: Price(0.18, "night"), EXPORT: Price(0.07, FLAT)}
    # before 07:00 the night that began at 21:30 runs on
    assert prices(tariff, at("2025-02-04 06:59"))[IMPORT] == Price(0.18, "night")


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("timezone: Mars/Olympus", "gateways[0].timezone", "is not a time zone"),
        ("timezone: 5", "gateways[0].timezone", "must be a string"),
        ("tariff: {import: 0.3}", "gateways[0].tariff.currency", "is required"),
        ("tariff: {currency: euro, import: 0.3}", "gateways[0].tariff.currency", "currency code"),
        ("tariff: {currency: EUR}", "gateways[0].tariff.import", "is required"),
        ("tariff: {currency: EUR, import: -1}", "gateways[0].tariff.import", "must be a number >= 0"),
        ("tariff: {currency: EUR, import: 0.3, export: x}", "gateways[0].tariff.export", "must be a number"),
        ("tariff: {currency: EUR, import: 0.3, sell: 1}", "gateways[0].tariff.sell", "unknown key"),
        ("tariff: 0.3", "gateways[0].tariff", "must be a mapping"),
        ("tariff: {currency: EUR, import: 0.3, periods: x}", "gateways[0].tariff.periods", "must be a list"),
        (
            "tariff: {currency: EUR, import: 0.3, periods: [{start: 7, import: 0.4}]}",
            "gateways[0].tariff.periods[0].start",
            "must be a string",
        ),
        (
            'tariff: {currency: EUR, import: 0.3, periods: [{start: "25:00", import: 0.4}]}',
            "gateways[0].tariff.periods[0].start",
            "HH:MM",
        ),
        (
            'tariff: {currency: EUR, import: 0.3, periods: [{start: "07:00"}]}',
            "gateways[0].tariff.periods[0].import",
            "is required",
        ),
        (
            'tariff: {currency: EUR, import: 0.3, periods: [{start: "09:00", import: 1}, '
            '{start: "07:00", import: 2}]}',
            "gateways[0].tariff.periods",
            "in order",
        ),
    ],
)
def test_mistakes_name_their_key(tmp_path, text, key, words):
    err = _error(tmp_path, f"gateways:\n  - host: a\n    {text}\n")
    assert err.key == key
    assert words in err.message


def test_a_bad_timezone_exits_2_naming_the_key(tmp_path, capsys):
    path = tmp_path / "exporter.yml"
    path.write_text("gateways:\n  - host: a\n    timezone: Europe/Atlantis\n")
    for flags in (["--check-config"], []):
        assert main(["--config.file", str(path), *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("envoy-exporter: configuration error: gateways[0].timezone: ")
        assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("tariff: {currency: EUR, import: .inf}", "gateways[0].tariff.import"),
        ("tariff: {currency: EUR, import: 0.3, export: .inf}", "gateways[0].tariff.export"),
        (
            'tariff: {currency: EUR, import: 0.3, periods: [{start: "07:00", import: .Inf}]}',
            "gateways[0].tariff.periods[0].import",
        ),
    ],
)
def test_an_infinite_rate_is_no_price(tmp_path, text, key):
    # An infinite rate would make the cost counter +Inf for good.
    err = _error(tmp_path, f"gateways:\n  - host: a\n    {text}\n")
    assert err.key == key
