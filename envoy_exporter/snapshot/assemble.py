"""Parser results -> one ``Snapshot`` per gateway and collection, firmware quirks resolved.

Pure: no I/O, no clock, no logging. The only state is the ``Assembler``'s memory of which
production source it chose, so that a glitch cannot flip the source (pyenphase #471: a glitch
switched meter -> inverters -> meter and added a multi-MWh phantom to the energy counters).

Production sources, best first (``PREFERENCE``):

* ``meter``: the ``eim`` production section of ``/production.json``, when its CT is live
  (activeCount > 0, and not a production meter ``/ivp/meters`` calls disabled). Metered gateways
  without CTs, or with CTs disabled, keep sending eim sections with activeCount 0 and stalled,
  zero or noise values (7.3.466_metered_disabled_cts, 7.6.175_total, 8.2.4264_metered_noct).
* ``api_v1``: ``/api/v1/production``, the microinverters' total. Preferred over the inverters
  section of ``/production.json`` because its lifetime is not wrapped at 2^32 J on firmware 7
  (7.6.175_standard: 6,139,406 Wh against 174,174 Wh there, 5 x 1,193,046 Wh apart). Not usable
  when every energy in it is 0 (a known firmware state, 7.3.466 and 8.3.5422 non-metered), nor on
  metered gateways without a live CT from firmware 8.2.4264, where it is stalled (pyenphase #274).
* ``section``: the ``inverters`` section of ``/production.json`` (power and lifetime only).
* ``legacy``: the HTML ``/production`` page of Envoy-C/R/LCD firmware.

The snapshot labels both inverter sources ``inverters``. The source in use is kept while it has
data; another one takes over only after it has been the best for ``SWITCH_AFTER`` collections in a
row (see ``Assembler._decide``), so one glitch never moves a counter from one source to another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from enum import Enum
from functools import lru_cache
from operator import attrgetter
from typing import TypeVar

from envoy_exporter.gateway.endpoints import API_V1_PRODUCTION, PRODUCTION_HTML, PRODUCTION_JSON, Endpoint
from envoy_exporter.snapshot.model import (
    PHASES,
    Battery,
    Device,
    DeviceData,
    EimSection,
    EndpointResult,
    Enpower,
    Ensemble,
    Flow,
    GatewayInfo,
    Inventory,
    InverterReading,
    Meter,
    MeterChannel,
    MeterConfig,
    MeterReading,
    ProductionJson,
    Reading,
    Readings,
    Snapshot,
    StorageAggregate,
    StorageGroup,
    V1Inverters,
    evolve,
)
from envoy_exporter.snapshot.outcome import Outcome


class Source(str, Enum):
    """A production source, best first: its name, the ``production_source`` label it is exported
    under, and the catalogue endpoint whose answer it is."""

    label: str
    endpoint: Endpoint

    def __new__(cls, name: str, label: str, endpoint: Endpoint) -> Source:
        source = str.__new__(cls, name)
        source._value_ = name
        source.label, source.endpoint = label, endpoint
        return source

    METER = ("meter", "meter", PRODUCTION_JSON)
    API_V1 = ("api_v1", "inverters", API_V1_PRODUCTION)
    SECTION = ("section", "inverters", PRODUCTION_JSON)
    LEGACY = ("legacy", "legacy", PRODUCTION_HTML)


METER, API_V1, SECTION, LEGACY = Source
PREFERENCE = tuple(Source)

# A source change needs this many consecutive collections that agree on it. At the default
# 15 s scrape interval that is over a minute: longer than the glitches seen in the field,
# short enough to follow a real change (CTs enabled or removed by the installer).
SWITCH_AFTER = 5

# How old production.json's powers may be before the CT readings' stand in for them (seconds): the
# default lifetime of production figures (settings.DEFAULT_CACHE_TTL["production"]).
POWER_MAX_AGE = 10.0

# From this firmware a metered gateway without a live CT stalls /api/v1/production.
V1_STALLS_FROM = (8, 2, 4264)

T = TypeVar("T")


class Assembler:
    """One gateway's assembly, with its sticky production source."""

    def __init__(self, switch_after: int = SWITCH_AFTER, power_max_age: float = POWER_MAX_AGE) -> None:
        self._switch_after = switch_after
        self._power_max_age = power_max_age
        self._firmware: str | None = None
        self._source: str | None = None
        self._pending: str | None = None  # the source that would replace the current one
        self._streak = 0  # consecutive collections that preferred ``_pending``
        self._v1_broken = False  # /api/v1/production was all zeros on this firmware
        self._v1_good = False  # ... or it has given real data on this firmware
        self._anchor: _Anchor | None = None  # where the CT readings stood when production.json was read
        # per (flow, phase): the production.json lifetime and the lifetime last given out for it
        self._given: dict[tuple[str, str], tuple[float, float]] = {}

    @property
    def source(self) -> str | None:
        """The production source in use, one of ``PREFERENCE``, or None before the first data."""
        return self._source

    @property
    def candidate(self) -> str | None:
        """The source that would replace the one in use, while it gathers its streak."""
        return self._pending

    @property
    def v1_broken(self) -> bool:
        """``/api/v1/production`` gave only zeros on this firmware, never real data."""
        return self._v1_broken

    def assemble(self, readings: Readings, endpoints: Mapping[str, EndpointResult], now: float) -> Snapshot:
        info = readings.info
        production_json = readings.production_json
        meter_configs = readings.meters or ()
        flows = self._production_candidates(info, readings, production_json)
        source = self._decide(flows, _undecided(endpoints))
        eim = readings.production_ct
        production = flows.get(source) if source else None
        total, net = _consumption(production_json, eim)
        inverters_total = _inverters_total(source, production, flows)
        cts = _ct_readings(meter_configs, readings.meter_readings or ())
        metered = production if source == METER else None
        metered, total, net = self._follow_cts(production_json, cts, endpoints, metered, total, net)
        if source == METER:
            production = metered
        if source == METER and _older(endpoints, METER.endpoint.key, self._power_max_age):
            production, total, net = _ct_powers(production, total, net, cts)
            # The inverters section's power stays: it is the sum of the microinverters' 5-minute
            # reports, no staler on production.json's slow cadence than the inverters' own series.
        if source == METER and production is not None and not production.phases:
            production = _ct_phases(production, cts.get("production"), meter_configs)
        inventory = readings.inventory or Inventory()
        ensembles = [e for e in (readings.ensemble_inventory, readings.ensemble_power) if e is not None]
        secctrl = readings.ensemble_secctrl
        device_data = readings.device_data or DeviceData()
        batteries = _batteries(ensembles, inventory, device_data)
        return Snapshot(
            collected_at=now,
            info=info,
            production_source=source.label if source in flows else None,
            production=production,
            consumption_total=total,
            consumption_net=net,
            meters=_meters(meter_configs, readings.meter_readings or ()),
            inverters=_inverters(device_data.inverters, readings.api_v1_inverters),
            devices=_devices(inventory, ensembles),
            relays=inventory.relays,
            batteries=batteries,
            storage=_storage(secctrl, ensembles, production_json),
            enpower=_enpower([e for e in (*ensembles, secctrl) if e is not None]),
            inverters_total=inverters_total,
            storage_groups=_storage_groups(production_json, batteries),
            storage_settings=readings.tariff.storage if readings.tariff else None,
            tariff=readings.tariff.tariff if readings.tariff else None,
            dry_contacts=readings.dry_contacts or (),
            dry_contact_settings=readings.dry_contact_settings or (),
            generator=readings.generator,
            home=readings.home,
            endpoints=dict(endpoints),
        )

    # ----------------------------------------------------------------------------------------
    # Lifetimes that move with the CT readings

    def _follow_cts(
        self,
        production_json: ProductionJson | None,
        cts: Mapping[str, MeterReading],
        endpoints: Mapping[str, EndpointResult],
        production: Flow | None,
        total: Flow | None,
        net: Flow | None,
    ) -> tuple[Flow | None, Flow | None, Flow | None]:
        """The CT-measured lifetimes moved on (``_moved_on``), never below what was given out
        before for the same or a higher production.json value.

        A real gateway's production.json can lag its meter readings, and a CT can be missing from
        one reading: either would pull a moved-on lifetime back below what the last scrape said.
        Such a lifetime stays where it was until the CTs carry it further. A production.json
        value that itself fell (a reboot, a reset meter) is passed on as it is, for the counter
        keeper to judge. Net consumption may fall (export), so it is left as it comes."""
        moved = self._moved_on(production_json, cts, endpoints, production, total, net)
        if production_json is None:
            return moved
        return self._held("production", production, moved[0]), self._held("total", total, moved[1]), moved[2]

    def _held(self, name: str, read: Flow | None, given: Flow | None) -> Flow | None:
        if read is None or given is None:
            return given

        def hold(phase: str, base: Reading | None, out: Reading) -> Reading:
            if base is None or base.lifetime_j is None or out.lifetime_j is None:
                return out
            before = self._given.get((name, phase))
            if before is not None and base.lifetime_j >= before[0] and out.lifetime_j < before[1]:
                out = evolve(out, lifetime_j=before[1])
            self._given[(name, phase)] = (base.lifetime_j, out.lifetime_j)
            return out

        return Flow(
            total=hold("", read.total, given.total),
            phases={ph: hold(ph, read.phases.get(ph), r) for ph, r in given.phases.items()},
        )

    def _moved_on(
        self,
        production_json: ProductionJson | None,
        cts: Mapping[str, MeterReading],
        endpoints: Mapping[str, EndpointResult],
        production: Flow | None,
        total: Flow | None,
        net: Flow | None,
    ) -> tuple[Flow | None, Flow | None, Flow | None]:
        """The CT-measured lifetimes of production.json, moved on by what the CTs measured since
        it was read: production.json is read on a slow cadence where the CT readings carry every
        power (``plan.Plan.family``), and its lifetimes would otherwise step every few minutes.

        The CT readings are noted (the anchor) at the first fresh reading of them at or after each
        read of production.json, never before it: a lifetime moved on from there can only lag
        the truth, never pass it, so it does not fall when production.json is next read. Where
        production.json was just read, its own values stand, unchanged."""
        if production_json is None:
            return production, total, net
        fresh = _fresh(endpoints, METER_READINGS_KEY)
        anchor = self._anchor
        if anchor is None or anchor.production_json is not production_json:
            self._anchor = _Anchor(production_json, dict(cts) if fresh and cts else None)
            return production, total, net
        if anchor.cts is None:
            if fresh and cts:
                anchor.cts = dict(cts)
            return production, total, net
        moved = _ct_moves(anchor.cts, cts)
        return (
            _moved(production, moved.get("production", {})),
            _moved(total, moved.get("total", {})),
            _moved(net, moved.get("net", {})),
        )

    # ----------------------------------------------------------------------------------------
    # The sticky production source

    def note_firmware(self, info: GatewayInfo | None) -> None:
        """New firmware changes what each endpoint means: decide afresh. Told by the client when
        /info shows it, before the plan consults the decisions."""
        if info is None or info.firmware == self._firmware:
            return
        self._firmware = info.firmware
        self._source, self._pending, self._streak = None, None, 0
        self._v1_broken = False
        self._v1_good = False

    def _production_candidates(
        self,
        info: GatewayInfo | None,
        readings: Readings,
        production_json: ProductionJson | None,
    ) -> dict[str, Flow]:
        """Every source that has usable production data in this collection."""
        flows: dict[str, Flow] = {}
        eim = readings.production_ct
        if eim is not None:
            flows[METER] = _flow(eim)
        v1 = readings.api_v1_production
        if v1 is not None and not v1_stalled(info, eim):
            if not _all_energy_zero(v1):
                self._v1_good = True
                flows[API_V1] = Flow(total=v1)
            elif self._v1_good:
                # Zeros where real data came before: a gateway rebooting, not a broken endpoint.
                # Still a reading of the source: the counter keeper holds its lifetime.
                flows[API_V1] = Flow(total=v1)
            else:
                self._v1_broken = True
        section = production_json.inverters if production_json else None
        # activeCount 0 beside a growing lifetime is a known firmware state: the lifetime decides.
        if (
            section is not None
            and section.lifetime_j is not None
            and (section.active_count > 0 or section.lifetime_j > 0)
        ):
            flows[SECTION] = Flow(
                total=_section_reading(section.power_w, section.lifetime_j, production_json)
            )
        legacy = readings.production_html
        if legacy is not None:
            flows[LEGACY] = Flow(total=legacy)
        return flows

    def _decide(self, available: Mapping[str, Flow], undecided: set[str]) -> str | None:
        """Keep the source in use unless another one has been the best for ``switch_after``
        consecutive collections. A collection without any production data is no evidence
        either way.

        The first choice (also after new firmware) is immediate, unless a better source's
        endpoint just failed: taking the lesser one now would mean switching (and a counter
        jump) as soon as the better one answers, so the choice waits for it a few collections.
        """
        best = next((s for s in PREFERENCE if s in available), None)
        if self._source is None:
            if best is None:
                return None
            if (
                any(s in undecided for s in PREFERENCE[: _rank(best)])
                and self._streak < self._switch_after - 1
            ):
                self._streak += 1
                return None
            self._source, self._streak = best, 0
        elif best == self._source:
            self._pending, self._streak = None, 0
        elif best is not None:
            if best != self._pending:
                self._pending, self._streak = best, 0
            self._streak += 1
            if self._streak >= self._switch_after:
                self._source, self._pending, self._streak = best, None, 0
        return self._source


