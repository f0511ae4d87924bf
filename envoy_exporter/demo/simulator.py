"""The plant behind ``--demo``: sun, panels, microinverters, a house, two batteries and the grid.

Power is a pure function of time: the sun follows a compressed day (``day_seconds`` of real
time per simulated day) so curves move within minutes, clouds and household habits are
deterministic functions of the simulated time. Only the battery's state of charge depends on
history.

Energy is state, and physically honest: every counter grows by the integral of its power over
REAL elapsed seconds, so a dashboard that derives energy from power (or power from counters)
agrees with the gateway. Nothing ticks in the background: ``Plant.observe`` integrates from the
last look to now, under a lock, and returns one consistent ``PlantView`` in which
production - consumption = -net holds on every phase.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

DAY_SECONDS = 600.0  # one simulated day per ten real minutes
PHASES = 3
SUNRISE = 6.25 / 24  # day fractions: a 14-hour summer day
SUNSET = 20.25 / 24
NOMINAL_V = (231.0, 229.5, 232.5)  # per phase: real networks are never quite balanced
MAX_STEPS = 500  # integration steps per catch-up, so a long idle costs bounded time
STEP_S = 2.0  # preferred integration step (real seconds)
REPORT_SLOTS = 288  # inverters report every 5 simulated minutes, as real ones do every 5 minutes
PAST_DAYS = 6  # completed days kept for the last-seven-days figures
PEAK_START = 17 / 24  # the evening peak tariff, when the batteries cover the house
PEAK_END = 23 / 24

LoadProfile = Callable[[float], tuple[float, float, float]]
"""Household load per phase (W) as a function of simulated time in days."""


# --------------------------------------------------------------------------------------------
# Weather and habits: pure functions of simulated time (days since the epoch of the demo)


def sun(fraction: float) -> float:
    """Clear-sky irradiance 0..1 at a day fraction: zero at night, a flattened sine by day."""
    if not SUNRISE < fraction < SUNSET:
        return 0.0
    x = (fraction - SUNRISE) / (SUNSET - SUNRISE)
    return math.sin(math.pi * x) ** 1.3


def _bump(fraction: float, hour: float, width_h: float, watts: float) -> float:
    """A smooth appliance peak centred on ``hour``; distance wraps around midnight."""
    d = abs(fraction - hour / 24)
    d = min(d, 1 - d) * 24
    return watts * math.exp(-0.5 * (d / width_h) ** 2)


def household_load(days: float) -> tuple[float, float, float]:
    """Base load plus the day's peaks, per phase: cooking on L1, kettle and laundry on L2, the
    dishwasher and a car on L3, and a three-phase heat pump morning and night."""
    f = days % 1.0
    fridge = 60 * (0.5 + 0.5 * math.sin(2 * math.pi * days * 31))
    heat_pump = _bump(f, 6.5, 1.0, 380) + _bump(f, 22.0, 1.3, 320)
    l1 = 170 + fridge + _bump(f, 12.2, 0.4, 1500) + _bump(f, 18.6, 0.6, 2100)
    l2 = 110 + _bump(f, 7.2, 0.25, 1800) + _bump(f, 10.5, 0.7, 850) + _bump(f, 20.5, 1.5, 220)
    l3 = 140 + _bump(f, 13.5, 1.0, 2300) + _bump(f, 21.0, 0.6, 1100)
    return (l1 + heat_pump, l2 + heat_pump, l3 + heat_pump)


@dataclass(frozen=True)
class Sky:
    """Deterministic clouds: a few passing clouds a day, some days clearer than others."""

    phase1: float
    phase2: float
    phase3: float

    @classmethod
    def seeded(cls, rng: random.Random) -> Sky:
        return cls(rng.random(), rng.random(), rng.random())

    def clearness(self, days: float) -> float:
        dip = max(0.0, math.sin(2 * math.pi * (5.1 * days + self.phase1)))
        dip *= max(0.0, math.sin(2 * math.pi * (2.3 * days + self.phase2)))
        depth = 0.25 + 0.3 * (0.5 + 0.5 * math.sin(2 * math.pi * (days / 4.3 + self.phase3)))
        return 1.0 - depth * dip


def ambient_c(fraction: float) -> float:
    """Outdoor temperature: coolest at dawn, warmest mid-afternoon."""
    return 17.0 + 7.0 * math.cos(2 * math.pi * (fraction - 15 / 24))


def grid_voltage(phase: int, days: float) -> float:
    """Phase voltage before this house's own effect on it (slow drift through the day)."""
    return NOMINAL_V[phase] + 1.8 * math.sin(2 * math.pi * (3 * days + phase / 3))


