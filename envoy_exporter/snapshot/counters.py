"""Lifetime counters kept monotonic and true.

Gateways report lifetime energy that sometimes falls: the CT-less Envoy-S loses 2^32 J
(``model.WRAP_J``) at a time, a rebooting gateway reads 0 for minutes, a glitch adds megawatt-hours
for one reading. Prometheus reads any fall of a counter as a reset to zero and adds the whole new
value to ``increase()``, so each of these becomes a spike. ``CounterKeeper`` sits between the
snapshot and the collector and turns every raw lifetime value into a counter that never falls and
follows the true energy: a wrap is added back, a bogus reading is held over, a phantom jump is
left out, a real reset continues from where the counter stood. See ``docs/counters.md``.

Series keys are ``(gateway, kind, name, phase)`` with ``phase`` "" for the whole; see
``series_key``. Persisted state is JSON, one file per keeper (``state_path``).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from envoy_exporter.logs import Condition
from envoy_exporter.snapshot.model import (
    WH,
    WRAP_J,
    Flow,
    InverterReading,
    Meter,
    MeterChannel,
    Reading,
    Reported,
    Snapshot,
    evolve,
)
from envoy_exporter.state import read_state, safe_name, write_atomic

log = logging.getLogger(__name__)

# Series kinds, the second element of a key
PRODUCTION = "production"  # name: the production source ("meter", "inverters", "legacy")
CONSUMPTION = "consumption"  # name: "total" (net consumption is a gauge, not kept here)
METER_DELIVERED = "meter_delivered"  # name: the meter's measurement type
METER_RECEIVED = "meter_received"
INVERTER = "inverter"  # name: the microinverter serial
INVERTERS_TOTAL = "inverters_total"  # name: "" (the microinverters' own production, beside the CT)

# Correction kinds, as ``corrections()`` counts them
WRAP, BOGUS, RESET, JUMP = "wrap", "bogus", "reset", "jump"
KINDS = (WRAP, BOGUS, RESET, JUMP)

# Plausibility: a counter may rise by at most max power x time since it last rose x MARGIN, plus
# SLACK_J for rounding. The defaults are generous on purpose: a false "jump" costs real energy.
DEFAULT_MAX_POWER_W = 100_000.0  # a whole system, any flow
INVERTER_MAX_POWER_W = 1_000.0  # one microinverter (the largest Enphase PCU is under 0.5 kW)
MARGIN = 2.0
SLACK_J = WH
# A wrap puts back k x 2^32 J and credits the remainder as energy produced meanwhile. A remainder
# larger than this is more likely a reset gateway seen after a long gap than a week of production,
# so it is treated as a fall instead: losing a gap's energy is better than inventing it.
MAX_WRAP_REMAINDER_J = WRAP_J / 8
# A held level becomes the new level after this many consistent rising readings, or when it has
# stayed (above zero) this long. Zeros alone never do: a gateway can read 0 for a whole night.
CONFIRM_RISES = 3
HOLD_WINDOW_S = 1800.0

STATE_VERSION = 1

# Microinverter series kept per gateway. A gateway has at most a few hundred; one that reports new
# serials at every collection must not grow the keeper and its state file without end. Past the
# bound, the series that rose longest ago is forgotten.
MAX_INVERTER_SERIES = 2_000


def series_key(gateway: str, kind: str, name: str | None, phase: str = "") -> tuple[str, str, str, str]:
    """The key of one counter series: ("gw1", "production", "inverters", "") and the like."""
    return (gateway, kind, name or "", phase)


def state_path(state_dir: Path, gateway: str) -> Path:
    """Where one gateway's counter state lives: ``counters-<gateway>.json``, name made file-safe."""
    return state_dir / f"counters-{safe_name(gateway)}.json"


@dataclass(slots=True)
class _Track:
    """A raw level and when it last rose (energy in the next step accrued since then: inverters
    report every 5 minutes, the exporter may have been down)."""

    raw: float
    moved: float

    def allows(self, raw: float, now: float, max_power_w: float) -> bool:
        bound = max_power_w * max(now - self.moved, 0.0) * MARGIN + SLACK_J
        return 0.0 <= raw - self.raw <= bound

    def advance(self, raw: float, now: float) -> None:
        if raw > self.raw:
            self.moved = now
        self.raw = raw


