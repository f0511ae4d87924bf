"""The typed, unit-normalised view of one gateway.

Everything downstream of the parsers speaks these types, and only these. Units are fixed:
watts, joules, volts, amperes, hertz, 0-1 ratios, degrees Celsius and epoch seconds. A field
is ``None`` when the gateway did not report it, never 0: the collector leaves such series out.

Two layers live here:

* parser results (``GatewayInfo``, ``ProductionJson``, ``MeterConfig`` ...): what one endpoint
  said, already in base units, but not yet judged; one collection's set of them is a
  ``Readings``;
* the ``Snapshot``: one per gateway and collection, assembled from the parser results by
  ``envoy_exporter.snapshot.assemble`` with the firmware quirks resolved.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property, lru_cache
from typing import Protocol, TypeVar

from envoy_exporter.snapshot.outcome import Outcome

T = TypeVar("T")


class Answered(Protocol[T]):
    """What ``Readings.with_answer`` needs of a catalogue row (``gateway.endpoints.Endpoint``):
    the key that names its field, and a parser of that field's type."""

    key: str

    def parse(self, body: bytes) -> T: ...


WH = 3600.0  # joules per watt-hour
WRAP_J = float(2**32)  # the CT-less Envoy-S lifetime counter wraps at 2^32 J (1,193,046.47 Wh)

PHASES = ("L1", "L2", "L3")


# --------------------------------------------------------------------------------------------
# /info


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    """What ``/info`` says about the gateway (XML, open on every firmware)."""

    serial: str
    firmware: str  # as reported, e.g. "D8.3.5433" or "R3.9.36"
    part_number: str | None = None
    metered: bool | None = None  # <imeter>; None on firmware that predates the tag
    web_tokens: bool | None = None  # <web-tokens>: the gateway wants a JWT

    @property
    def version(self) -> tuple[int, ...]:
        """Numeric firmware version: "D8.3.5433" -> (8, 3, 5433); unknown -> (0,)."""
        return firmware_version(self.firmware)

    @property
    def needs_token(self) -> bool:
        return bool(self.web_tokens) or self.version[0] >= 7


def evolve(obj: T, **changes: object) -> T:
    """``dataclasses.replace`` for the model's frozen, slotted dataclasses (none has an
    ``__init__`` of its own or a ``__post_init__``): the fields copied into a new object, those
    in ``changes`` changed, without ``replace``'s pass over the fields' definitions and its call
    of ``__init__`` by keyword. A collection copies a dozen readings and the snapshot several
    times (counter corrections, CT powers, prices), at half the cost this way."""
    kind = obj.__class__
    made = object.__new__(kind)
    for name in kind.__slots__:
        _set(made, name, changes[name] if name in changes else getattr(obj, name))
    unknown = changes.keys() - kind.__slots__
    if unknown:
        raise TypeError(f"{kind.__name__} has no field {sorted(unknown)[0]!r}")
    return made


_set = object.__setattr__  # how a frozen dataclass's own ``__init__`` sets its fields


@lru_cache(maxsize=64)
def firmware_version(firmware: str) -> tuple[int, ...]:
    """``GatewayInfo.version``: worked out once per firmware string, not at each of the plan's
    questions on every collection (a gateway's firmware changes once in months)."""
    digits = "".join(c if c.isdigit() or c == "." else " " for c in firmware).split()
    if not digits:
        return (0,)
    return tuple(int(p) for p in digits[0].split(".") if p)


# --------------------------------------------------------------------------------------------
# Production and consumption readings


@dataclass(frozen=True, slots=True)
class Reading:
    """One production or consumption figure: a whole system or one phase."""

    power_w: float | None = None
    lifetime_j: float | None = None
    today_j: float | None = None
    last_seven_days_j: float | None = None
    # Only the eim (CT) sections carry these
    voltage_v: float | None = None
    current_a: float | None = None
    reactive_var: float | None = None
    apparent_va: float | None = None
    power_factor: float | None = None


@dataclass(frozen=True, slots=True)
class EimSection:
    """One CT-measured section of ``/production.json`` (type ``eim``)."""

    measurement_type: str | None  # "production", "total-consumption", "net-consumption"; None seen on 4.2.33
    active_count: int
    reading_time: float | None
    total: Reading
    lines: tuple[Reading, ...] = ()  # per phase, L1.. in order; may hold a trailing all-zero line


