"""What the simulated gateway answers: a ``PlantView`` rendered in the shapes, key names and
quirks of a real IQ Gateway Metered on firmware 8.2 (three-phase, production and
net-consumption CTs, Encharge batteries with an Enpower, and an older AC Battery asleep).

Each renderer returns the JSON-able body of one endpoint. ``ROUTES`` maps a path, with its query
where the gateway answers differently to it, to its renderer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

from envoy_exporter.demo.simulator import BatteryView, Channel, InverterView, Meter, PlantView

SERIAL = "122439017264"
FIRMWARE = "D8.2.4345"
PART_NUMBER = "800-00654-r08"  # IQ Gateway Metered, three-phase
PHASE_NAMES = ("ph-a", "ph-b", "ph-c")

# Meter eids: the gateway numbers its CT slots 0x2A0001.. and their channels 0x6A0001(1+n).
# The consumption slot is the net-consumption CT here; the rest are listed but disabled.
METER_SLOTS = (
    ("production", 1),
    ("net-consumption", 2),
    ("storage", 3),
    ("backfeed", 5),
    ("load", 6),
    ("evse", 7),
    ("pv3p", 8),
)
ENABLED = ("production", "net-consumption")

RELAY_SERIAL = "122417031517"
# An AC Battery from before the Encharges, kept asleep in its 25-30 % band: it neither charges
# nor discharges, so it leaves the plant's power balance alone (firmware 8.2.4382 systems mix
# both kinds the same way).
ACB_SERIAL = "121917026513"
ACB_CAPACITY_WH = 1200.0
ACB_SOC = 0.25
ACB_EID = 721420544  # device_data keys AC batteries from 0x2B000000
ACB_CHANNEL_EID = 0x6B000111
ENPOWER_SERIAL = "122413008853"
INSTALLED = 1_717_579_800  # commissioning day, epoch seconds


def meter_eid(slot: int) -> int:
    return 0x2A000000 | (slot << 8)


def channel_eid(slot: int, phase: int) -> int:
    return 0x6A000000 | (slot << 8) | (0x11 + phase)


def _r3(value: float) -> float:
    return round(value, 3)


# --------------------------------------------------------------------------------------------
# /info


def info_xml(now: float) -> bytes:
    """``/info``: open on every firmware; tells the client to bring a token."""
    return f"""<?xml version='1.0' encoding='UTF-8'?>
<envoy_info>
  <time>{int(now)}</time>
  <device>
    <sn>{SERIAL}</sn>
    <pn>{PART_NUMBER}</pn>
    <software>{FIRMWARE}</software>
    <euaid>4c8675</euaid>
    <seqnum>0</seqnum>
    <apiver>1</apiver>
    <imeter>true</imeter>
  </device>
  <web-tokens>true</web-tokens>
  <package name='app'>
    <pn>500-00002-r01</pn>
    <version>08.02.4345</version>
    <build>5c0d4e</build>
  </package>
  <package name='meter'>
    <pn>500-00013-r01</pn>
    <version>03.02.08</version>
    <build>eaa252</build>
  </package>
