"""Maps one gateway's ``Snapshot`` to the data series of ``spec/metrics.md``.

Pure: a snapshot and a gateway name in, samples into a ``Families`` out. Values the snapshot
holds as ``None`` produce no sample (``Families`` drops them), so an unreported value is absent,
never 0. Aggregates and per-phase values go to different metrics so ``sum()`` never counts twice.
"""

from __future__ import annotations

from collections.abc import Callable

from envoy_exporter.collector.exposition import escaped, with_label
from envoy_exporter.collector.families import Column, Families, column, columns
from envoy_exporter.collector.money import add_money
from envoy_exporter.collector.system import (
    add_controller,
    add_home,
    add_inverters_total,
    add_storage_groups,
    add_storage_settings,
)
from envoy_exporter.snapshot.counters import PRODUCTION
from envoy_exporter.snapshot.model import (
    Battery,
    Device,
    Flow,
    Meter,
    Snapshot,
)

# (metric suffix, help, field of the model type); one table per model type keeps the mapping
# reviewable against the spec at a glance.
Row = tuple[str, str, str]
_METER_GAUGES = (
    ("power_watts", "Active power", "power_w"),
    ("reactive_power_var", "Reactive power", "reactive_var"),
    ("apparent_power_voltamperes", "Apparent power", "apparent_va"),
)
_METER_PHASE_GAUGES = (
    *_METER_GAUGES,
    ("voltage_volts", "Voltage", "voltage_v"),
    ("current_amperes", "Current", "current_a"),
    ("frequency_hertz", "Frequency", "frequency_hz"),
    ("power_factor", "Power factor", "power_factor"),
)
_METER_COUNTERS = (
    ("energy_delivered_joules", "Energy delivered (from the grid, on the net meter)", "delivered_j"),
    ("energy_received_joules", "Energy received (into the grid, on the net meter)", "received_j"),
)
_INVERTER_GAUGES = (
    ("power_watts", "Last reported AC power of the microinverter", "power_w"),
    ("max_power_watts", "Highest power the microinverter reported", "max_power_w"),
    ("last_report_timestamp_seconds", "Time of the microinverter's last report", "last_report_s"),
    ("energy_today_joules", "Energy the microinverter produced today", "today_j"),
    ("dc_voltage_volts", "DC input voltage", "dc_voltage_v"),
    ("dc_current_amperes", "DC input current", "dc_current_a"),
    ("ac_voltage_volts", "AC output voltage", "ac_voltage_v"),
    ("ac_current_amperes", "AC output current", "ac_current_a"),
    ("ac_frequency_hertz", "AC output frequency", "ac_frequency_hz"),
    ("temperature_celsius", "Microinverter temperature", "temperature_c"),
    (
        "last_report_duration_seconds",
        "Length of the interval the last report covers",
        "last_report_duration_s",
    ),
    (
        "last_report_energy_joules",
        "Energy produced in the interval of the last report",
        "last_report_energy_j",
    ),
)
_DEVICE_FLAGS = (
    ("producing", "1 if the device is producing"),
    ("communicating", "1 if the device is communicating with the gateway"),
    ("provisioned", "1 if the device is provisioned"),
    ("operating", "1 if the device is operating"),
)
_BATTERY_GAUGES = (
    ("power_watts", "Battery power, positive while discharging", "power_w"),
    ("capacity_joules", "Battery capacity", "capacity_j"),
    ("temperature_celsius", "Battery temperature", "temperature_c"),
)
_STORAGE_GAUGES = (
    ("state_of_charge_ratio", "State of charge of all batteries together", "soc_ratio"),
    ("available_energy_joules", "Energy stored in all batteries together", "available_j"),
    ("capacity_joules", "Capacity of all batteries together", "capacity_j"),
    ("reserve_ratio", "Share of the capacity reserved for backup", "reserve_ratio"),
)


def _columns(prefix: str, gauges: tuple[Row, ...], where: str = "") -> tuple[Column, ...]:
    """The gauge columns of ``gauges``, named with ``prefix``, each help ending with ``where``."""
    return tuple(column(prefix + suffix, "gauge", doc + where, attr) for suffix, doc, attr in gauges)


def _channel_columns(prefix: str, gauges: tuple[Row, ...], where: str) -> tuple[Column, ...]:
    """The columns of a CT meter channel, the whole meter's or a phase's: gauges, then counters."""
    counters = tuple(
        column(prefix + suffix, "counter", f"{doc} {where}, lifetime", attr)
        for suffix, doc, attr in _METER_COUNTERS
    )
    return _columns(prefix, gauges, " " + where) + counters