@dataclass(slots=True)
class _Hold:
    """A reading the keeper does not believe yet, and the readings since that agree with it."""

    kind: str  # BOGUS (fell) or JUMP (rose too fast)
    base: float  # the first raw value of the candidate level
    since: float
    track: _Track
    rises: int = 0


@dataclass(slots=True)
class _Series:
    track: _Track  # the last accepted raw reading
    offset: float  # corrected = raw + offset
    good: float  # the last corrected value given out; never decreases
    hold: _Hold | None = None


class CounterKeeper:
    """Corrects lifetime counters, one keyed series at a time, and persists what it learnt.

    One keeper per gateway (its own state file) is the intended use; keys carry the gateway, so
    one keeper for several gateways works as well. Thread-safe.
    """

    def __init__(self, state_file: Path | None, clock: Callable[[], float] = time.time) -> None:
        self._path = state_file
        self._clock = clock
        self._lock = threading.RLock()
        self._series: dict[tuple[str, ...], _Series] = {}
        self._counts: Counter[tuple[str, str]] = Counter()
        self._last_inverters: dict[str, _Corrected] = {}  # by gateway: the last readings corrected
        self._dirty = False
        self._save_trouble = Condition(log)  # a full disk is said once, not at every collection
        self._load()

    # ---------------------------------------------------------------------------------------
    # One series

    def observe(
        self,
        key: tuple[str, ...],
        raw_j: float | None,
        now: float | None = None,
        max_power_w: float | None = None,
    ) -> float | None:
        """The corrected value for a new raw reading of ``key``; the last good one while holding.

        ``None`` when nothing is known yet (no reading). A series whose readings so far are all
        zero exports 0 without taking it as its baseline (see ``_start``).
        """
        now = self._clock() if now is None else now
        power = max_power_w or DEFAULT_MAX_POWER_W
        with self._lock:
            series = self._series.get(key)
            if raw_j is None or not math.isfinite(raw_j):
                return None if series is None else series.good
            if series is None:
                return self._start(key, raw_j, now)
            return self._step(key, series, raw_j, now, power)

    def _start(self, key: tuple[str, ...], raw: float, now: float) -> float | None:
        if raw < 0.0:
            return None
        if raw == 0.0:
            # A channel that never metered energy reads 0, and so does a gateway warming up after
            # a reboot. The gateway said 0, so 0 is exported; but with no history there is nothing
            # to judge the next value against, so 0 is not taken as the baseline and the first
            # non-zero value starts the series as it comes.
            return 0.0
        if key[1] == INVERTER:
            self._make_room(key[0])
        self._series[key] = _Series(_Track(raw, now), 0.0, raw)
        self._dirty = True
        return raw

    def _make_room(self, gateway: str) -> None:
        inverters = [k for k in self._series if k[0] == gateway and k[1] == INVERTER]
        if len(inverters) >= MAX_INVERTER_SERIES:
            del self._series[min(inverters, key=lambda k: self._series[k].track.moved)]

    def _step(self, key: tuple[str, ...], series: _Series, raw: float, now: float, power: float) -> float:
        if series.track.allows(raw, now, power):
            return self._accept(series, raw, now)
        wraps = _wraps(series.track, raw, now, power)
        if wraps:
            series.offset += wraps * WRAP_J
            self._count(key, WRAP)
            log.info("counter %s: wrapped %d x 2^32 J, corrected", _name(key), wraps)
            return self._accept(series, raw, now)
        if series.track.raw - SLACK_J <= raw < series.track.raw:
            # Rounding jitter at the accepted level: nothing happened, and any hold is over.
            self._dirty |= series.hold is not None
            series.hold = None
            return series.good
        return self._hold(key, series, raw, now, power)

    def _accept(self, series: _Series, raw: float, now: float) -> float:
        self._dirty |= raw != series.track.raw or series.hold is not None
        series.track.advance(raw, now)
        series.hold = None
        # max(): float rounding of raw + offset must never make the counter fall.
        good = max(series.good, raw + series.offset)
        self._dirty |= good != series.good
        series.good = good
        return good

    def _hold(self, key: tuple[str, ...], series: _Series, raw: float, now: float, power: float) -> float:
        hold = series.hold
        if hold is not None and hold.track.allows(raw, now, power):
            if raw > hold.track.raw:
                hold.rises += 1
                self._dirty = True
            hold.track.advance(raw, now)
            if hold.rises >= CONFIRM_RISES or (raw > 0.0 and now - hold.since >= HOLD_WINDOW_S):
                return self._rebase(key, series, hold, raw, now)
            return series.good
        kind = JUMP if raw > series.track.raw else BOGUS
        if hold is None or hold.kind != kind:
            self._count(key, kind)
            # Zeros after a reboot are routine; a phantom jump is worth a user's attention.
            log.log(
                logging.WARNING if kind == JUMP else logging.INFO,
                "counter %s: %s reading %.0f Wh (last %.0f Wh) held",
                _name(key),
                "implausible jump to" if kind == JUMP else "fall to",
                raw / WH,
                series.track.raw / WH,
            )
        series.hold = _Hold(kind, raw, now, _Track(raw, now))
        self._dirty = True
        return series.good

    def _rebase(self, key: tuple[str, ...], series: _Series, hold: _Hold, raw: float, now: float) -> float:
        """The held level is real: continue the counter from where it stood, without the step."""
        step = hold.base - series.track.raw
        if hold.kind == BOGUS:
            self._count(key, RESET)
        log.warning(
            "counter %s: the gateway's lifetime value moved by %.0f Wh and stayed there; "
            "continuing from %.0f Wh without the step",
            _name(key),
            step / WH,
            series.good / WH,
        )
        series.offset = series.good - hold.base
        series.track = _Track(raw, hold.track.moved)
        return self._accept(series, raw, now)

    def _count(self, key: tuple[str, ...], kind: str) -> None:
        self._counts[(key[0], kind)] += 1

    # ---------------------------------------------------------------------------------------
    # A whole snapshot

    def apply(self, gateway: str, snapshot: Snapshot, max_power_w: float | None = None) -> Snapshot:
        """A copy of ``snapshot`` with its lifetime counters corrected, the raw values in
        ``reported``. ``max_power_w`` bounds the production series; consumption and the other
        meters use the system default, each microinverter ``INVERTER_MAX_POWER_W``."""
        if snapshot.reported:
            # Already corrected (a cached snapshot handed back): correcting twice would add offsets
            # to values that already carry them.
            return snapshot
        with self._lock:
            run = _Run(self, gateway, snapshot.collected_at, [])
            production_power = max_power_w or DEFAULT_MAX_POWER_W
            production = run.flow(
                snapshot.production, PRODUCTION, snapshot.production_source, production_power
            )
            corrected = evolve(
                snapshot,
                production=production,
                inverters_total=_inverters_total(run, snapshot, production, production_power),
                consumption_total=run.flow(
                    snapshot.consumption_total, CONSUMPTION, "total", DEFAULT_MAX_POWER_W
                ),
                meters=tuple(run.meter(m, production_power) for m in snapshot.meters),
                inverters=self._inverters(run, snapshot.inverters),
            )
            return evolve(corrected, reported=tuple(run.reported))

    def _inverters(self, run: _Run, inverters: tuple[InverterReading, ...]) -> tuple[InverterReading, ...]:
        """The microinverters with their counters corrected. The microinverters report every
        five minutes, and a collection in between hands back the very readings it had (from
        the cache): then nothing moved, and the corrected readings of last time are the answer
        (unless a series is holding a reading, which time alone may settle)."""
        last = self._last_inverters.get(run.gateway)
        if (
            last is not None
            and len(last.raw) == len(inverters)
            and all(a is b for a, b in zip(last.raw, inverters, strict=True))
            and not self._holding(run.gateway, inverters)
        ):
            run.reported += last.reported
            return last.corrected
        before = len(run.reported)
        corrected = tuple(
            _with(i, lifetime_j=run.value((INVERTER, i.serial, ""), i.lifetime_j, INVERTER_MAX_POWER_W))
            for i in inverters
        )
        self._last_inverters[run.gateway] = _Corrected(inverters, corrected, run.reported[before:])
        return corrected

    def _holding(self, gateway: str, inverters: tuple[InverterReading, ...]) -> bool:
        for inverter in inverters:
            series = self._series.get(series_key(gateway, INVERTER, inverter.serial))
            if series is not None and series.hold is not None:
                return True
        return False

    # ---------------------------------------------------------------------------------------
    # Self-metrics and persistence

    def corrections(self) -> dict[tuple[str, str], int]:
        """(gateway, kind) -> corrections since start, every kind for every gateway known."""
        with self._lock:
            gateways = {key[0] for key in self._series} | {gw for gw, _ in self._counts}
            return {(gw, kind): self._counts[(gw, kind)] for gw in sorted(gateways) for kind in KINDS}

    def corrections_of(self, gateway: str) -> dict[str, int]:
        """Corrections since start of ``gateway``'s series, by kind: read on every scrape, so
        without ``corrections``' pass over every series of the keeper."""
        with self._lock:
            return {kind: self._counts[(gateway, kind)] for kind in KINDS}

    def save(self) -> None:
        """Write the state if it changed: atomically, mode 0600, the previous generation kept
        (``state.write_atomic``). Never raises; a failure is a warning and the next save tries
        again. Call it before the corrected snapshot is served."""
        with self._lock:
            if self._path is None or not self._dirty:
                return
            body = json.dumps(
                {"version": STATE_VERSION, "series": [_dump(k, s) for k, s in self._series.items()]},
                separators=(",", ":"),
            ).encode()
            try:
                write_atomic(self._path, body)
            except OSError as err:
                self._save_trouble.failed("cannot save counter state to %s: %s", self._path, _why(err))
                return
            self._save_trouble.recovered("counter state saved to %s again", self._path)
            self._dirty = False

    def _load(self) -> None:
        """The saved state, else the previous generation; a file that cannot be used is moved
        aside (``state.read_state``), never overwritten, and never fails the caller."""
        if self._path is None:
            return
        series = read_state(self._path, _parse_state)
        if series is None:
            log.info("no usable counter state at %s: starting fresh", self._path)
            return
        self._series = series