</envoy_info>
""".encode()


# --------------------------------------------------------------------------------------------
# /production.json and /api/v1/production


def _eim_figures(
    channel: Channel, lifetime_wh: float, today_wh: float, seven_days_wh: float, signed: bool
) -> dict:
    # The net-consumption section signs current and apparent power with the power, as real ones do
    sign = math.copysign(1.0, channel.power_w) if signed else 1.0
    return {
        "wNow": _r3(channel.power_w),
        "whLifetime": _r3(lifetime_wh),
        "varhLeadLifetime": _r3(channel.leading_varh),
        "varhLagLifetime": _r3(channel.lagging_varh),
        "vahLifetime": _r3(channel.apparent_vah),
        "rmsCurrent": _r3(sign * channel.current_a),
        "rmsVoltage": _r3(channel.voltage_v),
        "reactPwr": _r3(channel.reactive_var),
        "apprntPwr": _r3(sign * channel.apparent_va),
        "pwrFactor": round(channel.power_factor, 2),
        "whToday": _r3(today_wh),
        "whLastSevenDays": _r3(seven_days_wh),
    }


def _eim_section(view: PlantView, measurement: str, details: bool) -> dict:
    """One CT section. Production and total consumption carry the gateway's day figures; net
    consumption reports zeros there, and its lifetime is import - export (it can fall)."""
    meter: Meter = {
        "production": view.production,
        "total-consumption": view.consumption,
        "net-consumption": view.net,
    }[measurement]
    net = measurement == "net-consumption"

    def lifetime(channel: Channel) -> float:
        return channel.delivered_wh - channel.received_wh if net else channel.delivered_wh

    days = meter.total_days
    section = {
        "type": "eim",
        "activeCount": 1,
        "measurementType": measurement,
        "readingTime": int(view.now),
        **_eim_figures(meter.total, lifetime(meter.total), days.today_wh, days.last_seven_days_wh, net),
    }
    # Firmware >= 7.6 gives the per-phase lines only to ?details=1
    if details:
        section["lines"] = [
            _eim_figures(
                ch,
                lifetime(ch),
                meter.days[i].today_wh if meter.days else 0.0,
                meter.days[i].last_seven_days_wh if meter.days else 0.0,
                net,
            )
            for i, ch in enumerate(meter.phases)
        ]
    return section


def production_json(view: PlantView, details: bool) -> dict:
    inverters = view.inverters
    return {
        "production": [
            {
                "type": "inverters",
                "activeCount": len(inverters),
                "readingTime": int(max(i.report_time for i in inverters)),
                "wNow": round(sum(i.report_w for i in inverters)),
                "whLifetime": round(sum(i.lifetime_j for i in inverters) / 3600),
            },
            _eim_section(view, "production", details),
        ],
        "consumption": [
            _eim_section(view, "total-consumption", details),
            _eim_section(view, "net-consumption", details),
        ],
        # The AC Battery alone: Encharge batteries are not counted here
        "storage": [
            {
                "type": "acb",
                "activeCount": 1,
                "readingTime": int(view.now) - 31,
                "wNow": 0,
                "whNow": round(ACB_SOC * ACB_CAPACITY_WH),
                "state": "idle",
                "percentFull": round(100 * ACB_SOC),
            }
        ],
    }


def api_v1_production(view: PlantView) -> dict:
    """On a metered gateway these are the production CT's figures, in whole units."""
    meter = view.production
    days = meter.total_days
    return {
        "wattHoursToday": round(days.today_wh),
        "wattHoursSevenDays": round(days.last_seven_days_wh),
        "wattHoursLifetime": round(meter.total.delivered_wh),
        "wattsNow": round(meter.total.power_w),
    }


# --------------------------------------------------------------------------------------------
# Microinverters


def api_v1_inverters(view: PlantView) -> list:
    return [
        {
            "serialNumber": inv.spec.serial,
            "lastReportDate": int(inv.report_time),
            "devType": 1,
            "lastReportWatts": round(inv.report_w),
            "maxReportWatts": round(inv.spec.peak_w),
        }
        for inv in view.inverters
    ]


def _pcu_channel_eid(inv: InverterView) -> int:
    # Device eid 0x2100nn00 has its one channel at 0x6100nn11
    return 0x61000000 | (inv.spec.eid & 0xFFFF00) | 0x11


def _pcu_data(view: PlantView, inv: InverterView, interval_s: int) -> dict:
    chan = _pcu_channel_eid(inv)
    joules = round(inv.report_w * interval_s)
    return {
        "devName": "pcu",
        "sn": inv.spec.serial,
        "active": True,
        "modGone": False,
        "channels": [
            {
                "chanEid": chan,
                "created": int(inv.report_time),
                "wattHours": {
                    "today": round(inv.days.today_wh),
                    "yesterday": round(inv.days.yesterday_wh),
                    "week": round(inv.days.last_seven_days_wh),
                },
                "watts": {"now": round(inv.report_w), "nowUsed": 0, "max": round(inv.spec.peak_w)},
                "lastReading": {
                    "eid": chan,
                    "interval_type": 0,
                    "endDate": int(inv.report_time),
                    "duration": interval_s,
                    "flags": 0,
                    "flags_hex": "0x0000000000000000",
                    "joulesProduced": joules,
                    "acVoltageINmV": round(inv.ac_voltage_v * 1000),
                    "acFrequencyINmHz": round(inv.frequency_hz * 1000),
                    "dcVoltageINmV": round(inv.dc_voltage_v * 1000),
                    "dcCurrentINmA": round(inv.dc_current_a * 1000),
                    "channelTemp": round(inv.temperature_c),
                    "pwrConvErrSecs": 0,
                    "pwrConvMaxErrCycles": 0,
                    "joulesUsed": 0,
                    "leadingVArs": round(0.02 * inv.report_w),
                    "laggingVArs": 0,
                    "acCurrentInmA": round(inv.ac_current_a * 1000),
                    "l1NAcVoltageInmV": 0,
                    "l2NAcVoltageInmV": 0,
                    "l3NAcVoltageInmV": 0,
                    "rssi": 96,
                    "issi": 64,
                },
                "lifetime": {
                    "createdTime": inv.spec.installed,
                    "duration": int(view.now) - inv.spec.installed,
                    "joulesProduced": round(inv.lifetime_j),
                },
            }
        ],
    }