@dataclass(frozen=True, slots=True)
class InvertersSection:
    """The ``type: inverters`` section of ``/production.json``.

    Its ``whLifetime`` is the 32-bit-wrapped value on some firmware (see ``WRAP_J``).
    """

    active_count: int
    reading_time: float | None
    power_w: float | None
    lifetime_j: float | None


@dataclass(frozen=True, slots=True)
class AcbStorage:
    """The ``storage`` (type ``acb``) section of ``/production.json``: AC batteries together."""

    active_count: int
    power_w: float | None  # positive = discharging
    energy_j: float | None  # whNow, energy stored
    state: str | None  # "idle", "charging", "discharging"
    soc_ratio: float | None  # percentFull / 100


@dataclass(frozen=True, slots=True)
class ProductionJson:
    inverters: InvertersSection | None = None
    production: EimSection | None = None
    consumption: tuple[EimSection, ...] = ()  # choose by measurement_type, never by position
    storage: AcbStorage | None = None

    @property
    def active_acb(self) -> AcbStorage | None:
        """The AC battery section while an AC battery reports (activeCount > 0), else None."""
        return self.storage if self.storage is not None and self.storage.active_count > 0 else None

    def consumption_of(self, measurement_type: str) -> EimSection | None:
        for section in self.consumption:
            if section.measurement_type == measurement_type:
                return section
        return None


# --------------------------------------------------------------------------------------------
# Inverters


@dataclass(frozen=True, slots=True)
class InverterReading:
    """One microinverter (PCU). ``/api/v1/production/inverters`` fills the first four fields;
    ``/ivp/pdm/device_data`` fills the rest as well."""

    serial: str
    power_w: float | None = None
    max_power_w: float | None = None
    last_report_s: float | None = None
    lifetime_j: float | None = None
    today_j: float | None = None
    dc_voltage_v: float | None = None
    dc_current_a: float | None = None
    ac_voltage_v: float | None = None
    ac_current_a: float | None = None
    ac_frequency_hz: float | None = None
    temperature_c: float | None = None
    last_report_duration_s: float | None = None  # the interval the last report covers
    last_report_energy_j: float | None = None  # energy produced in that interval


@dataclass(frozen=True, slots=True)
class AcbReading:
    """An AC battery as ``/api/v1/production/inverters`` lists it (devType 11)."""

    serial: str
    power_w: float | None = None  # as reported: no direction (a few watts while idle)
    max_power_w: float | None = None
    last_report_s: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceData:
    """What ``/ivp/pdm/device_data`` lists: the microinverters and the AC batteries."""

    inverters: tuple[InverterReading, ...] = ()
    batteries: tuple[Battery, ...] = ()  # ACB entries: power, state of charge, cell temperature


@dataclass(frozen=True, slots=True)
class V1Inverters:
    inverters: tuple[InverterReading, ...] = ()
    batteries: tuple[AcbReading, ...] = ()


# --------------------------------------------------------------------------------------------
# CT meters


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """One entry of ``/ivp/meters``."""

    eid: int
    measurement_type: (
        str  # production, net-consumption, total-consumption, storage, backfeed, load, evse, pv3p
    )
    state: str  # "enabled" / "disabled"
    phase_mode: str | None
    phase_count: int
    metering_status: str | None
    status_flags: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.state == "enabled"


@dataclass(frozen=True, slots=True)
class MeterChannel:
    """One reading of ``/ivp/meters/readings``: a whole meter or one of its channels."""

    eid: int
    timestamp_s: float | None = None
    power_w: float | None = None
    reactive_var: float | None = None
    apparent_va: float | None = None
    voltage_v: float | None = None
    current_a: float | None = None
    frequency_hz: float | None = None
    power_factor: float | None = None
    delivered_j: float | None = None
    received_j: float | None = None


@dataclass(frozen=True, slots=True)
class MeterReading:
    total: MeterChannel
    channels: tuple[MeterChannel, ...] = ()


@dataclass(frozen=True, slots=True)
class Meter:
    """A CT meter in the snapshot: its configuration matched by eid with its reading.

    ``phases`` maps "L1".. to channels; channels beyond ``phase_count`` and all-zero channels
    are already left out.
    """

    config: MeterConfig
    total: MeterChannel | None
    phases: dict[str, MeterChannel] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Inventory: device flags and relays