# --------------------------------------------------------------------------------------------
# Production and consumption


def _rank(source: str) -> int:
    return PREFERENCE.index(source)


def _undecided(endpoints: Mapping[str, EndpointResult]) -> set[str]:
    """Sources whose endpoint failed in this collection for a passing reason (timeout, server
    error, bad body): nothing is known about them, as opposed to an endpoint the gateway lacks."""
    failed = {key for key, result in endpoints.items() if result.outcome.is_transient}
    return {source for source in Source if source.endpoint.key in failed}


def v1_stalled(info: GatewayInfo | None, production_ct: EimSection | None) -> bool:
    """/api/v1/production stalls on a metered gateway without a live production CT (``Readings.
    production_ct``) from ``V1_STALLS_FROM``."""
    return (
        info is not None and bool(info.metered) and info.version >= V1_STALLS_FROM and production_ct is None
    )


def _section_reading(power_w: float | None, lifetime_j: float, production_json: ProductionJson) -> Reading:
    """The inverters section has no today / last-seven-days of its own. The gateway's own
    figures for those are in its eim production section, live CT or not, and the contract
    exports them as reported (gauges, not counters): on CT-less metered gateways they are
    often wrong (8.2.4264: 70 Wh "today" at 5.5 kW), which is why the dashboards use
    ``increase()`` on the lifetime counter instead."""
    eim = production_json.production
    return Reading(
        power_w=power_w,
        lifetime_j=lifetime_j,
        today_j=eim.total.today_j if eim else None,
        last_seven_days_j=eim.total.last_seven_days_j if eim else None,
    )