def grid_frequency(days: float) -> float:
    return 50.0 + 0.03 * math.sin(2 * math.pi * 17 * days)


# --------------------------------------------------------------------------------------------
# The equipment


@dataclass(frozen=True)
class InverterSpec:
    serial: str
    eid: int
    phase: int  # 0..2 = L1..L3
    facing: float  # +1 east (morning sun) .. -1 west (evening sun)
    efficiency: float  # panel-to-panel spread
    shade: float  # 1.0 = clear; below 1 a tree or chimney takes its share
    installed: int  # epoch seconds
    panel_wp: float = 400.0
    rating_w: float = 325.0  # AC continuous: the panel is oversized, so clear noons clip

    def irradiance(self, fraction: float, clearness: float) -> float:
        s = sun(fraction)
        if s == 0.0:
            return 0.0
        x = (fraction - SUNRISE) / (SUNSET - SUNRISE)
        return s * (1 + 0.18 * self.facing * math.cos(math.pi * x)) * clearness * self.shade

    def ac_power(self, irradiance: float) -> float:
        return min(self.rating_w, 0.965 * self.panel_wp * self.efficiency * irradiance)

    @property
    def peak_w(self) -> float:
        """The most it has ever reported: its clear-sky noon output."""
        return self.ac_power(1.12 * self.shade)


@dataclass(frozen=True)
class BatterySpec:
    serial: str
    capacity_wh: float = 3360.0  # IQ Battery 3 / Encharge 3
    max_w: float = 1280.0
    installed: int = 0


@dataclass(frozen=True)
class InverterView:
    """One microinverter as of its last report."""

    spec: InverterSpec
    report_time: float  # the last 5-minute report; frozen over night
    report_w: float  # lastReportWatts: 0 at night
    lifetime_j: float
    days: Period
    dc_voltage_v: float
    dc_current_a: float
    ac_voltage_v: float
    ac_current_a: float
    frequency_hz: float
    temperature_c: float

    @property
    def producing(self) -> bool:
        return self.report_w > 0


@dataclass(frozen=True)
class Channel:
    """One CT channel (phase) or a meter's aggregate, as ``/ivp/meters/readings`` reports it."""

    power_w: float
    reactive_var: float
    voltage_v: float
    current_a: float
    frequency_hz: float
    delivered_wh: float
    received_wh: float
    apparent_vah: float
    lagging_varh: float
    leading_varh: float

    @property
    def apparent_va(self) -> float:
        return math.hypot(self.power_w, self.reactive_var)

    @property
    def power_factor(self) -> float:
        s = self.apparent_va
        return self.power_w / s if s > 0 else 0.0


@dataclass(frozen=True)
class Period:
    """The gateway's own day figures of one flow (Wh)."""

    today_wh: float
    yesterday_wh: float
    last_seven_days_wh: float
    peak_w: float = 0.0  # highest power today


@dataclass(frozen=True)
class Meter:
    """A CT meter, or the consumption the gateway computes from two of them: its own aggregate,
    its phases, and per phase the day figures (empty where the gateway reports none)."""

    total: Channel
    phases: tuple[Channel, ...]
    days: tuple[Period, ...] = ()

    @property
    def total_days(self) -> Period:
        return Period(
            sum(d.today_wh for d in self.days),
            sum(d.yesterday_wh for d in self.days),
            sum(d.last_seven_days_wh for d in self.days),
            sum(d.peak_w for d in self.days),
        )


@dataclass(frozen=True)
class BatteryView:
    spec: BatterySpec
    soc: float  # 0..1
    power_w: float  # positive = discharging
    temperature_c: float