@dataclass(frozen=True, slots=True)
class Device:
    """One device of ``/inventory.json`` (PCU, ACB, NSRB) or ``/ivp/ensemble/inventory``
    (ENCHARGE, ENPOWER, COLLAR)."""

    serial: str
    device_type: str  # as the gateway names the group: "PCU", "ACB", "NSRB", "ENCHARGE", ...
    part_number: str | None = None
    firmware: str | None = None
    producing: bool | None = None
    communicating: bool | None = None
    provisioned: bool | None = None
    operating: bool | None = None
    last_report_s: float | None = None
    statuses: tuple[str, ...] = ()  # device_status codes, e.g. "envoy.global.ok"
    admin_state: str | None = None  # admin_state_str of Ensemble devices
    grid_state: str | None = None  # the grid state an Ensemble device reports


@dataclass(frozen=True, slots=True)
class Relay:
    """An NSRB (Q-Relay) from ``/inventory.json``."""

    serial: str
    closed: bool | None = None  # relay == "closed"
    lines_connected: dict[str, bool] = field(default_factory=dict)  # {"1": True, "2": True, ...}


@dataclass(frozen=True, slots=True)
class Inventory:
    devices: tuple[Device, ...] = ()
    relays: tuple[Relay, ...] = ()
    batteries: tuple[Battery, ...] = ()  # ACB entries, with their state of charge


# --------------------------------------------------------------------------------------------
# Storage and grid (Ensemble)


@dataclass(frozen=True, slots=True)
class Battery:
    serial: str
    battery_type: str  # "encharge" or "acb"
    soc_ratio: float | None = None
    power_w: float | None = None  # positive = discharging
    capacity_j: float | None = None
    temperature_c: float | None = None
    communicating: bool | None = None
    operating: bool | None = None
    state: str | None = None  # "idle", "charging", "discharging" (AC batteries)
    dc_switch_on: bool | None = None  # IQ Battery DC switch


@dataclass(frozen=True, slots=True)
class StorageAggregate:
    """All batteries together (``/ivp/ensemble/secctrl`` plus ACB where present)."""

    soc_ratio: float | None = None
    available_j: float | None = None
    capacity_j: float | None = None
    reserve_ratio: float | None = None


@dataclass(frozen=True, slots=True)
class Enpower:
    """The system controller (Enpower / IQ System Controller) or the Meter Collar."""

    serial: str
    grid_connected: bool | None = None  # mains relay closed
    grid_enabled: bool | None = None  # mains relay allowed to close (mains_admin_state)
    grid_mode: str | None = None
    temperature_c: float | None = None
    communicating: bool | None = None


@dataclass(frozen=True, slots=True)
class Ensemble:
    """What ``/ivp/ensemble/inventory``, ``/ivp/ensemble/secctrl`` and ``/ivp/ensemble/power``
    say together; each parser fills its part and ``assemble`` merges them by serial."""

    batteries: tuple[Battery, ...] = ()
    enpower: Enpower | None = None
    aggregate: StorageAggregate | None = None
    devices: tuple[Device, ...] = ()  # ENCHARGE, ENPOWER, COLLAR as devices (flags, status)


@dataclass(frozen=True, slots=True)
class StorageGroup:
    """All batteries of one type together: ``acb`` from the ``/production.json`` storage
    section, ``encharge`` summed over the IQ Batteries."""

    battery_type: str
    power_w: float | None = None  # positive = discharging
    state: str | None = None


# --------------------------------------------------------------------------------------------
# Settings and the system controller's relays (slow cache)


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """The battery profile of ``/admin/lib/tariff`` (``tariff.storage_settings``)."""

    mode: str | None = None  # "self-consumption", "backup", "economy", ...
    reserve_ratio: float | None = None  # reserved_soc / 100
    very_low_ratio: float | None = None  # very_low_soc / 100
    charge_from_grid: bool | None = None


@dataclass(frozen=True, slots=True)
class DryContact:
    contact: str  # "NC1", "NO1", ...
    closed: bool


@dataclass(frozen=True, slots=True)
class DryContactSetting:
    """How a dry contact is configured (``/ivp/ss/dry_contact_settings``)."""

    contact: str  # "NC1", "NO1", ...
    kind: str | None = None  # what it switches, lower case: "none", "load", "3rd-pv", ...
    mode: str | None = None  # "manual", "soc", ...
    soc_low_ratio: float | None = None  # soc_low / 100: shed below this state of charge
    soc_high_ratio: float | None = None  # soc_high / 100: restore above it


@dataclass(frozen=True, slots=True)
class Generator:
    present: bool | None = None
    relay_closed: bool | None = None  # oper_state "close"/"closed"


# --------------------------------------------------------------------------------------------
# Connectivity (/home.json)