@dataclass(frozen=True, slots=True)
class _Corrected:
    """Microinverter readings as a collection gave them, corrected, and the raw values seen."""

    raw: tuple[InverterReading, ...]
    corrected: tuple[InverterReading, ...]
    reported: list[Reported]


@dataclass(slots=True)
class _Run:
    """One ``apply`` pass: the keeper, the gateway, the time, and the raw values seen."""

    keeper: CounterKeeper
    gateway: str
    now: float
    reported: list[Reported]

    def value(self, where: tuple[str, str, str], raw: float | None, power: float) -> float | None:
        if raw is None:
            return None
        self.reported.append(Reported(*where, joules=raw))
        return self.keeper.observe(series_key(self.gateway, *where), raw, self.now, power)

    def reading(self, reading: Reading, kind: str, name: str, phase: str, power: float) -> Reading:
        return _with(reading, lifetime_j=self.value((kind, name, phase), reading.lifetime_j, power))

    def flow(self, flow: Flow | None, kind: str, name: str | None, power: float) -> Flow | None:
        if flow is None:
            return None
        name = name or ""
        return _with(
            flow,
            total=self.reading(flow.total, kind, name, "", power),
            phases={ph: self.reading(r, kind, name, ph, power) for ph, r in flow.phases.items()},
        )

    def channel(self, channel: MeterChannel, name: str, phase: str, power: float) -> MeterChannel:
        return _with(
            channel,
            delivered_j=self.value((METER_DELIVERED, name, phase), channel.delivered_j, power),
            received_j=self.value((METER_RECEIVED, name, phase), channel.received_j, power),
        )

    def meter(self, meter: Meter, production_power: float) -> Meter:
        name = meter.config.measurement_type
        power = production_power if name == PRODUCTION else DEFAULT_MAX_POWER_W
        return _with(
            meter,
            total=None if meter.total is None else self.channel(meter.total, name, "", power),
            phases={ph: self.channel(c, name, ph, power) for ph, c in meter.phases.items()},
        )