# The columns as Families.table takes them: full names and headers, made once.
_METER_COLUMNS = columns(*_channel_columns("enphase_meter_", _METER_GAUGES, "of the CT meter"))
_METER_PHASE_COLUMNS = columns(
    *_channel_columns("enphase_meter_phase_", _METER_PHASE_GAUGES, "of a phase of the CT meter")
)
_INVERTER_COLUMNS = columns(
    *_columns("enphase_inverter_", _INVERTER_GAUGES),
    column(
        "enphase_inverter_energy_joules",
        "counter",
        "Energy the microinverter produced, lifetime",
        "lifetime_j",
    ),
)
_DEVICE_COLUMNS = columns(
    *[column(f"enphase_device_{flag}", "gauge", doc, flag) for flag, doc in _DEVICE_FLAGS]
)
_BATTERY_COLUMNS = columns(*_columns("enphase_battery_", _BATTERY_GAUGES))
_STORAGE_COLUMNS = columns(*_columns("enphase_storage_", _STORAGE_GAUGES))


def add_snapshot(families: Families, base: str, snapshot: Snapshot) -> None:
    """The data series of ``snapshot``; ``base`` are the gateway's rendered labels
    (``exposition.gateway_labels``)."""
    for add in _SECTIONS:
        add(families, base, snapshot)


def _production(f: Families, base: str, s: Snapshot) -> None:
    if s.production is None:
        return
    labels = with_label(base, "source", s.production_source or "unknown")
    total = s.production.total
    f.gauge("enphase_production_power_watts", "Production power", labels, total.power_w)
    f.counter("enphase_production_energy_joules", "Energy produced, lifetime", labels, total.lifetime_j)
    f.gauge(
        "enphase_production_energy_today_joules", "Energy produced today, as reported", base, total.today_j
    )
    f.gauge(
        "enphase_production_energy_seven_day_joules",
        "Energy produced in the last seven days, as reported",
        base,
        total.last_seven_days_j,
    )
    _reported_production(f, base, s)
    for phase, reading in s.production.phases.items():
        phased = with_label(labels, "phase", phase)
        f.gauge(
            "enphase_production_phase_power_watts", "Production power of a phase", phased, reading.power_w
        )
        f.counter(
            "enphase_production_phase_energy_joules",
            "Energy produced on a phase, lifetime",
            phased,
            reading.lifetime_j,
        )


def _reported_production(f: Families, base: str, s: Snapshot) -> None:
    # ``reported`` holds the raw lifetime values the counter keeper saw; the system-level
    # production one is exported so a correction can be audited against what the gateway said.
    for reported in s.reported:
        if reported.kind == PRODUCTION and not reported.phase:
            f.gauge(
                "enphase_production_energy_reported_joules",
                "Lifetime production as the gateway reports it, before counter corrections",
                with_label(base, "source", reported.name),
                reported.joules,
            )


def _consumption(f: Families, base: str, s: Snapshot) -> None:
    for measurement, flow in (("total", s.consumption_total), ("net", s.consumption_net)):
        if flow is not None:
            _consumption_flow(f, with_label(base, "measurement", measurement), flow, net=measurement == "net")
    if s.consumption_total is not None:
        _consumption_total_energy(f, base, s.consumption_total)
    if s.consumption_net is not None:
        _net_energy(f, base, s.consumption_net)


def _consumption_flow(f: Families, labels: str, flow: Flow, net: bool) -> None:
    total = flow.total
    f.gauge("enphase_consumption_power_watts", "Consumption power", labels, total.power_w)
    # The gateway does not compute net today / seven days: it reports 0 (or, on some 8.3
    # firmware, the lifetime). Left out rather than shown as a figure.
    if not net:
        f.gauge(
            "enphase_consumption_energy_today_joules",
            "Energy consumed today, as reported",
            labels,
            total.today_j,
        )
        f.gauge(
            "enphase_consumption_energy_seven_day_joules",
            "Energy consumed in the last seven days, as reported",
            labels,
            total.last_seven_days_j,
        )
    for phase, reading in flow.phases.items():
        f.gauge(
            "enphase_consumption_phase_power_watts",
            "Consumption power of a phase",
            with_label(labels, "phase", phase),
            reading.power_w,
        )


def _consumption_total_energy(f: Families, base: str, flow: Flow) -> None:
    labels = with_label(base, "measurement", "total")
    f.counter("enphase_consumption_energy_joules", "Energy consumed, lifetime", labels, flow.total.lifetime_j)
    for phase, reading in flow.phases.items():
        f.counter(
            "enphase_consumption_phase_energy_joules",
            "Energy consumed on a phase, lifetime",
            with_label(labels, "phase", phase),
            reading.lifetime_j,
        )


def _net_energy(f: Families, base: str, flow: Flow) -> None:
    # Import minus export: it falls while exporting, so a gauge, never a counter.
    f.gauge(
        "enphase_net_consumption_energy_joules",
        "Energy imported minus energy exported, lifetime; can fall and be negative",
        base,
        flow.total.lifetime_j,
    )
    for phase, reading in flow.phases.items():
        f.gauge(
            "enphase_net_consumption_phase_energy_joules",
            "Energy imported minus energy exported on a phase, lifetime; can fall and be negative",
            with_label(base, "phase", phase),
            reading.lifetime_j,
        )


def _meters(f: Families, base: str, s: Snapshot) -> None:
    for meter in s.meters:
        _meter(f, with_label(base, "meter", meter.config.measurement_type), meter)