@dataclass(frozen=True)
class PlantView:
    """Everything the simulated gateway can say at one moment, consistent with itself."""

    now: float  # epoch seconds
    production: Meter  # the production CT
    net: Meter  # the net-consumption CT: positive = import
    # Total consumption as the gateway computes it, production + net: without a storage CT the
    # batteries' charge counts as consumption and their discharge lowers it, as on real systems
    consumption: Meter
    inverters: tuple[InverterView, ...]
    batteries: tuple[BatteryView, ...]
    reserve_soc: float
    enpower_temperature_c: float
    report_interval_s: float  # how often the inverters report


# --------------------------------------------------------------------------------------------
# State


@dataclass
class _Counter:
    """Energy of one channel: active both ways, apparent, reactive both ways (Wh, VAh, varh)."""

    delivered: float = 0.0
    received: float = 0.0
    apparent: float = 0.0
    lagging: float = 0.0
    leading: float = 0.0

    def add(self, power_w: float, reactive_var: float, dt: float) -> None:
        h = dt / 3600
        self.delivered += max(power_w, 0.0) * h
        self.received += max(-power_w, 0.0) * h
        self.apparent += math.hypot(power_w, reactive_var) * h
        self.lagging += max(reactive_var, 0.0) * h
        self.leading += max(-reactive_var, 0.0) * h

    @classmethod
    def starting(cls, delivered: float, received: float, lag_ratio: float, lead_ratio: float) -> _Counter:
        """Plausible start values for a meter that has run for years."""
        active = delivered + received
        return cls(delivered, received, 1.05 * active, lag_ratio * active, lead_ratio * active)


@dataclass
class _Days:
    """Energy of one flow today and on the completed days before (Wh), for the gateway's own
    today / last-seven-days figures. The days are simulated days, the energy is real energy."""

    past: deque[float]
    today: float = 0.0
    peak_w: float = 0.0

    def add(self, power_w: float, dt: float) -> None:
        self.today += power_w * dt / 3600
        self.peak_w = max(self.peak_w, power_w)

    def roll(self) -> None:
        self.past.append(self.today)
        self.today = 0.0
        self.peak_w = 0.0

    def period(self) -> Period:
        return Period(self.today, self.past[-1], self.today + sum(self.past), self.peak_w)


@dataclass
class _MeterState:
    phases: list[_Counter]
    total: _Counter  # integrates the sum over the phases, so it nets import against export
    days: list[_Days]  # per phase; empty where the gateway reports no day figures

    def add(self, powers: tuple[float, ...], reactive: tuple[float, ...], dt: float) -> None:
        for counter, w, q in zip(self.phases, powers, reactive, strict=True):
            counter.add(w, q, dt)
        self.total.add(sum(powers), sum(reactive), dt)
        if self.days:
            for d, w in zip(self.days, powers, strict=True):
                d.add(w, dt)

    def view(
        self, powers: tuple[float, ...], reactive: tuple[float, ...], volts: list[float], freq: float
    ) -> Meter:
        phases = tuple(
            _channel(c, w, q, v, freq)
            for c, w, q, v in zip(self.phases, powers, reactive, volts, strict=True)
        )
        # Like real three-phase gateways, the meter's own voltage and current are phase sums
        total = replace(
            _channel(self.total, sum(powers), sum(reactive), sum(volts), freq),
            current_a=sum(ch.current_a for ch in phases),
        )
        return Meter(total, phases, tuple(d.period() for d in self.days))


def _channel(counter: _Counter, power_w: float, reactive_var: float, volts: float, freq: float) -> Channel:
    return Channel(
        power_w=power_w,
        reactive_var=reactive_var,
        voltage_v=volts,
        current_a=math.hypot(power_w, reactive_var) / volts,
        frequency_hz=freq,
        delivered_wh=counter.delivered,
        received_wh=counter.received,
        apparent_vah=counter.apparent,
        lagging_varh=counter.lagging,
        leading_varh=counter.leading,
    )


@dataclass(frozen=True)
class _Powers:
    """The instantaneous power balance at one moment (W)."""

    inverters: tuple[float, ...]
    production: tuple[float, ...]  # per phase
    load: tuple[float, ...]
    batteries: tuple[float, ...]  # per battery, positive = discharging
    net: tuple[float, ...]  # load - production - battery, per phase
    consumption: tuple[float, ...]  # production + net, per phase

    def reactive(self) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        """(production, net, consumption) reactive power per phase: inverters run near unity
        power factor, leading slightly; the house's motors and power supplies lag."""
        prod = tuple(-0.02 * w for w in self.production)
        consumption = tuple(0.22 * w for w in self.load)
        net = tuple(c - q for c, q in zip(consumption, prod, strict=True))
        return prod, net, consumption