def _eim_data(view: PlantView, meter: Meter, grid: Meter, index: int) -> dict:
    """The CT meters as ``/ivp/pdm/device_data`` lists them beside the PCUs (flagged modGone,
    as real gateways do). The second one reports what the consumption side computes, with the
    grid's import and export as its positive and negative energy."""
    slot = index + 1
    now = int(view.now)
    channels = []
    for ph, ch in enumerate(meter.phases):
        period = meter.days[ph]
        counters = {
            "wh_dlvd_cum": round(ch.delivered_wh),
            "varh_lead_cum": round(ch.leading_varh),
            "varh_lag_cum": round(ch.lagging_varh),
            "vah_cum": round(ch.apparent_vah),
        }
        signed = grid.phases[ph] if index else ch
        channels.append(
            {
                "chanEid": channel_eid(slot, ph),
                "created": now,
                "wattHours": {
                    "today": round(period.today_wh),
                    "yesterday": round(period.yesterday_wh),
                    "week": round(period.last_seven_days_wh),
                },
                "watts": {"now": round(ch.power_w), "nowUsed": 0, "max": round(period.peak_w)},
                "lastReading": {
                    "eid": channel_eid(slot, ph),
                    "interval_type": 0,
                    "endDate": now,
                    "duration": 900,
                    "curr_w": round(ch.power_w),
                    **counters,
                    "rms_mvolt": round(ch.voltage_v * 1000),
                    "rms_mamp": round(ch.current_a * 1000),
                    "freq_mhz": round(ch.frequency_hz * 1000),
                    "wh_pos": round(signed.delivered_wh),
                    "wh_neg": round(signed.received_wh),
                },
                "lifetime": {"createdTime": INSTALLED, "duration": now - INSTALLED, **counters},
            }
        )
    return {
        "devName": "eim",
        "sn": f"{SERIAL}EIM{slot}",
        "active": True,
        "modGone": True,
        "channels": channels,
    }


def device_data(view: PlantView) -> dict:
    """``/ivp/pdm/device_data``: per-PCU electrical detail, keyed by device eid."""
    duration = max(1, round(view.report_interval_s))
    body: dict = {str(inv.spec.eid): _pcu_data(view, inv, duration) for inv in view.inverters}
    body[str(meter_eid(1))] = _eim_data(view, view.production, view.net, 0)
    body[str(meter_eid(2))] = _eim_data(view, view.consumption, view.net, 1)
    body[str(ACB_EID)] = _acb_data(view, duration)
    body["deviceCount"] = len(view.inverters) + 3
    body["deviceDataLimit"] = 50
    return body


def _acb_data(view: PlantView, duration: int) -> dict:
    """The AC Battery as firmware 8 lists it: idle like the storage section says (no energy
    either way in its last report), its ``watts.now`` the unsigned few watts real ones show."""
    end = int(view.now) - 31
    return {
        "devName": "acb",
        "sn": ACB_SERIAL,
        "active": True,
        "modGone": False,
        "channels": [
            {
                "chanEid": ACB_CHANNEL_EID,
                "created": end,
                "wattHours": {"today": 0, "yesterday": 0, "week": 0},
                "watts": {"now": 3, "nowUsed": 0, "max": 270},
                "lastReading": {
                    "eid": ACB_CHANNEL_EID,
                    "interval_type": 0,
                    "endDate": end,
                    "duration": duration,
                    "joulesProduced": 0,
                    "joulesUsed": 0,
                    "SOC": round(100 * ACB_SOC),
                    "SOH": 96,
                    "minCellTemp": 20,
                    "maxCellTemp": 21,
                },
                "lifetime": {"createdTime": INSTALLED, "duration": end - INSTALLED},
            }
        ],
    }


