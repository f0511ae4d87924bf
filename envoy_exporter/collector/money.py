"""Series of money and days: the rates in force, the grid's cost and credit, and the gateway's
local time's offset from UTC (what dashboards need to start a day at the gateway's midnight).
Same rules as ``data``: ``None`` gives no sample."""

from __future__ import annotations

from envoy_exporter.collector.exposition import with_label
from envoy_exporter.collector.families import Families
from envoy_exporter.snapshot.model import Snapshot


def add_money(f: Families, base: str, s: Snapshot) -> None:
    money = s.money
    if money is None:
        return
    for price in money.prices:
        direction = with_label(base, "direction", price.direction)
        f.gauge(
            "enphase_tariff_price_per_kilowatt_hour",
            "The rate in force now, in currency per kWh",
            with_label(direction, "currency", price.currency),
            price.rate,
        )
        f.state(
            "enphase_tariff_period",
            "1 for the tariff period in force now",
            direction,
            "period",
            price.period,
        )
    if money.currency is not None:
        labels = with_label(base, "currency", money.currency)
        f.counter(
            "enphase_grid_import_cost",
            "Grid import, each part priced at the import rate in force when it was imported",
            labels,
            money.import_cost,
        )
        f.counter(
            "enphase_grid_export_credit",
            "Grid export, each part priced at the export rate in force when it was exported",
            labels,
            money.export_credit,
        )
    f.gauge(
        "enphase_gateway_utc_offset_seconds",
        "How far the gateway's local time is ahead of UTC now",
        base,
        money.utc_offset_s,
    )