def _meter(f: Families, labels: str, meter: Meter) -> None:
    config = meter.config
    # One string, as with_labels would make it: the eid and the phase count are numbers, which
    # need no escaping.
    info = (
        f'{labels},eid="{config.eid}",phase_mode="{escaped(config.phase_mode or "")}",'
        f'phase_count="{config.phase_count}",state="{escaped(config.state)}"'
    )
    f.one("enphase_meter_info", "CT meter configuration", info)
    enabled = config.enabled
    if enabled and config.metering_status:
        f.state(
            "enphase_meter_metering_status",
            "1 for the metering status of the CT meter",
            labels,
            "status",
            config.metering_status,
        )
    for flag in config.status_flags if enabled else ():
        f.state(
            "enphase_meter_status_flag",
            "1 for each status flag the CT meter raises",
            labels,
            "flag",
            flag,
        )
    if meter.total is not None:
        f.gauges(_METER_COLUMNS, labels, meter.total)
    for phase, channel in meter.phases.items():
        f.gauges(_METER_PHASE_COLUMNS, with_label(labels, "phase", phase), channel)


def _inverters(f: Families, base: str, s: Snapshot) -> None:
    serials = [inverter.serial for inverter in s.inverters]
    joined = "".join(serials)
    # Looked at all at once for a character to escape (there are dozens, and it is very rare).
    if escaped(joined) == joined:
        labels = [f'{base},serial="{serial}"' for serial in serials]
    else:
        labels = [with_label(base, "serial", serial) for serial in serials]
    f.table(_INVERTER_COLUMNS, list(zip(labels, s.inverters, strict=True)))


def _devices(f: Families, base: str, s: Snapshot) -> None:
    for device in s.devices:
        labels = f'{base},serial="{escaped(device.serial)}",device_type="{escaped(device.device_type)}"'
        _device(f, labels, device)


def _device(f: Families, labels: str, device: Device) -> None:
    # Labels made as one string each, rather than through with_labels (a call with keywords
    # and a loop): a device's are made on every rendering.
    part_number, firmware = escaped(device.part_number or ""), escaped(device.firmware or "")
    info = f'{labels},part_number="{part_number}",firmware="{firmware}"'
    f.one("enphase_device_info", "A device the gateway lists in its inventory", info)
    f.gauges(_DEVICE_COLUMNS, labels, device)
    f.gauge(
        "enphase_device_last_report_timestamp_seconds",
        "Time the device last reported to the gateway",
        labels,
        device.last_report_s,
    )
    for status in device.statuses:
        f.state(
            "enphase_device_status",
            "1 for each status code of the device",
            labels,
            "status",
            status,
        )
    if device.admin_state:
        f.state(
            "enphase_device_admin_state",
            "1 for the administrative state of the device",
            labels,
            "state",
            device.admin_state,
        )
    if device.grid_state:
        f.state(
            "enphase_device_grid_state",
            "1 for the grid state the device reports",
            labels,
            "state",
            device.grid_state,
        )


def _relays(f: Families, base: str, s: Snapshot) -> None:
    for relay in s.relays:
        labels = with_label(base, "serial", relay.serial)
        f.gauge("enphase_relay_closed", "1 if the Q-Relay is closed", labels, relay.closed)
        for line, connected in sorted(relay.lines_connected.items()):
            f.gauge(
                "enphase_relay_line_connected",
                "1 if the line of the Q-Relay is connected",
                with_label(labels, "line", line),
                connected,
            )


def _batteries(f: Families, base: str, s: Snapshot) -> None:
    for battery in s.batteries:
        _battery(f, with_label(base, "serial", battery.serial), battery)


def _battery(f: Families, labels: str, battery: Battery) -> None:
    f.gauge(
        "enphase_battery_state_of_charge_ratio",
        "State of charge of the battery",
        with_label(labels, "battery_type", battery.battery_type),
        battery.soc_ratio,
    )
    f.gauges(_BATTERY_COLUMNS, labels, battery)
    f.gauge(
        "enphase_battery_dc_switch_on", "1 if the battery's DC switch is on", labels, battery.dc_switch_on
    )
    if battery.state:
        f.state(
            "enphase_battery_state",
            "1 for the state the battery is in",
            labels,
            "state",
            battery.state,
        )


def _storage(f: Families, base: str, s: Snapshot) -> None:
    if s.storage is not None:
        f.gauges(_STORAGE_COLUMNS, base, s.storage)
    if s.enpower is not None:
        f.gauge(
            "enphase_grid_connected",
            "1 while the system controller's mains relay is closed",
            base,
            s.enpower.grid_connected,
        )


_SECTIONS: tuple[Callable[[Families, str, Snapshot], None], ...] = (
    _production,
    _consumption,
    _meters,
    _inverters,
    _devices,
    _relays,
    _batteries,
    _storage,
    add_inverters_total,
    add_storage_groups,
    add_storage_settings,
    add_controller,
    add_home,
    add_money,
)