# --------------------------------------------------------------------------------------------
# The plant


def _fleet(rng: random.Random) -> tuple[InverterSpec, ...]:
    """18 microinverters, 6 per phase, on an east and a west roof; number 8 sits in the
    chimney's shadow and makes a little less than its peers."""
    return tuple(
        InverterSpec(
            serial=f"48234{7019000 + 37 * i + (i * i) % 11:07d}",
            eid=0x21000000 | ((i + 1) << 8),
            phase=i % PHASES,
            facing=1.0 if i < 10 else -1.0,
            efficiency=0.97 + 0.05 * rng.random(),
            shade=0.78 if i == 7 else 1.0,
            installed=1_717_580_000 + 60 * i,
        )
        for i in range(18)
    )


BATTERIES = (
    BatterySpec("122418054621", installed=1_717_590_000),
    BatterySpec("122418054637", installed=1_717_590_120),
)
RESERVE_SOC = 0.2

# Where the counters stand when the demo starts: a system a few years old (Wh)
START_INVERTER_WH = 1_020_000.0  # per microinverter, before efficiency and shade
START_IMPORT_WH = (2_350_000.0, 1_980_000.0, 2_210_000.0)
START_EXPORT_WH = (3_050_000.0, 3_420_000.0, 3_180_000.0)
START_NETTED_WH = 1_100_000.0  # import and export the net meter's aggregate netted away


