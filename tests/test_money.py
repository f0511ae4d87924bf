"""The money keeper: each increase of the corrected net-consumption counters priced at the rate in
force, totals that never fall or spike, kept across restarts."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from envoy_exporter.snapshot.model import (
    WH,
    HomeStatus,
    Meter,
    MeterChannel,
    MeterConfig,
    Rates,
    Snapshot,
    Tariff,
)
from envoy_exporter.snapshot.money import MoneyKeeper, state_path

GATEWAY = Tariff("USD", buy=Rates(flat=0.30), sell=Rates(flat=0.05))
CONFIGURED = Tariff("EUR", buy=Rates(flat=0.20), sell=Rates(flat=0.08))
NONE = Tariff("USD", buy=Rates(flat=0.0), sell=Rates(flat=0.0))
T0 = datetime(2025, 6, 4, 12, tzinfo=timezone.utc).timestamp()


def snapshot(
    imported_wh: float | None,
    exported_wh: float | None = 0.0,
    at: float = T0,
    tariff: Tariff | None = GATEWAY,
    net: bool = True,
    home: HomeStatus | None = None,
) -> Snapshot:
    kind = "net-consumption" if net else "total-consumption"
    config = MeterConfig(2, kind, "enabled", "split", 2, "normal")
    total = MeterChannel(
        eid=2,
        delivered_j=None if imported_wh is None else imported_wh * WH,
        received_j=None if exported_wh is None else exported_wh * WH,
    )
    return Snapshot(collected_at=at, meters=(Meter(config, total),), tariff=tariff, home=home)


def money(keeper: MoneyKeeper, snap: Snapshot, configured: Tariff | None = None, tz: str | None = "UTC"):
    result = keeper.apply(snap, configured, tz).money
    assert result is not None
    return result


def test_first_sight_is_a_baseline_then_each_increase_is_priced() -> None:
    keeper = MoneyKeeper(None)
    first = money(keeper, snapshot(5000.0, 1000.0))
    assert (first.import_cost, first.export_credit, first.currency) == (0.0, 0.0, "USD")
    later = money(keeper, snapshot(5040.0, 1020.0, at=T0 + 60))
    assert later.import_cost == pytest.approx(0.04 * 0.30)
    assert later.export_credit == pytest.approx(0.02 * 0.05)


def test_zeros_are_no_baseline_and_a_fall_is_no_spike() -> None:
    keeper = MoneyKeeper(None)
    money(keeper, snapshot(0.0, 0.0))  # a gateway warming up: not where the counter starts
    money(keeper, snapshot(5000.0, 1000.0, at=T0 + 60))
    assert money(keeper, snapshot(5000.0, 1000.0, at=T0 + 120)).import_cost == 0.0
    money(keeper, snapshot(5010.0, 1000.0, at=T0 + 180))
    # the counters' state was lost: they read lower; the totals hold and go on from there
    fell = money(keeper, snapshot(100.0, 50.0, at=T0 + 240))
    assert fell.import_cost == pytest.approx(0.01 * 0.30)
    assert money(keeper, snapshot(110.0, 50.0, at=T0 + 300)).import_cost == pytest.approx(0.02 * 0.30)


def test_energy_seen_without_a_price_is_priced_when_one_is_known() -> None:
    keeper = MoneyKeeper(None)
    money(keeper, snapshot(5000.0, tariff=None))  # no tariff yet: no currency, no counters
    assert keeper.apply(snapshot(5000.0, tariff=None), None, "UTC").money.import_cost is None
    assert money(keeper, snapshot(5100.0, at=T0 + 60)).import_cost == 0.0  # baseline now
    # the tariff endpoint is not read in this collection: the last known tariff stays in use
    assert money(keeper, snapshot(5200.0, at=T0 + 120, tariff=None)).import_cost == pytest.approx(0.1 * 0.30)


def test_the_configured_tariff_where_the_gateway_holds_none() -> None:
    keeper = MoneyKeeper(None)
    money(keeper, snapshot(1000.0, tariff=NONE), CONFIGURED)
    held = money(keeper, snapshot(1100.0, at=T0 + 60, tariff=NONE), CONFIGURED)
    assert (held.currency, held.import_cost) == ("EUR", pytest.approx(0.1 * 0.20))
    assert {(p.direction, p.rate) for p in held.prices} == {("import", 0.20), ("export", 0.08)}
    # the gateway's own tariff wins where it holds one; its currency starts from zero
    own = money(keeper, snapshot(1200.0, at=T0 + 120, tariff=GATEWAY), CONFIGURED)
    assert (own.currency, own.import_cost) == ("USD", pytest.approx(0.1 * 0.30))


def test_no_counters_without_a_net_consumption_meter_prices_all_the_same() -> None:
    result = money(MoneyKeeper(None), snapshot(1000.0, net=False))
    assert (result.import_cost, result.export_credit) == (None, None)
    assert [p.rate for p in result.prices] == [0.30, 0.05]


def test_local_time_configured_else_as_the_gateway_reports() -> None:
    keeper = MoneyKeeper(None)
    reported = HomeStatus(timezone="Australia/Sydney")
    assert money(keeper, snapshot(1.0, home=reported), tz=None).utc_offset_s == 10 * 3600  # June: AEST
    assert money(keeper, snapshot(1.0, home=reported), tz="Europe/Paris").utc_offset_s == 2 * 3600


def test_totals_survive_a_restart_and_the_gap_is_priced_when_seen(tmp_path: Path) -> None:
    path = state_path(tmp_path, "roof/1")
    assert path.name == "money-roof_1.json"
    keeper = MoneyKeeper(path)
    money(keeper, snapshot(1000.0, 500.0))
    money(keeper, snapshot(1100.0, 520.0, at=T0 + 60))
    keeper.save()
    assert path.stat().st_mode & 0o777 == 0o600
    again = MoneyKeeper(path)
    # 200 Wh imported while the exporter was down, priced at the rate when next seen
    cheaper = Tariff("USD", buy=Rates(flat=0.10), sell=Rates(flat=0.05))
    result = money(again, snapshot(1300.0, 520.0, at=T0 + 3600, tariff=cheaper))
    assert result.import_cost == pytest.approx(0.1 * 0.30 + 0.2 * 0.10)
    assert result.export_credit == pytest.approx(0.02 * 0.05)


def test_an_unusable_state_file_starts_from_zero(tmp_path: Path) -> None:
    path = state_path(tmp_path, "roof")
    path.write_text('{"version": 1, "import": {"priced_j": "x", "totals": {}}}')
    keeper = MoneyKeeper(path)
    assert money(keeper, snapshot(1000.0)).import_cost == 0.0
    assert any(p.name.startswith("money-roof.json.bad-") for p in tmp_path.iterdir())