T = TypeVar("T")


def _with(obj: T, **changes: Any) -> T:
    """``obj`` with ``changes``, or ``obj`` itself where they change nothing: a corrected counter
    is nearly always the gateway's own reading, and a copy of each reading, microinverter and
    meter channel would be kept for nothing as long as the snapshot lives."""
    for name, value in changes.items():
        if not _same(getattr(obj, name), value):
            return evolve(obj, **changes)
    return obj


def _same(old: Any, new: Any) -> bool:
    if old is new:
        return True
    if isinstance(old, dict) and isinstance(new, dict):  # a flow's or a meter's phases
        return old.keys() == new.keys() and all(old[k] is new[k] for k in old)
    # 0.0 and -0.0 are equal, but not written alike: the sign tells them apart.
    return (
        isinstance(old, float)
        and isinstance(new, float)
        and old == new
        and (old != 0.0 or math.copysign(1.0, old) == math.copysign(1.0, new))
    )


def _inverters_total(run: _Run, snapshot: Snapshot, production: Flow | None, power: float) -> Reading | None:
    """The inverters' own production: where it is the production reading itself (an inverter
    source), the corrected production value, so one counter is kept and corrected once."""
    total = snapshot.inverters_total
    if total is None:
        return None
    if snapshot.production is not None and total is snapshot.production.total and production is not None:
        return production.total
    return run.reading(total, INVERTERS_TOTAL, "", "", power)