def _all_energy_zero(reading: Reading) -> bool:
    energies = (reading.lifetime_j, reading.today_j, reading.last_seven_days_j)
    return all(not e for e in energies)


def _all_zero(obj: Reading | MeterChannel, ignore: tuple[str, ...] = ()) -> bool:
    """Every measured value 0 or unreported: an unused phase, not a quiet one."""
    return not any(_measured(type(obj), ignore)(obj))


@lru_cache(maxsize=16)
def _measured(kind: type, ignore: tuple[str, ...]) -> Callable[[object], tuple[object, ...]]:
    """What ``_all_zero`` reads of a ``kind``: its fields but ``ignore``, in one call. Made once
    per type, not from ``fields`` for every phase of every collection."""
    names = [f.name for f in fields(kind) if f.name not in ignore]
    return attrgetter(*names) if len(names) > 1 else lambda obj: (getattr(obj, names[0]),)


def _phases(lines: tuple[Reading, ...]) -> dict[str, Reading]:
    """L1.. by position; all-zero lines (the third line firmware 8.3 adds on split-phase
    systems) are left out, and a system with fewer than two phases in use has none."""
    used = {PHASES[i]: line for i, line in enumerate(lines[: len(PHASES)]) if not _all_zero(line)}
    return used if len(used) >= 2 else {}