# --------------------------------------------------------------------------------------------
# CT meters


def meters() -> list:
    return [
        {
            "eid": meter_eid(slot),
            "state": "enabled" if kind in ENABLED else "disabled",
            "measurementType": kind,
            "phaseMode": "three",
            "phaseCount": 3,
            "meteringStatus": "normal",
            "statusFlags": [],
        }
        for kind, slot in METER_SLOTS
    ]


def _reading(eid: int, timestamp: int, channel: Channel | None) -> dict:
    """One meter or channel of ``/ivp/meters/readings``; a disabled meter reads all zeros."""
    ch = channel or Channel(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return {
        "eid": eid,
        "timestamp": timestamp if channel else 0,
        "actEnergyDlvd": _r3(ch.delivered_wh),
        "actEnergyRcvd": _r3(ch.received_wh),
        "apparentEnergy": _r3(ch.apparent_vah),
        "reactEnergyLagg": _r3(ch.lagging_varh),
        "reactEnergyLead": _r3(ch.leading_varh),
        "instantaneousDemand": _r3(ch.power_w),
        "activePower": _r3(ch.power_w),
        "apparentPower": _r3(ch.apparent_va),
        "reactivePower": _r3(ch.reactive_var),
        "pwrFactor": _r3(ch.power_factor),
        "voltage": _r3(ch.voltage_v),
        "current": _r3(ch.current_a),
        "freq": _r3(ch.frequency_hz),
    }


def meter_readings(view: PlantView) -> list:
    by_kind = {"production": view.production, "net-consumption": view.net}
    now = int(view.now)
    readings = []
    for kind, slot in METER_SLOTS:
        meter = by_kind.get(kind)
        entry = _reading(meter_eid(slot), now, meter.total if meter else None)
        entry["channels"] = [
            _reading(channel_eid(slot, ph), now, meter.phases[ph] if meter else None) for ph in range(3)
        ]
        readings.append(entry)
    return readings


# --------------------------------------------------------------------------------------------
# Inventory: device flags, the Q-Relay


def _device_common(
    serial: str, part: str, installed: int, last_report: float, dev_type: int, eid: int
) -> dict:
    # /inventory.json quotes its dates as strings
    return {
        "part_num": part,
        "installed": str(installed),
        "serial_num": serial,
        "device_status": ["envoy.global.ok"],
        "last_rpt_date": str(int(last_report)),
        "admin_state": 1,
        "dev_type": dev_type,
        "created_date": str(installed),
        "img_load_date": str(installed + 86_400),
        "chaneid": eid,
        "device_control": [{"gficlearset": False}],
    }


def _pcu_inventory(inv: InverterView) -> dict:
    device = _device_common(
        inv.spec.serial, "800-01391-r03", inv.spec.installed, inv.report_time, 1, _pcu_channel_eid(inv)
    )
    # At night a microinverter has no DC power: it neither produces nor talks
    if not inv.producing:
        device["device_status"] = ["envoy.cond_flags.pcu_ctrl.dc-pwr-low"]
    return {
        **device,
        "img_pnum_running": "520-00082-r01-v04.40.09",
        "ptpn": "540-00169-r01-v04.40.09",
        "producing": inv.producing,
        "communicating": inv.producing,
        "provisioned": True,
        "operating": inv.producing,
        "phase": PHASE_NAMES[inv.spec.phase],
    }


def _acb_inventory(view: PlantView) -> dict:
    device = _device_common(ACB_SERIAL, "800-00930-r03", INSTALLED, view.now - 31, 11, ACB_CHANNEL_EID)
    return {
        **device,
        "img_pnum_running": "520-00092-r01-v02.13.02",
        "ptpn": "540-00155-r01-v02.13.01",
        "producing": False,
        "communicating": True,
        "provisioned": True,
        "operating": True,
        "sleep_enabled": True,
        "percentFull": round(100 * ACB_SOC),
        "maxCellTemp": 21,
        "sleep_min_soc": 25,
        "sleep_max_soc": 30,
        "charge_status": "idle",
    }


def inventory(view: PlantView) -> list:
    relay = _device_common(RELAY_SERIAL, "800-00598-r04", INSTALLED, view.now - 42, 12, 0x6C000111)
    return [
        {"type": "PCU", "devices": [_pcu_inventory(inv) for inv in view.inverters]},
        {"type": "ACB", "devices": [_acb_inventory(view)]},
        {
            "type": "NSRB",
            "devices": [
                {
                    **relay,
                    "img_pnum_running": "520-00086-r01-v02.12.07",
                    "ptpn": "540-00175-r01-v02.12.04",
                    "producing": True,
                    "communicating": True,
                    "provisioned": True,
                    "operating": True,
                    "relay": "closed",
                    "reason_code": 1,
                    "reason": "ok",
                    "line-count": 3,
                    "line1-connected": True,
                    "line2-connected": True,
                    "line3-connected": True,
                }
            ],
        },
        {"type": "ESUB", "devices": []},
    ]


# --------------------------------------------------------------------------------------------
# Ensemble: batteries and the Enpower


def _encharge(view: PlantView, battery: BatteryView) -> dict:
    spec = battery.spec
    return {
        "part_num": "830-01760-r37",
        "serial_num": spec.serial,
        "installed": spec.installed,
        "device_status": ["envoy.global.ok", "prop.done"],
        "last_rpt_date": int(view.now) - 17,
        "admin_state": 6,
        "admin_state_str": "ENCHG_STATE_READY",
        "created_date": spec.installed,
        "img_load_date": spec.installed,
        "img_pnum_running": "2.6.6618_rel/22.13",
        "bmu_fw_version": "2.1.34",
        "operating": True,
        "communicating": True,
        "sleep_enabled": False,
        "percentFull": round(100 * battery.soc),
        "temperature": round(battery.temperature_c),
        "maxCellTemp": round(battery.temperature_c + 1),
        "reported_enc_grid_state": "grid-tied",
        "comm_level_sub_ghz": 4,
        "comm_level_2_4_ghz": 4,
        "led_status": 12 if battery.power_w < 0 else 14,
        "dc_switch_off": False,
        "encharge_rev": 2,
        "encharge_capacity": round(spec.capacity_wh),
        "phase": "ph-all",
        "der_index": 1,
    }


def ensemble_inventory(view: PlantView) -> list:
    now = int(view.now)
    return [
        {"type": "ENCHARGE", "devices": [_encharge(view, b) for b in view.batteries]},
        {
            "type": "ENPOWER",
            "devices": [
                {
                    "part_num": "860-00276-r38",
                    "serial_num": ENPOWER_SERIAL,
                    "installed": INSTALLED,
                    "device_status": ["envoy.global.ok", "prop.done"],
                    "last_rpt_date": now - 9,
                    "admin_state": 24,
                    "admin_state_str": "ENPWR_STATE_OPER_CLOSED",
                    "created_date": INSTALLED,
                    "img_load_date": INSTALLED,
                    "img_pnum_running": "1.5.6313_rel/22.13",
                    "operating": True,
                    "communicating": True,
                    # The Enpower reports Fahrenheit while the batteries report Celsius
                    "temperature": round(view.enpower_temperature_c * 9 / 5 + 32),
                    "comm_level_sub_ghz": 5,
                    "comm_level_2_4_ghz": 5,
                    "mains_admin_state": "closed",
                    "mains_oper_state": "closed",
                    "Enpwr_grid_mode": "multimode-ongrid",
                    "Enchg_grid_mode": "multimode-ongrid",
                    "Enpwr_relay_state_bm": 464,
                    "Enpwr_curr_state_id": 16,
                }
            ],
        },
    ]


def secctrl(view: PlantView) -> dict:
    capacity = sum(b.spec.capacity_wh for b in view.batteries)
    stored = sum(b.soc * b.spec.capacity_wh for b in view.batteries)
    soc = round(100 * stored / capacity)
    # agg_soc and Max_energy count the AC Battery in, the ENC_ figures do not
    acb_wh = ACB_SOC * ACB_CAPACITY_WH
    all_soc = round(100 * (stored + acb_wh) / (capacity + ACB_CAPACITY_WH))
    reserve = round(100 * view.reserve_soc)
    return {
        "shutdown": False,
        "freq_bias_hz": 0.0,
        "voltage_bias_v": 0.0,
        "freq_bias_hz_q8": 0,
        "voltage_bias_v_q5": 0,
        "freq_bias_hz_phaseb": 0.0,
        "voltage_bias_v_phaseb": 0.0,
        "freq_bias_hz_q8_phaseb": 0,
        "voltage_bias_v_q5_phaseb": 0,
        "freq_bias_hz_phasec": 0.0,
        "voltage_bias_v_phasec": 0.0,
        "freq_bias_hz_q8_phasec": 0,
        "voltage_bias_v_q5_phasec": 0,
        "configured_backup_soc": reserve,
        "adjusted_backup_soc": reserve,
        "agg_soc": all_soc,
        "Max_energy": round(capacity + ACB_CAPACITY_WH),
        "ENC_agg_soc": soc,
        "ENC_agg_soh": 100,
        "ENC_agg_backup_energy": round(view.reserve_soc * capacity),
        "ENC_agg_avail_energy": round(stored),
        "Enc_commissioned_capacity": round(capacity),
        "Enc_max_available_capacity": round(capacity),
        "ACB_agg_soc": round(100 * ACB_SOC),
        "ACB_agg_energy": round(acb_wh),
    }


def ensemble_power(view: PlantView) -> dict:
    # The key really is "devices:", colon included
    return {
        "devices:": [
            {
                "serial_num": b.spec.serial,
                "real_power_mw": round(1000 * b.power_w),
                "apparent_power_mva": round(1000 * b.power_w),
                "soc": round(100 * b.soc),
            }
            for b in view.batteries
        ]
    }


# --------------------------------------------------------------------------------------------
# Settings, the Enpower's relays, the gateway's own status page


# The demo's time-of-use tariff, in euros per kWh: the evening peak the batteries cover
# (``simulator.PEAK_START`` .. ``PEAK_END``), a cheaper night, a weekend rate; export is paid
# more in the evening. Periods start in minutes after local midnight.
DEMO_CURRENCY = "EUR"
FLAT_RATE, FLAT_SELL = 0.28, 0.07
WEEKDAY_PERIODS = (
    ("night", 0, 0.21),
    ("day", 7 * 60, 0.29),
    ("peak", 17 * 60, 0.41),
    ("night", 23 * 60, 0.21),
)
WEEKEND_PERIODS = (("night", 0, 0.21), ("weekend", 8 * 60, 0.25), ("night", 23 * 60, 0.21))
SELL_PERIODS = (("day", 0, 0.07), ("evening", 17 * 60, 0.11), ("day", 21 * 60, 0.07))


def _day_type(name: str, days: str, periods: tuple[tuple[str, int, float], ...]) -> dict:
    return {
        "id": name,
        "days": days,
        "must_charge_start": 0,
        "must_charge_duration": 0,
        "must_charge_mode": "CP",
        "enable_discharge_to_grid": False,
        "periods": [{"id": period, "start": start, "rate": rate} for period, start, rate in periods],
    }


def tariff(view: PlantView) -> dict:
    """The battery profile and the prices: the demo's batteries cover the evening peak of a
    time-of-use tariff, Enphase's "savings" profile, which the API calls ``economy``."""
    return {
        "tariff": {
            "currency": {"code": DEMO_CURRENCY},
            "logger": "mylogger",
            "date": str(INSTALLED),
            "storage_settings": {
                "mode": "economy",
                "operation_mode_sub_type": "",
                "reserved_soc": round(100 * view.reserve_soc, 1),
                "very_low_soc": 5,
                "charge_from_grid": False,
                "date": str(INSTALLED),
                "opt_schedules": True,
            },
            "single_rate": {"rate": FLAT_RATE, "sell": FLAT_SELL},
            "seasons": [
                {
                    "id": "all_year",
                    "start": "1/1",
                    "days": [
                        _day_type("weekdays", "Mon,Tue,Wed,Thu,Fri", WEEKDAY_PERIODS),
                        _day_type("weekend", "Sat,Sun", WEEKEND_PERIODS),
                    ],
                    "tiers": [],
                }
            ],
            "seasons_sell": [
                {
                    "id": "all_year",
                    "start": "1/1",
                    "days": [_day_type("all_days", "Mon,Tue,Wed,Thu,Fri,Sat,Sun", SELL_PERIODS)],
                }
            ],
        },
        "schedule": {"source": "Tariff", "date": "2024-06-05 09:30:00 UTC", "version": "00.00.02"},
    }


def dry_contacts(view: PlantView) -> dict:
    """NC1/NC2 keep essential loads on; NO1 switches the heat-pump boost off (load shedding)
    while the batteries carry the house."""
    discharging = any(b.power_w > 0 for b in view.batteries)
    states = {"NC1": "closed", "NC2": "closed", "NO1": "closed" if discharging else "open", "NO2": "open"}
    return {"dry_contacts": [{"id": contact, "status": status} for contact, status in states.items()]}


def dry_contact_settings(_view: PlantView) -> dict:
    """NC1/NC2 keep essential loads on (by hand); NO1 sheds the heat-pump boost below 30 % state
    of charge and restores it above 60 %."""

    def contact(name: str, kind: str, mode: str, low: float, high: float, load: str) -> dict:
        return {
            "id": name,
            "type": kind,
            "grid_action": "apply" if kind != "NONE" else "none",
            "micro_grid_action": "shed" if kind != "NONE" else "none",
            "gen_action": "shed" if kind != "NONE" else "none",
            "safe_state_action": "shed",
            "mode": mode,
            "soc_low": low,
            "soc_high": high,
            "load_name": load,
            "manual_override": "false",
        }

    return {
        "dry_contacts": [
            contact("NC1", "LOAD", "manual", 30.0, 70.0, "Fridge"),
            contact("NC2", "LOAD", "manual", 30.0, 70.0, "Router"),
            contact("NO1", "LOAD", "soc", 30.0, 60.0, "Heat pump boost"),
            contact("NO2", "NONE", "manual", 30.0, 70.0, ""),
        ]
    }


def generator(_view: PlantView) -> dict:
    """A standby generator is wired in; on a grid-tied day it never runs."""
    return {
        "admin_state": "auto",
        "oper_state": "open",
        "admin_mode": 1,
        "schedule": 0,
        "start_soc": 15,
        "stop_soc": 60,
        "exc_on": 0,
        "present": 1,
        "type": 1,
    }


ENLIGHTEN_REPORT_S = 900  # the gateway reports to Enlighten every 15 minutes


def home(view: PlantView) -> dict:
    now = int(view.now)
    return {
        "software_build_epoch": INSTALLED - 86_400 * 30,
        "timezone": "Europe/Amsterdam",
        "network": {
            "web_comm": True,
            "ever_reported_to_enlighten": True,
            "last_enlighten_report_time": now - now % ENLIGHTEN_REPORT_S,
            "primary_interface": "eth0",
            "interfaces": [
                {"type": "ethernet", "interface": "eth0", "dhcp": True, "signal_strength": 1}
                | {"signal_strength_max": 1, "carrier": True},
                # Wi-Fi configured as a fallback; its signal wavers between 3 and 4 bars
                {"type": "wifi", "interface": "wlan0", "dhcp": True, "carrier": True}
                | {"signal_strength": 3 + (now // 60) % 2, "signal_strength_max": 5, "status": "connected"},
            ],
        },
        "tariff": "single_rate",
    }


Renderer = Callable[[PlantView], object]

# Path (with its query where that changes the answer) -> renderer of the JSON body
ROUTES: dict[str, Renderer] = {
    "/production.json": partial(production_json, details=False),
    "/production.json?details=1": partial(production_json, details=True),
    "/api/v1/production": api_v1_production,
    "/api/v1/production/inverters": api_v1_inverters,
    "/ivp/pdm/device_data": device_data,
    "/ivp/meters": lambda _view: meters(),
    "/ivp/meters/readings": meter_readings,
    "/inventory.json": inventory,
    "/ivp/ensemble/inventory": ensemble_inventory,
    "/ivp/ensemble/secctrl": secctrl,
    "/ivp/ensemble/power": ensemble_power,
    "/admin/lib/tariff": tariff,
    "/ivp/ensemble/dry_contacts": dry_contacts,
    "/ivp/ss/dry_contact_settings": dry_contact_settings,
    "/ivp/ensemble/generator": generator,
    "/home.json": home,
}