def _wraps(track: _Track, raw: float, now: float, power: float) -> int:
    """k when ``raw`` is the accepted level less k x 2^32 J plus a plausible increase, else 0.

    The smallest such k: a fall can be read as several wraps only when the time passed makes the
    remainder plausible, and the keeper never credits energy it cannot account for.
    """
    if raw <= 0.0:
        return 0  # a zero is a gateway that lost its counter, not one that wrapped
    k = math.ceil((track.raw - raw) / WRAP_J)
    unwrapped = raw + k * WRAP_J
    if k >= 1 and unwrapped - track.raw <= MAX_WRAP_REMAINDER_J and track.allows(unwrapped, now, power):
        return k
    return 0


def _name(key: tuple[str, ...]) -> str:
    return "/".join(part for part in key if part)


# -------------------------------------------------------------------------------------------
# State file


def _dump(key: tuple[str, ...], series: _Series) -> dict[str, Any]:
    hold = series.hold
    return {
        "key": list(key),
        "raw": series.track.raw,
        "moved": series.track.moved,
        "offset": series.offset,
        "good": series.good,
        "hold": None
        if hold is None
        else {
            "kind": hold.kind,
            "base": hold.base,
            "since": hold.since,
            "raw": hold.track.raw,
            "moved": hold.track.moved,
            "rises": hold.rises,
        },
    }


def _parse_state(body: bytes) -> dict[tuple[str, ...], _Series]:
    data = json.loads(body)
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise ValueError(f"not a version {STATE_VERSION} counter state")
    series = data["series"]
    if not isinstance(series, list):
        raise TypeError("series is not a list")
    return dict(_parse_series(item) for item in series)


def _parse_series(item: dict[str, Any]) -> tuple[tuple[str, ...], _Series]:
    key = item["key"]
    if not isinstance(key, list) or not key or not all(isinstance(part, str) for part in key):
        raise TypeError(f"bad series key {key!r}")
    hold = item["hold"]
    if hold is not None:
        if hold["kind"] not in (BOGUS, JUMP):
            raise ValueError(f"bad hold kind {hold['kind']!r}")
        hold = _Hold(
            hold["kind"],
            _number(hold, "base"),
            _number(hold, "since"),
            _Track(_number(hold, "raw"), _number(hold, "moved")),
            int(_number(hold, "rises")),
        )
    track = _Track(_number(item, "raw"), _number(item, "moved"))
    return tuple(key), _Series(track, _number(item, "offset"), _number(item, "good"), hold)


def _number(obj: dict[str, Any], name: str) -> float:
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name} is not a number: {value!r}")
    return float(value)


def _why(err: OSError) -> str:
    return err.strerror or str(err) or type(err).__name__