def _flow(section: EimSection) -> Flow:
    return Flow(total=section.total, phases=_phases(section.lines))


def _consumption(
    production_json: ProductionJson | None, production_ct: EimSection | None
) -> tuple[Flow | None, Flow | None]:
    """(total, net) by measurementType, live sections only.

    Firmware 8.3.5433 fills the total-consumption section with a copy of net consumption
    (pyenphase #467; its total-consumption CT reads 786 W and 20,055,053 Wh while both sections
    say 428 W and 5,649,402 Wh). Then total = net + production, per phase too; today and
    last-seven-days stay as the section reports them.
    """
    if production_json is None:
        return None, None
    total = _live(production_json.consumption_of("total-consumption"))
    net = _live(production_json.consumption_of("net-consumption"))
    if total is not None and net is not None and _is_copy(total.total, net.total):
        if production_ct is None:
            return None, _flow(net)  # the true total cannot be formed
        return _net_plus_production(total, net, production_ct), _flow(net)
    return (_flow(total) if total else None), (_flow(net) if net else None)


def _live(section: EimSection | None) -> EimSection | None:
    return section if section is not None and section.active_count > 0 else None


def _is_copy(total: Reading, net: Reading) -> bool:
    # At night total and net power agree legitimately; their lifetimes never do.
    return (
        total.lifetime_j is not None and total.lifetime_j == net.lifetime_j and total.power_w == net.power_w
    )


