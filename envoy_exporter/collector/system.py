"""Series of what the gateway knows beyond energy flows: the inverters' own
production beside the CT, batteries by type, the battery profile, the system controller's dry
contacts and generator, and the gateway's connectivity. Same rules as ``gateway``: ``None``
gives no sample, state sets are one 1-valued series with the state in a label.
"""

from __future__ import annotations

from envoy_exporter.collector.exposition import with_label
from envoy_exporter.collector.families import Families
from envoy_exporter.snapshot.model import Snapshot


def add_inverters_total(f: Families, base: str, s: Snapshot) -> None:
    total = s.inverters_total
    if total is None:
        return
    f.gauge(
        "enphase_inverters_power_watts",
        "Power the microinverters together report, beside the production CT",
        base,
        total.power_w,
    )
    f.counter(
        "enphase_inverters_energy_joules",
        "Energy the microinverters together report producing, lifetime",
        base,
        total.lifetime_j,
    )


def add_storage_groups(f: Families, base: str, s: Snapshot) -> None:
    for group in s.storage_groups:
        labels = with_label(base, "battery_type", group.battery_type)
        f.gauge(
            "enphase_storage_power_watts",
            "Power of all batteries of a type together, positive while discharging",
            labels,
            group.power_w,
        )
        if group.state:
            f.state(
                "enphase_storage_state",
                "1 for the state the batteries of a type are in together",
                labels,
                "state",
                group.state,
            )


def add_storage_settings(f: Families, base: str, s: Snapshot) -> None:
    settings = s.storage_settings
    if settings is None:
        return
    if settings.mode:
        f.state(
            "enphase_storage_mode",
            "1 for the battery profile in force",
            base,
            "mode",
            settings.mode,
        )
    f.gauge(
        "enphase_storage_reserve_setting_ratio",
        "The configured backup reserve",
        base,
        settings.reserve_ratio,
    )
    f.gauge(
        "enphase_storage_very_low_setting_ratio",
        "The configured very-low state of charge",
        base,
        settings.very_low_ratio,
    )
    f.gauge(
        "enphase_storage_charge_from_grid",
        "1 if the batteries may charge from the grid",
        base,
        settings.charge_from_grid,
    )


def add_controller(f: Families, base: str, s: Snapshot) -> None:
    enpower = s.enpower
    if enpower is not None:
        f.gauge(
            "enphase_grid_enabled",
            "1 if the system controller's mains relay is allowed to close",
            base,
            enpower.grid_enabled,
        )
        if enpower.grid_mode:
            f.state(
                "enphase_grid_mode",
                "1 for the grid mode in force",
                base,
                "mode",
                enpower.grid_mode,
            )
        f.gauge(
            "enphase_system_controller_temperature_celsius",
            "Temperature of the system controller",
            with_label(base, "serial", enpower.serial),
            enpower.temperature_c,
        )
    for contact in s.dry_contacts:
        f.gauge(
            "enphase_dry_contact_closed",
            "1 if the system controller's dry contact is closed",
            with_label(base, "contact", contact.contact),
            contact.closed,
        )
    _dry_contact_settings(f, base, s)
    if s.generator is not None:
        f.gauge("enphase_generator_present", "1 if a generator is configured", base, s.generator.present)
        f.gauge(
            "enphase_generator_relay_closed",
            "1 if the generator relay is closed",
            base,
            s.generator.relay_closed,
        )


def _dry_contact_settings(f: Families, base: str, s: Snapshot) -> None:
    for setting in s.dry_contact_settings:
        labels = with_label(base, "contact", setting.contact)
        if setting.mode:
            f.state(
                "enphase_dry_contact_mode",
                "1 for how the dry contact is switched: manual, or by the batteries' state of charge (soc)",
                labels,
                "mode",
                setting.mode,
            )
        if setting.kind:
            f.state(
                "enphase_dry_contact_type",
                "1 for what the dry contact switches: none, load, 3rd-pv, ...",
                labels,
                "type",
                setting.kind,
            )
        f.gauge(
            "enphase_dry_contact_soc_low_setting_ratio",
            "State of charge below which the dry contact sheds its load (soc mode)",
            labels,
            setting.soc_low_ratio,
        )
        f.gauge(
            "enphase_dry_contact_soc_high_setting_ratio",
            "State of charge above which the dry contact restores its load (soc mode)",
            labels,
            setting.soc_high_ratio,
        )


def add_home(f: Families, base: str, s: Snapshot) -> None:
    home = s.home
    if home is None:
        return
    f.gauge(
        "enphase_gateway_enlighten_connected",
        "1 if the gateway reaches Enlighten",
        base,
        home.enlighten_connected,
    )
    f.gauge(
        "enphase_gateway_enlighten_last_report_timestamp_seconds",
        "Time of the gateway's last report to Enlighten",
        base,
        home.last_enlighten_report_s,
    )
    for interface in home.interfaces:
        labels = with_label(with_label(base, "interface", interface.name), "type", interface.kind)
        f.gauge(
            "enphase_gateway_network_interface_up",
            "1 if the network interface has a link",
            labels,
            interface.up,
        )
        f.gauge(
            "enphase_gateway_network_signal_ratio",
            "Signal strength of a wireless interface, share of its maximum",
            labels,
            interface.signal_ratio,
        )