class Plant:
    """The simulated system. Thread-safe; all state advances in ``observe``."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        day_seconds: float = DAY_SECONDS,
        start_hour: float = 9.0,
        load: LoadProfile = household_load,
        initial_soc: float = 0.6,
        seed: int = 4345,
    ) -> None:
        if day_seconds <= 0:
            raise ValueError("day_seconds must be positive")
        rng = random.Random(seed)
        self._clock = clock
        self._day_seconds = day_seconds
        self._load = load
        self._sky = Sky.seeded(rng)
        self.inverters = _fleet(rng)
        self.batteries = BATTERIES
        self._lock = threading.Lock()
        self._t0 = clock()
        self._t = self._t0
        self._days0 = start_hour / 24
        self._day = math.floor(self._days0)
        self._socs = [min(1.0, max(RESERVE_SOC, initial_soc)) for _ in self.batteries]
        self._inverter_j = [
            START_INVERTER_WH * 3600 * s.efficiency * s.shade * (1 + 0.002 * i)
            for i, s in enumerate(self.inverters)
        ]
        self._init_meters(self._history())

    # ---- time ---------------------------------------------------------------------------------

    def _days_at(self, t: float) -> float:
        return self._days0 + (t - self._t0) / self._day_seconds

    def _time_of(self, days: float) -> float:
        return self._t0 + (days - self._days0) * self._day_seconds

    @property
    def report_interval_s(self) -> float:
        return self._day_seconds / REPORT_SLOTS

    # ---- power: pure functions of time and of the batteries' charge ---------------------------

    def _inverter_powers(self, days: float) -> tuple[float, ...]:
        fraction = days % 1.0
        if not SUNRISE < fraction < SUNSET:
            return (0.0,) * len(self.inverters)
        clearness = self._sky.clearness(days)
        return tuple(s.ac_power(s.irradiance(fraction, clearness)) for s in self.inverters)

    def _powers(self, days: float, dt: float) -> _Powers:
        fraction = days % 1.0
        inverters = self._inverter_powers(days)
        production = [0.0] * PHASES
        for spec, w in zip(self.inverters, inverters, strict=True):
            production[spec.phase] += w
        load = self._load(days)
        batteries = self._battery_powers(sum(production) - sum(load), fraction, dt)
        battery = _battery_phases(sum(batteries), load)
        net = tuple(w - p - b for w, p, b in zip(load, production, battery, strict=True))
        consumption = tuple(p + n for p, n in zip(production, net, strict=True))
        return _Powers(inverters, tuple(production), load, batteries, net, consumption)

    def _battery_powers(self, surplus_w: float, fraction: float, dt: float) -> tuple[float, ...]:
        """Each battery takes its share of the solar surplus, and covers its share of the deficit
        during the evening peak tariff (the gateway's savings mode: cheap night-time power comes
        from the grid). Within its rating and without leaving [reserve, full] during ``dt``.
        Lossless, so the state of charge moves by exactly the integral of the reported power."""
        share = surplus_w / len(self.batteries)
        powers = []
        for spec, soc in zip(self.batteries, self._socs, strict=True):
            if share > 0:
                room_w = (1.0 - soc) * spec.capacity_wh * 3600 / dt
                powers.append(-min(share, spec.max_w, room_w))
            elif not PEAK_START <= fraction < PEAK_END:
                powers.append(0.0)
            else:
                stored_w = (soc - RESERVE_SOC) * spec.capacity_wh * 3600 / dt
                powers.append(min(-share, spec.max_w, stored_w))
        return tuple(powers)

    # ---- energy: integrated over real time -----------------------------------------------------

    def _history(self) -> list[list[float]]:
        """What this plant would have made and used on each of the six days before the start and
        on the start day until the start (Wh per inverter, then load per phase), so the day
        figures are plausible from the first request."""
        samples = 24
        days = []
        for back in range(PAST_DAYS, -1, -1):
            start = self._day - back
            span = (self._days0 - start) if back == 0 else 1.0
            sums = [0.0] * (len(self.inverters) + PHASES)
            for k in range(samples):
                at = start + span * (k + 0.5) / samples
                for i, w in enumerate(self._inverter_powers(at) + self._load(at)):
                    sums[i] += w
            days.append([s / samples * span * self._day_seconds / 3600 for s in sums])
        return days

    def _init_meters(self, history: list[list[float]]) -> None:
        n = len(self.inverters)
        *past_days, today = history

        def past(index: list[int]) -> _Days:
            wh = deque((sum(day[i] for i in index) for day in past_days), maxlen=PAST_DAYS)
            return _Days(wh, today=sum(today[i] for i in index))

        on_phase = [[i for i, s in enumerate(self.inverters) if s.phase == ph] for ph in range(PHASES)]
        self._inverter_days = [past([i]) for i in range(n)]
        # The production CT reads a little under what the inverters count
        prod_wh = [0.994 * sum(self._inverter_j[i] for i in idx) / 3600 for idx in on_phase]
        prod = [_Counter.starting(wh, 31.0 + ph, 0.01, 0.05) for ph, wh in enumerate(prod_wh)]
        net = [
            _Counter.starting(i, e, 0.2, 0.01) for i, e in zip(START_IMPORT_WH, START_EXPORT_WH, strict=True)
        ]
        cons = [
            _Counter.starting(p + i - e, 0.0, 0.22, 0.0)
            for p, i, e in zip(prod_wh, START_IMPORT_WH, START_EXPORT_WH, strict=True)
        ]
        net_total = _sum(net)
        net_total.delivered -= START_NETTED_WH
        net_total.received -= START_NETTED_WH
        self._production = _MeterState(prod, _sum(prod), [past(idx) for idx in on_phase])
        self._net = _MeterState(net, net_total, [])
        self._consumption = _MeterState(cons, _sum(cons), [past([n + ph]) for ph in range(PHASES)])

    def _advance(self, now: float) -> None:
        elapsed = now - self._t
        if elapsed <= 0:  # the clock stepped back: never un-count energy
            return
        steps = min(MAX_STEPS, max(1, math.ceil(elapsed / STEP_S)))
        dt = elapsed / steps
        for k in range(steps):
            days = self._days_at(self._t + (k + 0.5) * dt)
            self._roll_days(math.floor(days))
            self._accumulate(self._powers(days, dt), dt)
        self._t = now

    def _roll_days(self, day: int) -> None:
        # A catch-up over more than a week needs no more than a week of rolls
        for _ in range(min(day - self._day, PAST_DAYS + 1)):
            for d in (*self._inverter_days, *self._production.days, *self._consumption.days):
                d.roll()
        self._day = max(self._day, day)

    def _accumulate(self, p: _Powers, dt: float) -> None:
        for i, w in enumerate(p.inverters):
            self._inverter_j[i] += w * dt
            self._inverter_days[i].add(w, dt)
        prod_q, net_q, cons_q = p.reactive()
        self._production.add(p.production, prod_q, dt)
        self._net.add(p.net, net_q, dt)
        self._consumption.add(p.consumption, cons_q, dt)
        for b, (spec, w) in enumerate(zip(self.batteries, p.batteries, strict=True)):
            self._socs[b] -= w * dt / 3600 / spec.capacity_wh

    # ---- the view ------------------------------------------------------------------------------

    def observe(self) -> PlantView:
        """Bring the plant up to now and describe it."""
        with self._lock:
            self._advance(self._clock())
            return self._view(self._t)

    def _view(self, now: float) -> PlantView:
        days = self._days_at(now)
        p = self._powers(days, STEP_S)
        prod_q, net_q, cons_q = p.reactive()
        freq = grid_frequency(days)
        # The house pulls its phase voltage down when it imports and pushes it up when it exports
        volts = [grid_voltage(ph, days) - 0.0012 * p.net[ph] for ph in range(PHASES)]
        return PlantView(
            now=now,
            production=self._production.view(p.production, prod_q, volts, freq),
            net=self._net.view(p.net, net_q, volts, freq),
            consumption=self._consumption.view(p.consumption, cons_q, volts, freq),
            inverters=tuple(self._inverter_view(i, now) for i in range(len(self.inverters))),
            batteries=tuple(
                BatteryView(spec, soc, w, 22.0 + 5.0 * abs(w) / spec.max_w)
                for spec, soc, w in zip(self.batteries, self._socs, p.batteries, strict=True)
            ),
            reserve_soc=RESERVE_SOC,
            enpower_temperature_c=ambient_c(days % 1.0) + 12.0,
            report_interval_s=self.report_interval_s,
        )

    def _last_report(self, index: int, now: float) -> float:
        """When inverter ``index`` last reported: every interval, staggered across the fleet, and
        not at all between sunset and sunrise (no sun, no DC power, no radio)."""
        interval = self.report_interval_s
        offset = interval * index / len(self.inverters)
        days = self._days_at(now)
        fraction = days % 1.0
        if not SUNRISE < fraction < SUNSET:
            day = math.floor(days)
            now = self._time_of(day + SUNSET if fraction >= SUNSET else day - 1 + SUNSET)
        return math.floor((now - offset) / interval) * interval + offset

    def _inverter_view(self, index: int, now: float) -> InverterView:
        spec = self.inverters[index]
        report_time = self._last_report(index, now)
        days = self._days_at(report_time)
        fraction = days % 1.0
        # Its last report of the day said 0 W: it stopped as the sun went
        daylight = SUNRISE < self._days_at(now) % 1.0 < SUNSET
        irradiance = spec.irradiance(fraction, self._sky.clearness(days)) if daylight else 0.0
        report_w = spec.ac_power(irradiance)
        temperature = ambient_c(fraction) + 28.0 * irradiance
        # The maximum-power-point voltage sags in weak light and in heat
        dc_v = 27.0 + 8.0 * min(1.0, 4.0 * irradiance) - 0.1 * (temperature - 25.0)
        ac_v = grid_voltage(spec.phase, days) + 1.5  # at the far end of the branch cable
        return InverterView(
            spec=spec,
            report_time=report_time,
            report_w=report_w,
            lifetime_j=self._inverter_j[index],
            days=self._inverter_days[index].period(),
            dc_voltage_v=dc_v,
            dc_current_a=report_w / 0.965 / dc_v,
            ac_voltage_v=ac_v,
            ac_current_a=report_w / ac_v,
            frequency_hz=grid_frequency(days),
            temperature_c=temperature,
        )


def _battery_phases(total_w: float, load: tuple[float, ...]) -> tuple[float, ...]:
    """Split the batteries' power over the phases. Discharge follows the load (it only ever
    covers a deficit, so no phase's consumption goes below zero); charge is drawn evenly."""
    if total_w > 0:
        return tuple(total_w * w / sum(load) for w in load)
    return (total_w / PHASES,) * PHASES


def _sum(counters: list[_Counter]) -> _Counter:
    return _Counter(
        sum(c.delivered for c in counters),
        sum(c.received for c in counters),
        sum(c.apparent for c in counters),
        sum(c.lagging for c in counters),
        sum(c.leading for c in counters),
    )