def _net_plus_production(total: EimSection, net: EimSection, production: EimSection) -> Flow:
    net_flow, production_flow, reported = _flow(net), _flow(production), _flow(total)
    phases = {
        name: _sum(net_flow.phases[name], production_flow.phases[name], reported.phases.get(name))
        for name in net_flow.phases
        if name in production_flow.phases
    }
    return Flow(total=_sum(net.total, production.total, total.total), phases=phases)


def _sum(net: Reading, production: Reading, reported: Reading | None) -> Reading:
    """Total consumption formed from net + production. Current, reactive and apparent power and
    the power factor do not add up across meters, so they are left out; the line voltage is
    the same on both."""
    return Reading(
        power_w=_add(net.power_w, production.power_w),
        lifetime_j=_add(net.lifetime_j, production.lifetime_j),
        today_j=reported.today_j if reported else None,
        last_seven_days_j=reported.last_seven_days_j if reported else None,
        voltage_v=net.voltage_v,
    )


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


# --------------------------------------------------------------------------------------------
# Lifetimes and phases from the CT readings

METER_READINGS_KEY = "meter_readings"


@dataclass
class _Anchor:
    production_json: ProductionJson  # the answer whose lifetimes are moved on
    cts: dict[str, MeterReading] | None  # the CT readings just after it was read; None: not yet


def _fresh(endpoints: Mapping[str, EndpointResult], key: str) -> bool:
    """The endpoint answered in this collection (not from the cache)."""
    result = endpoints.get(key)
    return result is not None and result.outcome is Outcome.OK


def _energies(reading: MeterReading | None) -> dict[str, tuple[float | None, float | None]]:
    """(delivered, received) of a CT: "" for the whole, L1.. by channel position."""
    if reading is None:
        return {}
    channels = {PHASES[i]: c for i, c in enumerate(reading.channels[: len(PHASES)])}
    return {ph: (c.delivered_j, c.received_j) for ph, c in {"": reading.total, **channels}.items()}


def _rise(now: float | None, then: float | None) -> float | None:
    """How far a CT's lifetime rose; a fall (a CT counter reset) moves nothing."""
    return None if now is None or then is None else max(now - then, 0.0)