@dataclass(frozen=True, slots=True)
class NetworkInterface:
    name: str  # "eth0", "wlan0", "ppp0"
    kind: str  # "ethernet", "wifi", "cellular"
    up: bool | None = None  # carrier
    signal_ratio: float | None = None  # signal_strength / signal_strength_max (wireless only)


@dataclass(frozen=True, slots=True)
class HomeStatus:
    enlighten_connected: bool | None = None  # web_comm
    last_enlighten_report_s: float | None = None
    interfaces: tuple[NetworkInterface, ...] = ()
    timezone: str | None = None  # the gateway's own time zone, as it names it ("US/Eastern")


# --------------------------------------------------------------------------------------------
# One collection's parser results


@dataclass(frozen=True)
class Readings:
    """What the endpoints answered in one collection (fetched or from the cache), one field per
    endpoint, named by its key (``gateway.endpoints``); ``None``: not asked, or no usable answer.
    Frozen: the plan reads a view that no later answer changes."""

    info: GatewayInfo | None = None
    production_json: ProductionJson | None = None
    production_html: Reading | None = None
    api_v1_production: Reading | None = None
    api_v1_inverters: V1Inverters | None = None
    device_data: DeviceData | None = None
    meters: tuple[MeterConfig, ...] | None = None
    meter_readings: tuple[MeterReading, ...] | None = None
    inventory: Inventory | None = None
    ensemble_inventory: Ensemble | None = None
    ensemble_secctrl: Ensemble | None = None
    ensemble_power: Ensemble | None = None
    tariff: TariffAnswer | None = None
    dry_contacts: tuple[DryContact, ...] | None = None
    dry_contact_settings: tuple[DryContactSetting, ...] | None = None
    generator: Generator | None = None
    home: HomeStatus | None = None

    @cached_property
    def production_ct(self) -> EimSection | None:
        """production.json's eim production section while its CT measures (activeCount > 0, and
        no production meter that ``/ivp/meters`` calls disabled), else None. Whether the meter
        can be the production source: decided once per view, read by the plan and the
        assembler alike."""
        eim = self.production_json.production if self.production_json else None
        if eim is None or eim.active_count <= 0 or eim.measurement_type not in (None, "production"):
            return None
        if any(m.measurement_type == "production" and not m.enabled for m in self.meters or ()):
            return None
        return eim

    def with_answer(self, endpoint: Answered[T], value: T) -> Readings:
        """These readings and ``endpoint``'s parsed answer, in the field its key names (the
        field's type is its parser's: tests/test_architecture.py). Made as ``replace`` makes it,
        field by field, without its call of ``__init__`` with every field (once per answer);
        what ``production_ct`` worked out for these readings is not carried over."""
        if endpoint.key not in _READINGS_FIELDS:
            raise TypeError(f"Readings has no field {endpoint.key!r}")
        answered = object.__new__(Readings)
        state = vars(answered)
        for name, held in vars(self).items():
            if name in _READINGS_FIELDS:
                state[name] = held
        state[endpoint.key] = value
        return answered


_READINGS_FIELDS = frozenset(f.name for f in fields(Readings))


# --------------------------------------------------------------------------------------------
# The snapshot


