"""Every real gateway capture of ``../shared``, replayed by its fake gateway, collected by a
``GatewayClient`` with caching off, and compared with ``expected.json`` (the values pyenphase's
tests assert for the capture).

The comparison is ``../shared/conformance/check.py``'s ``check_gateway``, applied to the snapshot
instead of to the exposition; the tolerances are the same (1 W, 1 Wh, ...). Mapping, expected key
-> snapshot:

* identity (every capture): ``info.serial`` == the capture's serial. Captures without
  ``production``, ``consumption_total`` or ``asserted_consumption_total`` are compared on identity
  only.
* ``enphase_up``: ``snapshot.up``.
* ``production`` -> ``production.total``: watts_now -> power_w, watt_hours_lifetime -> lifetime_j,
  watt_hours_today -> today_j, watt_hours_last_7_days -> last_seven_days_j;
  ``production_phases`` -> ``production.phases[L1..]`` (power, lifetime).
* ``consumption_total`` (or ``asserted_consumption_total``) -> ``consumption_total`` (power,
  lifetime, and ``consumption_total_phases`` per phase); ``consumption_net`` -> ``consumption_net``
  (power, lifetime); ``consumption_net_phases`` -> its phases (power).
* inverters: the count (``asserted_inverter_count_by_v2_acb_mode["False"]``, else ``count``, else
  ``count_asserted_in_dict``) -> number of distinct ``inverters`` serials; each sample's fields ->
  the ``InverterReading`` of that serial.
* ``ctmeters`` (enabled ones) -> the ``Meter`` whose config has that measurementType: active_power,
  energy_delivered, energy_received of ``total``; ``ctmeters_phases`` -> ``phases`` (also voltage,
  current, frequency, power factor).
* ``storage_and_ensemble``: ``battery_aggregate`` or ``encharge_aggregate`` (when it has a
  capacity) -> ``storage``; ``encharge_power`` -> ``batteries`` soc and power;
  ``encharge_inventory`` -> battery capacity; ``enpower.mains_oper_state`` -> ``enpower.grid_connected``.

Two expectations need care, both handled in the client rather than bent here: the production
today / last-seven-days of the CT-less metered captures (7.3.466, 7.6.175_total, 8.2.4264) are the
gateway's own figures from its inactive eim section, exported as reported (the contract's rule for
today / seven days, wrong as they often are); and captures with a ``production.json_details_1``
file hold other values there than in ``production.json``, which is what the client asks on their
single-phase CT systems (``?details=1`` would add nothing but the one line).
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from conftest import SHARED, SHARED_FIXTURES, needs_shared

from envoy_exporter.config.settings import DEFAULT_CACHE_TTL, GatewaySettings, Secret
from envoy_exporter.gateway.client import GatewayClient
from envoy_exporter.snapshot.model import WH, Flow, Snapshot

pytestmark = [pytest.mark.e2e, needs_shared]

INVERTER_FIELDS = {
    "last_report_watts": ("power_w", 1, 1.0),
    "max_report_watts": ("max_power_w", 1, 1.0),
    "last_report_date": ("last_report_s", 1, 1.0),
    "dc_voltage": ("dc_voltage_v", 1, 0.01),
    "dc_current": ("dc_current_a", 1, 0.01),
    "ac_voltage": ("ac_voltage_v", 1, 0.01),
    "ac_current": ("ac_current_a", 1, 0.01),
    "ac_frequency": ("ac_frequency_hz", 1, 0.01),
    "temperature": ("temperature_c", 1, 0.5),
    "lifetime_energy": ("lifetime_j", WH, WH),
    "energy_today": ("today_j", WH, WH),
}
METER_FIELDS = {
    "active_power": ("power_w", 1, 1.0),
    "energy_delivered": ("delivered_j", WH, WH),
    "energy_received": ("received_j", WH, WH),
    "voltage": ("voltage_v", 1, 0.05),
    "current": ("current_a", 1, 0.05),
    "frequency": ("frequency_hz", 1, 0.05),
    "power_factor": ("power_factor", 1, 0.01),
}


def _captures() -> list[str]:
    if not SHARED_FIXTURES.is_dir():
        return []
    return sorted(p.name for p in SHARED_FIXTURES.iterdir() if (p / "info").is_file())


def _expected() -> dict:
    return json.loads((SHARED_FIXTURES / "expected.json").read_text())


@dataclass
class Checks:
    failed: dict[str, str] = field(default_factory=dict)
    passed: list[str] = field(default_factory=list)

    def expect(self, what: str, got: float | None, want: float, tol: float) -> None:
        if got is not None and abs(got - want) <= max(tol, 1e-6 * abs(want)):
            self.passed.append(what)
        else:
            self.failed[what] = f"expected {want}, got {'absent' if got is None else got}"


def _flow(c: Checks, what: str, flow: Flow | None, block: dict | None, phases: dict | None) -> None:
    if block:
        c.expect(f"{what} now", flow and flow.total.power_w, block["watts_now"], 1.0)
        c.expect(f"{what} lifetime", flow and flow.total.lifetime_j, block["watt_hours_lifetime"] * WH, WH)
    for ph, vals in (phases or {}).items():
        reading = flow.phases.get(ph) if flow else None
        c.expect(f"{what} {ph} now", reading and reading.power_w, vals["watts_now"], 1.0)
        c.expect(
            f"{what} {ph} lifetime", reading and reading.lifetime_j, vals["watt_hours_lifetime"] * WH, WH
        )


def check_snapshot(exp: dict, serial: str, snap: Snapshot) -> Checks:
    c = Checks()
    c.expect("identity", 1.0 if snap.info and snap.info.serial == serial else None, 1.0, 0)
    if not any(k in exp for k in ("production", "consumption_total", "asserted_consumption_total")):
        return c
    c.expect("up", 1.0 if snap.up else 0.0, 1.0, 0)
    prod = exp.get("production")
    _flow(c, "production", snap.production, prod, exp.get("production_phases"))
    if prod:
        total = snap.production.total if snap.production else None
        c.expect("production today", total and total.today_j, prod["watt_hours_today"] * WH, WH)
        c.expect(
            "production 7 days", total and total.last_seven_days_j, prod["watt_hours_last_7_days"] * WH, WH
        )
    total_block = exp.get("consumption_total") or exp.get("asserted_consumption_total")
    _flow(c, "total", snap.consumption_total, total_block, exp.get("consumption_total_phases"))
    net, net_flow = exp.get("consumption_net"), snap.consumption_net
    if net:
        c.expect("net now", net_flow and net_flow.total.power_w, net["watts_now"], 1.0)
        c.expect("net lifetime", net_flow and net_flow.total.lifetime_j, net["watt_hours_lifetime"] * WH, WH)
    for ph, vals in (exp.get("consumption_net_phases") or {}).items():
        reading = net_flow.phases.get(ph) if net_flow else None
        c.expect(f"net {ph} now", reading and reading.power_w, vals["watts_now"], 1.0)
    _inverters(c, exp, snap)
    _meters(c, exp, snap)
    _storage(c, exp, snap)
    return c


def _inverters(c: Checks, exp: dict, snap: Snapshot) -> None:
    inv = exp.get("inverters") or {}
    count = (exp.get("asserted_inverter_count_by_v2_acb_mode") or {}).get("False")
    if count is None:
        count = inv.get("count") or inv.get("count_asserted_in_dict")
    if count is not None:
        c.expect("inverter count", len({i.serial for i in snap.inverters}), count, 0)
    by_serial = {i.serial: i for i in snap.inverters}
    for serial, vals in (inv.get("samples") or {}).items():
        for key, (attr, scale, tol) in INVERTER_FIELDS.items():
            if vals.get(key) is not None:
                got = getattr(by_serial[serial], attr) if serial in by_serial else None
                c.expect(f"inverter {serial} {key}", got, vals[key] * scale, tol)


def _meters(c: Checks, exp: dict, snap: Snapshot) -> None:
    by_type = {m.config.measurement_type: m for m in snap.meters}
    phased = exp.get("ctmeters_phases") or {}
    for kind, vals in (exp.get("ctmeters") or {}).items():
        if vals.get("state") not in (None, "enabled"):
            continue
        meter = by_type.get(kind)
        for key in ("active_power", "energy_delivered", "energy_received"):
            attr, scale, tol = METER_FIELDS[key]
            if vals.get(key) is not None:
                got = getattr(meter.total, attr) if meter and meter.total else None
                c.expect(f"meter {kind} {key}", got, vals[key] * scale, tol)
        for ph, pv in (phased.get(kind) or {}).items():
            channel = meter.phases.get(ph) if meter else None
            for key, (attr, scale, tol) in METER_FIELDS.items():
                if pv.get(key) is not None:
                    c.expect(
                        f"meter {kind} {ph} {key}", channel and getattr(channel, attr), pv[key] * scale, tol
                    )


def _storage(c: Checks, exp: dict, snap: Snapshot) -> None:
    st = exp.get("storage_and_ensemble") or {}
    agg, storage = st.get("battery_aggregate") or st.get("encharge_aggregate"), snap.storage
    if agg and agg.get("max_available_capacity"):
        c.expect("storage soc", storage and storage.soc_ratio, agg["state_of_charge"] / 100, 0.011)
        c.expect("storage available", storage and storage.available_j, agg["available_energy"] * WH, WH)
        c.expect("storage capacity", storage and storage.capacity_j, agg["max_available_capacity"] * WH, WH)
    batteries = {b.serial: b for b in snap.batteries}
    for serial, p in (st.get("encharge_power") or {}).items():
        battery = batteries.get(serial)
        c.expect(f"battery {serial} soc", battery and battery.soc_ratio, p["soc"] / 100, 0.011)
        c.expect(f"battery {serial} power", battery and battery.power_w, p["real_power_mw"] / 1000, 1.0)
    for serial, b in (st.get("encharge_inventory") or {}).items():
        if b.get("encharge_capacity"):
            battery = batteries.get(serial)
            c.expect(
                f"battery {serial} capacity", battery and battery.capacity_j, b["encharge_capacity"] * WH, WH
            )
    enp = st.get("enpower")
    if enp and enp.get("mains_oper_state"):
        got = snap.enpower.grid_connected if snap.enpower else None
        c.expect(
            "grid connected",
            None if got is None else float(got),
            1.0 if enp["mains_oper_state"] == "closed" else 0.0,
            0,
        )


@pytest.fixture(scope="module")
def collected() -> dict[str, tuple[str, Snapshot]]:
    """(serial, snapshot) per capture: every fake gateway started at once and collected in
    parallel, the way one exporter collects many gateways (each request to the fake gateway
    costs some 40 ms of delayed ACK; one after the other, the module would take minutes)."""
    sys.path.insert(0, str(SHARED / "conformance"))
    try:
        import fake_gateway  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(SHARED / "conformance"))
    # One self-signed certificate for all of them: generating an RSA key per gateway is slow.
    context = fake_gateway.self_signed_context()
    original, fake_gateway.self_signed_context = fake_gateway.self_signed_context, lambda: context
    gateways = {}
    try:
        for capture in _captures():
            gateways[capture] = gw = fake_gateway.Gateway(SHARED_FIXTURES / capture)
            gw.start(tls=gw.token_era)
        with ThreadPoolExecutor(max_workers=len(gateways) or 1) as pool:
            snapshots = dict(zip(gateways, pool.map(_collect, gateways.items()), strict=True))
    finally:
        fake_gateway.self_signed_context = original
        # Each stop waits up to half a second for its server loop to notice: stop them together.
        with ThreadPoolExecutor(max_workers=len(gateways) or 1) as pool:
            list(pool.map(lambda gw: gw.stop(), gateways.values()))
    return {capture: (gw.serial, snapshots[capture]) for capture, gw in gateways.items()}


def _collect(item) -> Snapshot:
    capture, gw = item
    settings = GatewaySettings(
        name=capture,
        host=gw.url,
        token=Secret(gw.token) if gw.token_era else None,
        cache_ttl={family: 0.0 for family in DEFAULT_CACHE_TTL},
    )
    client = GatewayClient(settings, None)
    try:
        return client.collect(timeout=60)
    finally:
        client.close()


@pytest.mark.parametrize("capture", _captures())
def test_capture(capture: str, collected: dict[str, tuple[str, Snapshot]]) -> None:
    serial, snap = collected[capture]
    checks = check_snapshot(_expected().get(capture, {}), serial, snap)
    assert not checks.failed, f"{capture}: {checks.failed}"
    assert checks.passed


def test_ac_batteries_per_unit_on_firmware_8(collected: dict[str, tuple[str, Snapshot]]) -> None:
    # 8.3.5169 is not asked /api/v1/production/inverters (device_data lists every PCU); its AC
    # batteries' power per unit comes from device_data and adds up to the storage section's.
    _, snap = collected["8.3.5169_ACB_inventory"]
    acbs = {b.serial: b for b in snap.batteries if b.battery_type == "acb"}
    assert {s: round(b.power_w, 2) for s, b in acbs.items()} == {"121917000000": -1.01, "122047000000": -1.01}
    assert {s: b.state for s, b in acbs.items()} == {"121917000000": "idle", "122047000000": "idle"}
    (group,) = [g for g in snap.storage_groups if g.battery_type == "acb"]
    assert sum(b.power_w for b in acbs.values()) == pytest.approx(group.power_w, abs=0.5)