def _ct_moves(
    then: Mapping[str, MeterReading], now: Mapping[str, MeterReading]
) -> dict[str, dict[str, float | None]]:
    """Energy measured since the anchor, per flow ("production", "total", "net") and phase.
    Net = delivered - received on a net CT; where a CT is missing, the others make it up
    (total = net + production, net = total - production)."""
    moves: dict[str, dict[str, float | None]] = {}
    for flow, meter in (
        ("production", "production"),
        ("total", "total-consumption"),
        ("net", "net-consumption"),
    ):
        before, after = _energies(then.get(meter)), _energies(now.get(meter))
        if not before or not after:
            continue
        moves[flow] = {}
        for ph in after.keys() & before.keys():
            delivered = _rise(after[ph][0], before[ph][0])
            received = _rise(after[ph][1], before[ph][1])
            if flow == "net":
                moves[flow][ph] = None if delivered is None or received is None else delivered - received
            else:
                moves[flow][ph] = delivered
    made = moves.get("production")
    if made is not None and "net" not in moves and "total" in moves:
        moves["net"] = _combine(moves["total"], made, lambda t, p: t - p)
    if made is not None and "total" not in moves and "net" in moves:
        moves["total"] = _combine(moves["net"], made, lambda n, p: n + p)
    return moves


def _moved(flow: Flow | None, moves: Mapping[str, float | None]) -> Flow | None:
    """``flow`` with each lifetime moved on by its CT's energy; a part without one left as is."""
    if flow is None or not moves:
        return flow

    def move(reading: Reading, phase: str) -> Reading:
        step = moves.get(phase)
        if step is None or reading.lifetime_j is None:
            return reading
        return evolve(reading, lifetime_j=reading.lifetime_j + step)

    return Flow(total=move(flow.total, ""), phases={ph: move(r, ph) for ph, r in flow.phases.items()})


def _ct_phases(production: Flow, reading: MeterReading | None, configs: tuple[MeterConfig, ...]) -> Flow:
    """Production per phase from the production CT's channels, where production.json has no
    ``lines`` (8.2.127: a split-phase system whose CT reads 856 W and 858 W on its two
    channels). As for lines, a system with fewer than two phases in use has none."""
    config = next((c for c in configs if c.measurement_type == "production" and c.enabled), None)
    if reading is None or config is None:
        return production
    channels = _channels(reading.channels, config.phase_count)
    if len(channels) < 2:
        return production
    phases = {
        ph: Reading(
            power_w=c.power_w,
            lifetime_j=c.delivered_j,
            voltage_v=c.voltage_v,
            current_a=c.current_a,
            reactive_var=c.reactive_var,
            apparent_va=c.apparent_va,
            power_factor=c.power_factor,
        )
        for ph, c in channels.items()
    }
    return evolve(production, phases=phases)


# --------------------------------------------------------------------------------------------
# Powers from the CT readings


def _older(endpoints: Mapping[str, EndpointResult], key: str, seconds: float) -> bool:
    """The endpoint's answer came from the cache, read ``seconds`` ago or earlier."""
    result = endpoints.get(key)
    return result is not None and result.outcome is Outcome.CACHED and result.age_s >= seconds


def _ct_readings(
    configs: tuple[MeterConfig, ...], readings: tuple[MeterReading, ...]
) -> dict[str, MeterReading]:
    """The reading of each enabled CT, by measurement type."""
    by_eid = {r.total.eid: r for r in readings}
    return {c.measurement_type: by_eid[c.eid] for c in configs if c.enabled and c.eid in by_eid}


def _ct_powers(
    production: Flow | None, total: Flow | None, net: Flow | None, cts: Mapping[str, MeterReading]
) -> tuple[Flow | None, Flow | None, Flow | None]:
    """The flows of a production.json read on its slow cadence (see ``plan.Plan.family``) and
    older than its powers may be, with the powers of the CT readings: they measure the same
    CTs, and are fresh. Its lifetimes, today and seven-day figures stay (they
    move on its cadence; the meters' own lifetimes are exported fresh as ``enphase_meter_*``). A
    power no reading carries this time is left out rather than shown stale. Net consumption is
    total less production where there is no net CT, total is net plus production where there is
    no total CT (production.json's total section may be a copy of net: ``_consumption``)."""
    made = _ct_phase_powers(cts.get("production"))
    net_w = _ct_phase_powers(cts.get("net-consumption"))
    total_w = _ct_phase_powers(cts.get("total-consumption"))
    if "net-consumption" not in cts:
        net_w = _combine(total_w, made, lambda t, p: t - p)
    if "total-consumption" not in cts:
        total_w = _combine(net_w, made, lambda n, p: n + p)
    return _with_powers(production, made), _with_powers(total, total_w), _with_powers(net, net_w)


