"""Attacks on the money keeper's counter integrity: states a user's disk or an older exporter can
leave behind, and tariffs whose rates come and go."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from test_money import T0, money, snapshot

from envoy_exporter.snapshot.model import DayType, RatePeriod, Rates, Season, Tariff
from envoy_exporter.snapshot.money import MoneyKeeper, state_path

NO_EXPORT_RATE = Tariff("USD", buy=Rates(flat=0.30), sell=Rates())


def _state(tmp_path: Path, imported: dict, exported: dict) -> Path:
    path = state_path(tmp_path, "roof")
    path.write_text(json.dumps({"version": 1, "import": imported, "export": exported}))
    return path


@pytest.mark.parametrize("priced_j", [-1e12, 0.0])
def test_a_state_priced_at_or_below_zero_is_no_baseline_and_no_spike(tmp_path: Path, priced_j: float) -> None:
    path = _state(tmp_path, {"priced_j": priced_j, "totals": {"USD": 5.0}}, {"priced_j": None, "totals": {}})
    keeper = MoneyKeeper(path)
    first = money(keeper, snapshot(5000.0, 1000.0))
    assert first.import_cost == 5.0  # the total kept; the reading is a baseline, not 5 kWh bought
    assert money(keeper, snapshot(5010.0, 1000.0, at=T0 + 60)).import_cost == pytest.approx(5.0 + 0.01 * 0.30)


def test_an_export_rate_that_appears_later_prices_only_what_flows_after() -> None:
    keeper = MoneyKeeper(None)
    money(keeper, snapshot(1000.0, 1000.0, tariff=NO_EXPORT_RATE))
    none = money(keeper, snapshot(1000.0, 9000.0, at=T0 + 86400, tariff=NO_EXPORT_RATE))
    assert none.export_credit is None  # no rate: no credit series
    money(keeper, snapshot(1000.0, 9000.0, at=T0 + 86460))  # the gateway now has a sell rate
    later = money(keeper, snapshot(1000.0, 9020.0, at=T0 + 86520))
    assert later.export_credit == pytest.approx(0.02 * 0.05)  # not 8 kWh of history at once


def test_a_day_without_a_rate_is_not_billed_on_the_next_day_that_has_one() -> None:
    weekdays = DayType(frozenset(range(5)), (RatePeriod(0, 0.30, "all"),))
    tariff = Tariff("USD", buy=Rates(flat=None, seasons=(Season((1, 1), (weekdays,), "year"),)))
    saturday = datetime(2025, 6, 7, 12, tzinfo=timezone.utc).timestamp()
    keeper = MoneyKeeper(None)
    money(keeper, snapshot(1000.0, at=saturday - 86400, tariff=tariff))  # Friday
    money(keeper, snapshot(1010.0, at=saturday - 86400 + 60, tariff=tariff))
    money(keeper, snapshot(1010.0, at=saturday, tariff=tariff))
    money(keeper, snapshot(5010.0, at=saturday + 86400, tariff=tariff))  # Sunday: 4 kWh, no rate
    monday = money(keeper, snapshot(5020.0, at=saturday + 2 * 86400, tariff=tariff))
    assert monday.import_cost == pytest.approx(0.02 * 0.30)


@pytest.mark.parametrize("total", ['"5"', "NaN", "-1", "1e400", "true"])
def test_a_state_with_unusable_totals_starts_from_zero_and_is_kept_aside(tmp_path: Path, total: str) -> None:
    path = state_path(tmp_path, "roof")
    imported = '{"priced_j":1000,"totals":{"USD":' + total + "}}"
    path.write_text('{"version":1,"import":' + imported + ',"export":{"priced_j":null,"totals":{}}}')
    keeper = MoneyKeeper(path)
    assert money(keeper, snapshot(5000.0)).import_cost == 0.0
    assert any(p.name.startswith("money-roof.json.bad-") for p in tmp_path.iterdir())


def test_a_state_from_an_older_version_is_not_read_as_this_one(tmp_path: Path) -> None:
    path = state_path(tmp_path, "roof")
    path.write_text('{"import":{"priced_j":1000,"totals":{"USD":3}},"export":{"priced_j":1,"totals":{}}}')
    keeper = MoneyKeeper(path)
    assert money(keeper, snapshot(5000.0)).import_cost == 0.0


def test_a_currency_change_starts_a_new_series_and_a_return_resumes_the_old() -> None:
    keeper = MoneyKeeper(None)
    money(keeper, snapshot(1000.0))
    assert money(keeper, snapshot(1100.0, at=T0 + 60)).import_cost == pytest.approx(0.03)
    euros = Tariff("EUR", buy=Rates(flat=0.20), sell=Rates(flat=0.05))
    eur = money(keeper, snapshot(1200.0, at=T0 + 120, tariff=euros))
    assert (eur.currency, eur.import_cost) == ("EUR", pytest.approx(0.02))
    back = money(keeper, snapshot(1300.0, at=T0 + 180))
    assert (back.currency, back.import_cost) == ("USD", pytest.approx(0.06))


def test_a_net_meter_that_goes_missing_and_comes_back_is_no_spike() -> None:
    keeper = MoneyKeeper(None)
    money(keeper, snapshot(1000.0, 500.0))
    gone = money(keeper, snapshot(None, None, at=T0 + 60))
    assert (gone.import_cost, gone.export_credit) == (0.0, 0.0)
    nometer = keeper.apply(snapshot(1000.0, net=False, at=T0 + 120), None, "UTC").money
    assert nometer.import_cost is None
    back = money(keeper, snapshot(1010.0, 500.0, at=T0 + 180))
    assert back.import_cost == pytest.approx(0.01 * 0.30)


NOON = datetime(2025, 6, 4, 12, tzinfo=timezone.utc).timestamp()
MORNING_AND_PEAK = Tariff(
    "USD",
    buy=Rates(
        flat=0.20,
        seasons=(
            Season(
                (1, 1),
                (DayType(frozenset(range(7)), (RatePeriod(0, 0.10, "off"), RatePeriod(720, 0.40, "peak"))),),
                "y",
            ),
        ),
    ),
    sell=Rates(flat=0.05),
)


def test_a_rate_that_changes_between_two_readings_prices_each_part_at_its_own_rate() -> None:
    keeper = MoneyKeeper(None)
    money(keeper, snapshot(1000.0, at=NOON - 60, tariff=MORNING_AND_PEAK))
    # 20 Wh over two minutes across noon: half at the off-peak rate, half at the peak rate
    across = money(keeper, snapshot(1020.0, at=NOON + 60, tariff=MORNING_AND_PEAK))
    assert across.import_cost == pytest.approx(0.01 * 0.10 + 0.01 * 0.40)


def test_after_a_long_outage_the_energy_is_priced_at_the_rate_when_next_seen() -> None:
    keeper = MoneyKeeper(None)
    money(keeper, snapshot(1000.0, at=NOON - 3 * 3600, tariff=MORNING_AND_PEAK))
    seen = money(keeper, snapshot(2000.0, at=NOON + 60, tariff=MORNING_AND_PEAK))
    assert seen.import_cost == pytest.approx(1.0 * 0.40)
