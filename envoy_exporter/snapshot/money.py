"""What the grid cost and what it paid: each part of the energy priced at the rate in force when
it flowed.

``MoneyKeeper`` sits after the counter keeper (``counters.CounterKeeper``): it reads the corrected
lifetime counters of the net-consumption CT (delivered = imported from the grid, received =
exported to it), which never fall and carry no spikes, and adds each increase, in kWh, times the
rate in force (``pricing``) to a running total per currency. What it has priced up to is kept with
the totals, in one state file per gateway written like the counters' (``state.write_atomic``), so
a restart neither loses a total nor prices energy twice. Energy that flowed while the exporter was
down, or before any tariff was known, is priced at the rate in force when it is next seen; energy
that flowed while the known tariff gave its direction no rate is not priced; between two readings
close together, each minute is priced at its own rate (``SPREAD_MAX_S``).

The prices are the gateway's own tariff where it holds one, else the configuration's; local time
is the configured time zone, else the one the gateway reports, else the exporter's.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

from envoy_exporter.logs import Condition
from envoy_exporter.snapshot.model import Money, PriceInForce, Snapshot, Tariff, evolve
from envoy_exporter.snapshot.pricing import EXPORT, IMPORT, Price, local_time, prices, utc_offset_s, zone
from envoy_exporter.state import read_state, safe_name, write_atomic

log = logging.getLogger(__name__)

J_PER_KWH = 3_600_000.0
NET = "net-consumption"
STATE_VERSION = 1
# Between two readings at most this far apart the energy is spread evenly over the time between
# them and each minute priced at its own rate, so a reading just after a period starts does not
# price the minutes before it at the new rate. A longer gap is an outage: its energy is priced at
# the rate in force when it is next seen.
SPREAD_MAX_S = 900.0
SAMPLE_S = 60.0

RateAt = Callable[[float], Price | None]  # the rate in force at a moment (epoch seconds)


def state_path(state_dir: Path, gateway: str) -> Path:
    """Where one gateway's cost and credit live: ``money-<gateway>.json``, name made file-safe."""
    return state_dir / f"money-{safe_name(gateway)}.json"


@dataclass
class _Ledger:
    """One direction: the meter reading priced up to, and the running total per currency."""

    priced_j: float | None = None
    totals: dict[str, float] = field(default_factory=dict)
    # When ``priced_j`` was read; not saved: after a restart the gap is priced as an outage.
    priced_at: float | None = field(default=None, compare=False)

    def add(self, joules: float | None, now: float, rate_at: RateAt | None, currency: str | None) -> bool:
        """Price the energy since the last reading; True when anything changed."""
        if joules is None or not math.isfinite(joules) or joules <= 0.0:
            # Nothing read, or a meter that never metered (or a gateway warming up after a
            # reboot): not a baseline, or its first real reading would be priced whole.
            return False
        since, self.priced_at = self.priced_at, now
        if self.priced_j is None or joules < self.priced_j:
            # First sight, or a counter that fell (its state was lost): start from here.
            self.priced_j = joules
            if rate_at is not None and rate_at(now) is not None and currency is not None:
                self.totals.setdefault(currency, 0.0)
            return True
        rate = None if rate_at is None or currency is None else _mean_rate(rate_at, since, now)
        if rate is None or currency is None:
            # The tariff gives this direction no rate now (no export rate at all, a weekday no day
            # type names): this energy has no price. Moving on keeps a rate that appears later from
            # billing all of it at once.
            moved = joules > self.priced_j
            self.priced_j = joules
            return moved
        changed = currency not in self.totals or joules > self.priced_j
        self.totals[currency] = self.totals.get(currency, 0.0) + (joules - self.priced_j) / J_PER_KWH * rate
        self.priced_j = joules
        return changed


def _mean_rate(rate_at: RateAt, since: float | None, now: float) -> float | None:
    """The rate of energy that flowed evenly from ``since`` to ``now``: the mean of the rates in
    force in each minute (a minute without a rate counts 0); None where no minute has one. Over an
    outage (or with no earlier reading) the rate in force now."""
    if since is None or not 0.0 < now - since <= SPREAD_MAX_S:
        found = rate_at(now)
        return None if found is None else found.rate
    samples = max(1, math.ceil((now - since) / SAMPLE_S))
    step = (now - since) / samples
    found = [rate_at(since + (i + 0.5) * step) for i in range(samples)]
    if all(p is None for p in found):
        return None
    return sum(p.rate for p in found if p is not None) / samples