def _ct_phase_powers(reading: MeterReading | None) -> dict[str, float | None]:
    """ "" for the whole, L1.. by channel position."""
    if reading is None:
        return {}
    phases = {PHASES[i]: c.power_w for i, c in enumerate(reading.channels[: len(PHASES)])}
    return {"": reading.total.power_w, **phases}


def _combine(
    a: dict[str, float | None], b: dict[str, float | None], op: Callable[[float, float], float]
) -> dict[str, float | None]:
    return {k: None if a[k] is None or b.get(k) is None else op(a[k], b[k]) for k in a if k in b}


def _with_powers(flow: Flow | None, powers: dict[str, float | None]) -> Flow | None:
    if flow is None:
        return None
    return Flow(
        total=evolve(flow.total, power_w=powers.get("")),
        phases={ph: evolve(r, power_w=powers.get(ph)) for ph, r in flow.phases.items()},
    )


# --------------------------------------------------------------------------------------------
# Meters and inverters


def _meters(configs: tuple[MeterConfig, ...], readings: tuple[MeterReading, ...]) -> tuple[Meter, ...]:
    """Configs matched with readings by eid. A disabled meter keeps its config (for
    ``enphase_meter_info``) but gets no values: the gateway keeps sending stale ones."""
    by_eid = {r.total.eid: r for r in readings}
    meters = []
    for config in configs:
        reading = by_eid.get(config.eid) if config.enabled else None
        meters.append(
            Meter(
                config=config,
                total=reading.total if reading else None,
                phases=_phases_of(reading, config.phase_count) if reading else {},
            )
        )
    return tuple(meters)


def _phases_of(reading: MeterReading, phase_count: int) -> dict[str, MeterChannel]:
    if phase_count == 1 and not reading.channels and not _all_zero(reading.total, ignore=_NOT_MEASURED):
        return {"L1": reading.total}  # no channels listed: the meter's own figures are its L1
    return _channels(reading.channels, phase_count)


# Filled by the gateway on unused channels too, so they do not make a channel used.
_NOT_MEASURED = ("eid", "timestamp_s", "frequency_hz")


def _channels(channels: tuple[MeterChannel, ...], phase_count: int) -> dict[str, MeterChannel]:
    """The first ``phase_count`` channels as L1..; all-zero ones left out. The gateway fills
    the frequency, eid and timestamp of unused channels too, so those do not count. A
    single-phase meter (``phaseCount`` 1, common in Europe and Australia) is its own L1: its
    first channel repeats the meter's figures (8.2.4345: 244.06 V, 50.06 Hz, PF 0.654 in both)."""
    return {
        PHASES[i]: channel
        for i, channel in enumerate(channels[: min(phase_count, len(PHASES))])
        if not _all_zero(channel, ignore=_NOT_MEASURED)
    }


def _inverters_total(
    source: str | None, production: Flow | None, flows: Mapping[str, Flow]
) -> Reading | None:
    """The microinverters' own production. Where it is the production source already, the very
    same reading (the counter keeper then keeps one counter for both); beside a production CT,
    the inverters section of ``/production.json`` (or ``/api/v1/production`` on gateways without
    that section), power and lifetime only: its today / seven-day figures are the CT's."""
    if source in (API_V1, SECTION):
        return production.total if production is not None else None
    if source != METER:
        return None
    flow = flows.get(SECTION) or flows.get(API_V1)
    return None if flow is None else Reading(power_w=flow.total.power_w, lifetime_j=flow.total.lifetime_j)


def _inverters(
    device_data: tuple[InverterReading, ...], v1: V1Inverters | None
) -> tuple[InverterReading, ...]:
    """Microinverters from ``/ivp/pdm/device_data`` (richer) and, for the ones it leaves out
    (it lists at most 50), from ``/api/v1/production/inverters``; devType 11 entries there are
    AC batteries, which the parser already keeps apart."""
    richer = device_data
    known = {i.serial for i in richer}
    return richer + tuple(i for i in (v1.inverters if v1 else ()) if i.serial not in known)