@dataclass(frozen=True, slots=True)
class Flow:
    """A production or consumption flow: the whole and its phases."""

    total: Reading
    phases: dict[str, Reading] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EndpointResult:
    """How one endpoint fared in the collection that made a snapshot (see ``snapshot.outcome``)."""

    outcome: Outcome
    detail: str | None = None  # the cause in words, for the log and the status page; never a secret
    age_s: float = 0.0  # how long ago the gateway gave the answer (``CACHED`` ones)
    url: str | None = None  # where the request went (or would have gone), for a failure

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    def __str__(self) -> str:
        """The cause in words and where: "connection refused (http://192.0.2.5/info)"."""
        cause = self.detail or self.outcome.words
        return f"{cause} ({self.url})" if self.url else cause


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One gateway at one moment, everything the collector exports.

    ``production_source`` is "meter", "inverters" or "legacy" and is stable across glitches
    (see ``assemble``). ``endpoints`` says, per endpoint key, what the last collection got.
    """

    collected_at: float
    info: GatewayInfo | None = None
    production_source: str | None = None
    production: Flow | None = None
    consumption_total: Flow | None = None
    consumption_net: Flow | None = None
    meters: tuple[Meter, ...] = ()
    inverters: tuple[InverterReading, ...] = ()
    devices: tuple[Device, ...] = ()
    relays: tuple[Relay, ...] = ()
    batteries: tuple[Battery, ...] = ()
    storage: StorageAggregate | None = None
    enpower: Enpower | None = None
    # The microinverters' own production next to the CT (a family of its own, never summed
    # with ``production``); its lifetime passes through the counter keeper.
    inverters_total: Reading | None = None
    storage_groups: tuple[StorageGroup, ...] = ()
    storage_settings: StorageSettings | None = None
    dry_contacts: tuple[DryContact, ...] = ()
    dry_contact_settings: tuple[DryContactSetting, ...] = ()
    generator: Generator | None = None
    home: HomeStatus | None = None
    tariff: Tariff | None = None  # the gateway's own prices, where /admin/lib/tariff has them
    money: Money | None = None  # the prices in force and what the grid cost (``money.MoneyKeeper``)
    endpoints: dict[str, EndpointResult] = field(default_factory=dict)
    # The gateway's own lifetime values before ``counters.CounterKeeper.apply`` corrected them,
    # kept so the correction can be audited; empty on a snapshot the keeper has not seen.
    reported: tuple[Reported, ...] = ()
    # The start-up's collection read production and consumption only (``plan.FIRST``); the
    # rest (inverters, devices, batteries, settings) comes with the next collection.
    partial: bool = False

    @property
    def up(self) -> bool:
        """The contract's ``enphase_up``: this collection got production data."""
        return self.production is not None


@dataclass(frozen=True, slots=True)
class Reported:
    """One lifetime value as the gateway reported it, before counter correction."""

    kind: str  # "production", "consumption", "meter_delivered", "meter_received", "inverter" or
    # "inverters_total" (the microinverters' own production beside the CT; name "")
    name: str  # the production source, "total", the meter's measurement type, or the serial
    phase: str  # "L1".. or "" for the whole
    joules: float


@dataclass(frozen=True, slots=True)
class Latest:
    """What a gateway's client has to show: the snapshot of its newest finished collection, or
    the last good one kept while the gateway fails (``fresh`` False then)."""

    snapshot: Snapshot  # before any answer: an empty one, ``collected_at`` when the client started
    fresh: bool  # the newest finished collection got production data of its own


# --------------------------------------------------------------------------------------------
# Prices (/admin/lib/tariff, or the configuration where the gateway holds none)


@dataclass(frozen=True, slots=True)
class RatePeriod:
    """A rate from ``start`` (minutes after local midnight) until the next period's start."""

    start_min: int
    rate: float | None  # in the tariff's currency per kWh; None: the flat rate applies
    name: str


@dataclass(frozen=True, slots=True)
class DayType:
    weekdays: frozenset[int]  # 0 = Monday .. 6 = Sunday, as ``date.weekday()``
    periods: tuple[RatePeriod, ...]  # sorted by start


@dataclass(frozen=True, slots=True)
class Season:
    """From ``start`` (month, day) until the next season's start; the last runs into the new year."""

    start: tuple[int, int]
    day_types: tuple[DayType, ...]
    name: str


@dataclass(frozen=True, slots=True)
class Rates:
    """One direction's prices: seasons of day types of periods, else the flat rate."""

    flat: float | None = None
    seasons: tuple[Season, ...] = ()  # sorted by start


@dataclass(frozen=True, slots=True)
class Tariff:
    currency: str | None
    buy: Rates = field(default_factory=Rates)
    sell: Rates = field(default_factory=Rates)

    @property
    def held(self) -> bool:
        """The gateway holds a tariff: a rate of 0 (or none) with no seasons is none."""
        return bool(self.buy.flat) or bool(self.buy.seasons)


@dataclass(frozen=True, slots=True)
class TariffAnswer:
    """What ``/admin/lib/tariff`` says: the battery profile and the prices."""

    storage: StorageSettings = field(default_factory=StorageSettings)
    tariff: Tariff | None = None


@dataclass(frozen=True, slots=True)
class PriceInForce:
    direction: str  # "import" or "export"
    currency: str
    rate: float  # currency per kWh
    period: str  # the tariff's name of the period, "flat" for a flat rate


@dataclass(frozen=True, slots=True)
class Money:
    """The prices in force at a snapshot's collection, and the grid's cost and credit so far."""

    prices: tuple[PriceInForce, ...] = ()
    currency: str | None = None
    import_cost: float | None = None  # None: no meter tells import from export
    export_credit: float | None = None
    utc_offset_s: float | None = None  # of the gateway's local time, at the collection