class MoneyKeeper:
    """One gateway's prices in force, cost and credit; persisted in ``state_file``. Thread-safe."""

    def __init__(self, state_file: Path | None) -> None:
        self._path = state_file
        self._lock = threading.Lock()
        self._ledgers = {IMPORT: _Ledger(), EXPORT: _Ledger()}
        self._tariff: Tariff | None = None  # the gateway's last known tariff
        self._dirty = False
        self._save_trouble = Condition(log)  # a full disk is said once, not at every collection
        self._load()

    def apply(
        self, snapshot: Snapshot, configured: Tariff | None, timezone: str | None, settle: bool = True
    ) -> Snapshot:
        """``snapshot`` with its ``money``: the prices at its collection time, and the totals;
        with ``settle``, the energy since the last snapshot priced into them first."""
        with self._lock:
            if snapshot.tariff is not None:
                self._tariff = snapshot.tariff
            tariff = self._tariff if self._tariff is not None and self._tariff.held else configured
            home_zone = snapshot.home.timezone if snapshot.home else None
            where = zone(timezone) or zone(home_zone)
            now = local_time(snapshot.collected_at, where)
            currency = tariff.currency if tariff is not None else None
            in_force = prices(tariff, now) if tariff is not None and currency else {}
            money = Money(
                prices=tuple(
                    PriceInForce(direction, currency, p.rate, p.period)
                    for direction, p in in_force.items()
                    if currency is not None
                ),
                currency=currency,
                utc_offset_s=utc_offset_s(snapshot.collected_at, where),
            )
            net = next(
                (m for m in snapshot.meters if m.config.measurement_type == NET and m.config.enabled), None
            )
            if net is None or currency is None:
                return evolve(snapshot, money=money)
            if settle:
                delivered = net.total.delivered_j if net.total else None
                received = net.total.received_j if net.total else None
                at = snapshot.collected_at
                self._dirty |= self._ledgers[IMPORT].add(
                    delivered, at, _rate_at(tariff, IMPORT, where), currency
                )
                self._dirty |= self._ledgers[EXPORT].add(
                    received, at, _rate_at(tariff, EXPORT, where), currency
                )
            return evolve(
                snapshot,
                money=evolve(
                    money,
                    import_cost=self._ledgers[IMPORT].totals.get(currency),
                    export_credit=self._ledgers[EXPORT].totals.get(currency),
                ),
            )

    def save(self) -> None:
        """Write the state if it changed (atomically, 0600, the previous generation kept). Never
        raises; a failure is a warning and the next save tries again."""
        with self._lock:
            if self._path is None or not self._dirty:
                return
            body = json.dumps(
                {
                    "version": STATE_VERSION,
                    **{d: {"priced_j": g.priced_j, "totals": g.totals} for d, g in self._ledgers.items()},
                },
                separators=(",", ":"),
            ).encode()
            try:
                write_atomic(self._path, body)
            except OSError as err:
                why = err.strerror or str(err) or type(err).__name__
                self._save_trouble.failed("cannot save cost and credit to %s: %s", self._path, why)
                return
            self._save_trouble.recovered("cost and credit saved to %s again", self._path)
            self._dirty = False

    def _load(self) -> None:
        if self._path is None:
            return
        ledgers = read_state(self._path, _parse_state)
        if ledgers is None:
            log.info("no usable cost and credit state at %s: starting from zero", self._path)
            return
        self._ledgers = ledgers


def _rate_at(tariff: Tariff | None, direction: str, where: tzinfo | None) -> RateAt | None:
    if tariff is None:
        return None
    return lambda moment: prices(tariff, local_time(moment, where)).get(direction)


def _parse_state(body: bytes) -> dict[str, _Ledger]:
    data = json.loads(body)
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise ValueError(f"not a version {STATE_VERSION} cost and credit state")
    return {direction: _parse_ledger(data[direction]) for direction in (IMPORT, EXPORT)}


def _parse_ledger(item: Any) -> _Ledger:
    priced = item["priced_j"]
    totals = item["totals"]
    if priced is not None and not _number(priced):
        raise TypeError(f"priced_j is not a number: {priced!r}")
    if priced is not None and priced <= 0:
        # Never written by the keeper (a reading of 0 is no baseline); as a baseline it would
        # price the whole lifetime at the first reading.
        priced = None
    if not isinstance(totals, dict) or not all(
        isinstance(k, str) and _number(v) and v >= 0 for k, v in totals.items()
    ):
        raise TypeError("totals is not a mapping of currencies to amounts")
    return _Ledger(None if priced is None else float(priced), {k: float(v) for k, v in totals.items()})


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