# --------------------------------------------------------------------------------------------
# Storage and the system controller


def _merge(base: T, extra: T, prefer: tuple[str, ...] = ()) -> T:
    """``base`` with the gaps filled from ``extra``; for the ``prefer`` fields ``extra`` wins
    wherever it has a value."""
    changes = {}
    for f in fields(base):  # type: ignore[arg-type]
        mine, theirs = getattr(base, f.name), getattr(extra, f.name)
        if theirs is not None and (mine is None or f.name in prefer):
            changes[f.name] = theirs
    return replace(base, **changes)  # type: ignore[type-var]


def _batteries(
    ensembles: list[Ensemble], inventory: Inventory, device_data: DeviceData
) -> tuple[Battery, ...]:
    """Batteries merged by serial: the Ensemble inventory (capacity, temperature, state of
    charge), then ``/ivp/ensemble/power`` (power, and its state of charge wins: it is the live
    one), then the ACBs of ``/inventory.json`` for what is still missing, then the ACBs of
    ``/ivp/pdm/device_data`` (their signed power).

    The ``lastReportWatts`` that ``/api/v1/production/inverters`` gives AC batteries is not
    their power: 8.3.5169 lists 4 W and 5 W for two "idle" units whose last reports, at the same
    moment, show 939 J and 938 J drawn in 932 s (-1.0 W each; the storage section says -2 W for
    both). Where device_data is missing, a unit's power is left out rather than shown wrong;
    the storage section still gives all of them together."""
    merged: dict[str, Battery] = {}
    sources = [(e.batteries, ("soc_ratio", "power_w")) for e in ensembles]
    sources.append((inventory.batteries, ()))
    sources.append((device_data.batteries, ()))
    for batteries, prefer in sources:
        for battery in batteries:
            known = merged.get(battery.serial)
            merged[battery.serial] = battery if known is None else _merge(known, battery, prefer)
    return tuple(merged.values())


def _storage_groups(
    production_json: ProductionJson | None, batteries: tuple[Battery, ...]
) -> tuple[StorageGroup, ...]:
    """All batteries of a type together: the ACBs as the ``/production.json`` storage section
    reports them, the IQ Batteries as the sum of their powers (only when every one reports it)."""
    groups = []
    acb = production_json.active_acb if production_json else None
    if acb is not None:
        groups.append(StorageGroup("acb", power_w=acb.power_w, state=acb.state))
    encharge = [b.power_w for b in batteries if b.battery_type == "encharge"]
    if encharge and all(p is not None for p in encharge):
        groups.append(StorageGroup("encharge", power_w=sum(p for p in encharge if p is not None)))
    return tuple(groups)


def _devices(inventory: Inventory, ensembles: list[Ensemble]) -> tuple[Device, ...]:
    """``/inventory.json``'s devices, then the Ensemble devices; a serial listed by both
    keeps its first entry, so no series is repeated."""
    found: dict[str, Device] = {}
    for device in (*inventory.devices, *(d for e in ensembles for d in e.devices)):
        found.setdefault(device.serial, device)
    return tuple(found.values())


def _storage(
    secctrl: Ensemble | None, ensembles: list[Ensemble], production_json: ProductionJson | None
) -> StorageAggregate | None:
    """The Ensemble aggregate (secctrl counts ACBs in too); without one, the ACB ``storage``
    section of ``/production.json`` stands for the AC batteries."""
    for ensemble in (secctrl, *ensembles):
        if ensemble is not None and ensemble.aggregate is not None:
            return ensemble.aggregate
    acb = production_json.active_acb if production_json else None
    if acb is None:
        return None
    return StorageAggregate(soc_ratio=acb.soc_ratio, available_j=acb.energy_j)


def _enpower(ensembles: list[Ensemble]) -> Enpower | None:
    """The first system controller listed, its gaps filled from the other endpoints' view of it."""
    found: Enpower | None = None
    for ensemble in ensembles:
        other = ensemble.enpower
        if found is None:
            found = other
        elif other is not None and other.serial == found.serial:
            found = _merge(found, other)
    return found
