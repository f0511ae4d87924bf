"""``gateway.assemble``: source choice, consumption, phases, meters, inverters and storage,
on hand-built model objects (serials and values are made up, shaped after real captures)."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from envoy_exporter.gateway.endpoints import BY_KEY, ENSEMBLE_INVENTORY, PRODUCTION_JSON
from envoy_exporter.snapshot.assemble import Assembler
from envoy_exporter.snapshot.model import (
    WH,
    AcbReading,
    AcbStorage,
    Battery,
    Device,
    DeviceData,
    DryContact,
    EimSection,
    EndpointResult,
    Enpower,
    Ensemble,
    GatewayInfo,
    Generator,
    HomeStatus,
    Inventory,
    InverterReading,
    InvertersSection,
    MeterChannel,
    MeterConfig,
    MeterReading,
    ProductionJson,
    Reading,
    Readings,
    Relay,
    StorageAggregate,
    StorageGroup,
    StorageSettings,
    TariffAnswer,
    V1Inverters,
)
from envoy_exporter.snapshot.outcome import Outcome
from envoy_exporter.snapshot.plan import Plan

METERED = GatewayInfo(serial="900000000101", firmware="D7.6.175", metered=True)
STANDARD = GatewayInfo(serial="900000000102", firmware="D7.6.175", metered=False)
NOCT_8_2 = GatewayInfo(serial="900000000103", firmware="D8.2.4264", metered=True)
LEGACY = GatewayInfo(serial="900000000104", firmware="R3.9.36")
ZERO_LINE = Reading(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def eim(kind: str | None, power: float, lifetime_wh: float, active: int = 1, lines=(), today_wh=10.0):
    return EimSection(
        measurement_type=kind,
        active_count=active,
        reading_time=1_700_000_000.0,
        total=Reading(power_w=power, lifetime_j=lifetime_wh * WH, today_j=today_wh * WH, voltage_v=240.0),
        lines=tuple(lines),
    )


def line(power: float, lifetime_wh: float, today_wh: float = 5.0) -> Reading:
    return Reading(power_w=power, lifetime_j=lifetime_wh * WH, today_j=today_wh * WH, voltage_v=120.0)


def section(power: float = 900.0, lifetime_wh: float = 174_000.0, active: int = 12) -> InvertersSection:
    return InvertersSection(
        active_count=active, reading_time=None, power_w=power, lifetime_j=lifetime_wh * WH
    )


def v1(power: float = 905.0, lifetime_wh: float = 6_100_000.0, today_wh: float = 3000.0) -> Reading:
    return Reading(power_w=power, lifetime_j=lifetime_wh * WH, today_j=today_wh * WH, last_seven_days_j=1.0)


def metered_json(production_active: int = 1, **kw) -> ProductionJson:
    return ProductionJson(
        inverters=section(),
        production=eim("production", 1000.0, 2_000_000.0, active=production_active),
        **kw,
    )


def assemble(asm: Assembler, info: GatewayInfo, **readings):
    """As the client does it: the firmware noted when /info shows it, then the collection."""
    asm.note_firmware(info)
    return asm.assemble(Readings(info=info, **readings), {}, now=1_700_000_123.0)


def wants_v1(asm: Assembler, info: GatewayInfo, **readings) -> bool:
    """Whether the client's plan asks /api/v1/production, given the assembler's decisions. The
    client tells the assembler of the firmware when /info shows it, before the plan runs."""
    asm.note_firmware(info)
    view = Readings(info=info, **readings)
    return Plan(info, lambda: view, asm, ()).wants_v1_production()


# --------------------------------------------------------------------------------------------
# Production source


def test_live_ct_is_the_meter_source() -> None:
    snap = assemble(Assembler(), METERED, production_json=metered_json(), api_v1_production=v1())
    assert snap.production_source == "meter"
    assert snap.production.total.power_w == 1000.0
    assert snap.production.total.lifetime_j == 2_000_000.0 * WH
    assert snap.up
    assert snap.collected_at == 1_700_000_123.0
    assert snap.info is METERED


def test_ct_less_metered_gateway_uses_v1_not_the_dead_eim_section() -> None:
    pj = metered_json(production_active=0)
    snap = assemble(Assembler(), METERED, production_json=pj, api_v1_production=v1())
    assert snap.production_source == "inverters"
    assert snap.production.total.lifetime_j == 6_100_000.0 * WH


def test_v1_preferred_over_the_wrapped_inverters_section() -> None:
    """7.6.175_standard: 174,174 Wh in the section, 6,139,406 Wh in /api/v1/production."""
    pj = ProductionJson(inverters=section(5739.0, 174_174.0))
    snap = assemble(Assembler(), STANDARD, production_json=pj, api_v1_production=v1(5740.0, 6_139_406.0))
    assert snap.production_source == "inverters"
    assert snap.production.total.lifetime_j == 6_139_406.0 * WH
    assert snap.production.total.today_j == 3000.0 * WH


def test_all_zero_v1_falls_back_to_the_section_with_the_gateways_own_today() -> None:
    """7.3.466 / 7.6.175_total: v1 answers only zeros. Power and lifetime come from the
    inverters section; today / last seven days, which that section lacks, are the gateway's own
    figures from its (inactive) eim section, exported as reported like every today value."""
    pj = metered_json(production_active=0)
    zeros = Reading(power_w=689.0, lifetime_j=0.0, today_j=0.0, last_seven_days_j=0.0)
    snap = assemble(Assembler(), METERED, production_json=pj, api_v1_production=zeros)
    assert snap.production_source == "inverters"
    assert snap.production.total == Reading(power_w=900.0, lifetime_j=174_000.0 * WH, today_j=10.0 * WH)


def test_inverters_section_without_an_eim_section_has_no_today() -> None:
    snap = assemble(Assembler(), STANDARD, production_json=ProductionJson(inverters=section()))
    assert snap.production.total == Reading(power_w=900.0, lifetime_j=174_000.0 * WH)


def test_zeros_after_real_v1_data_are_a_reboot_not_a_broken_endpoint() -> None:
    asm = Assembler()
    first = assemble(asm, STANDARD, api_v1_production=v1())
    assert first.production.total.lifetime_j == 6_100_000.0 * WH
    zeros = Reading(power_w=0.0, lifetime_j=0.0, today_j=0.0, last_seven_days_j=0.0)
    rebooting = assemble(asm, STANDARD, api_v1_production=zeros)
    assert rebooting.production_source == "inverters"
    assert rebooting.production.total.lifetime_j == 0.0  # the counter keeper holds it
    assert wants_v1(asm, STANDARD)
    assert assemble(asm, STANDARD, api_v1_production=v1()).production.total.lifetime_j == 6_100_000.0 * WH


def test_v1_is_stalled_on_ct_less_metered_firmware_8_2_4264() -> None:
    pj = metered_json(production_active=0)
    stalled = Reading(power_w=4.0, lifetime_j=1583 * WH, today_j=0.0, last_seven_days_j=1583 * WH)
    asm = Assembler()
    assert not wants_v1(asm, NOCT_8_2, production_json=pj)
    snap = assemble(asm, NOCT_8_2, production_json=pj, api_v1_production=stalled)
    assert snap.production.total.lifetime_j == 174_000.0 * WH


def test_inverters_section_with_active_count_zero_but_a_lifetime_counts() -> None:
    pj = ProductionJson(inverters=section(active=0))
    snap = assemble(Assembler(), STANDARD, production_json=pj)
    assert snap.production.total.lifetime_j == 174_000.0 * WH


def test_disabled_production_meter_overrides_a_nonzero_active_count() -> None:
    meter = MeterConfig(
        eid=1,
        measurement_type="production",
        state="disabled",
        phase_mode="split",
        phase_count=2,
        metering_status="normal",
    )
    snap = assemble(
        Assembler(), METERED, production_json=metered_json(), meters=(meter,), api_v1_production=v1()
    )
    assert snap.production_source == "inverters"


def test_legacy_html_page() -> None:
    page = Reading(
        power_w=6630.0, lifetime_j=133_000_000 * WH, today_j=53_600 * WH, last_seven_days_j=405_000 * WH
    )
    snap = assemble(Assembler(), LEGACY, production_html=page)
    assert snap.production_source == "legacy"
    assert snap.production.total == page


def test_no_production_data_is_not_up() -> None:
    snap = assemble(Assembler(), METERED)
    assert snap.production is None and snap.production_source is None and not snap.up


def test_wants_v1_only_when_useful() -> None:
    asm = Assembler()
    assert not wants_v1(asm, METERED, production_json=metered_json())
    assert wants_v1(asm, METERED, production_json=metered_json(production_active=0))
    assert wants_v1(asm, STANDARD)


def test_v1_known_all_zero_is_not_asked_again_until_firmware_changes() -> None:
    asm = Assembler()
    pj = ProductionJson(inverters=section())
    assemble(asm, STANDARD, production_json=pj, api_v1_production=Reading(power_w=1.0, lifetime_j=0.0))
    assert not wants_v1(asm, STANDARD, production_json=pj)
    newer = GatewayInfo(serial=STANDARD.serial, firmware="D8.3.5422", metered=False)
    assert wants_v1(asm, newer, production_json=pj)


# --------------------------------------------------------------------------------------------
# The sticky source (pyenphase #471)


def test_a_glitch_never_switches_the_source() -> None:
    asm = Assembler(switch_after=3)
    good, glitch = metered_json(), metered_json(production_active=0)
    sources = []
    for pj in (good, good, glitch, good, glitch, glitch, good):
        snap = assemble(asm, METERED, production_json=pj, api_v1_production=v1())
        sources.append(snap.production_source)
    # during a glitch the meter has nothing: production is left out rather than taken elsewhere
    assert sources == ["meter", "meter", None, "meter", None, None, "meter"]
    assert asm.source == "meter"


def test_source_switches_once_after_n_collections_without_it() -> None:
    asm = Assembler(switch_after=3)
    assemble(asm, METERED, production_json=metered_json(), api_v1_production=v1())
    gone = metered_json(production_active=0)
    sources = [
        assemble(asm, METERED, production_json=gone, api_v1_production=v1()).production_source
        for _ in range(5)
    ]
    assert sources == [None, None, "inverters", "inverters", "inverters"]
    # and the meter coming back is a change like any other: it needs N collections too
    back = [
        assemble(asm, METERED, production_json=metered_json(), api_v1_production=v1()).production_source
        for _ in range(3)
    ]
    assert back == ["inverters", "inverters", "meter"]


def test_collections_without_any_production_data_do_not_count_towards_a_switch() -> None:
    asm = Assembler(switch_after=2)
    assemble(asm, METERED, production_json=metered_json(), api_v1_production=v1())
    gone = metered_json(production_active=0)
    assemble(asm, METERED, production_json=gone, api_v1_production=v1())
    assemble(asm, METERED)  # the gateway answered nothing
    assert assemble(asm, METERED, production_json=metered_json()).production_source == "meter"


def test_first_choice_waits_for_a_better_source_whose_endpoint_just_failed() -> None:
    """Taking the wrapped inverters section while /api/v1/production timed out would mean a
    switch, and a counter jump, as soon as v1 answers."""
    asm = Assembler(switch_after=3)
    pj = ProductionJson(inverters=section())
    timeout = {"api_v1_production": EndpointResult(Outcome.TIMEOUT)}
    first = asm.assemble(Readings(info=STANDARD, production_json=pj), timeout, now=1.0)
    assert first.production is None
    assert (
        assemble(asm, STANDARD, production_json=pj, api_v1_production=v1()).production_source == "inverters"
    )
    assert asm.source == "api_v1"


def test_first_choice_stops_waiting_after_n_collections() -> None:
    asm = Assembler(switch_after=3)
    pj = ProductionJson(inverters=section())
    failing = {"api_v1_production": EndpointResult(Outcome.HTTP_ERROR)}
    got = [
        asm.assemble(Readings(info=STANDARD, production_json=pj), failing, now=1.0).production
        for _ in range(3)
    ]
    assert got[:2] == [None, None]
    assert got[2].total.lifetime_j == 174_000.0 * WH


def test_a_missing_endpoint_is_no_reason_to_wait() -> None:
    pj = ProductionJson(inverters=section())
    absent = {"api_v1_production": EndpointResult(Outcome.UNSUPPORTED)}
    assert (
        Assembler().assemble(Readings(info=STANDARD, production_json=pj), absent, now=1.0).production
        is not None
    )


def test_firmware_change_decides_afresh() -> None:
    asm = Assembler(switch_after=5)
    assemble(asm, METERED, production_json=metered_json(), api_v1_production=v1())
    upgraded = GatewayInfo(serial=METERED.serial, firmware="D8.2.4382", metered=True)
    snap = assemble(asm, upgraded, production_json=metered_json(production_active=0), api_v1_production=v1())
    assert snap.production_source == "inverters"


# --------------------------------------------------------------------------------------------
# Consumption


def test_consumption_is_chosen_by_measurement_type_never_by_position() -> None:
    pj = metered_json(
        consumption=(eim("net-consumption", -300.0, 500_000.0), eim("total-consumption", 700.0, 9_000_000.0))
    )
    snap = assemble(Assembler(), METERED, production_json=pj)
    assert snap.consumption_total.total.power_w == 700.0
    assert snap.consumption_net.total.power_w == -300.0


def test_inactive_or_untyped_consumption_sections_are_left_out() -> None:
    pj = metered_json(
        consumption=(eim("total-consumption", 700.0, 9_000_000.0, active=0), eim(None, 0.0, 0.0, active=1))
    )
    snap = assemble(Assembler(), METERED, production_json=pj)
    assert snap.consumption_total is None and snap.consumption_net is None


def test_total_that_copies_net_is_net_plus_production() -> None:
    """8.3.5433: both consumption sections say net; total = net + production, per phase too."""
    production = eim(
        "production",
        357.0,
        14_405_465.0,
        lines=[line(175.0, 7_201_352.0), line(182.0, 7_204_113.0), ZERO_LINE],
    )
    net_lines = [line(249.0, 3_507_434.0, 3_507_434.0), line(179.0, 2_141_968.0, 2_141_968.0), ZERO_LINE]
    net = eim("net-consumption", 428.0, 5_649_402.0, lines=net_lines, today_wh=0.0)
    copy = eim("total-consumption", 428.0, 5_649_402.0, lines=net_lines, today_wh=5_649_402.0)
    pj = ProductionJson(inverters=section(), production=production, consumption=(copy, net))
    snap = assemble(Assembler(), METERED, production_json=pj)
    total = snap.consumption_total
    assert total.total.power_w == 785.0
    assert total.total.lifetime_j == pytest.approx(20_054_867.0 * WH)
    assert total.total.today_j == 5_649_402.0 * WH  # as reported
    assert set(total.phases) == {"L1", "L2"}
    assert total.phases["L1"].power_w == 424.0
    assert total.phases["L2"].lifetime_j == pytest.approx(9_346_081.0 * WH)
    assert total.phases["L1"].today_j == 3_507_434.0 * WH
    assert snap.consumption_net.total.lifetime_j == 5_649_402.0 * WH


def test_total_equal_to_net_only_in_power_is_night_not_a_copy() -> None:
    pj = metered_json(
        consumption=(eim("total-consumption", 3774.0, 132_912.0), eim("net-consumption", 3774.0, 85_834.0))
    )
    snap = assemble(Assembler(), METERED, production_json=pj)
    assert snap.consumption_total.total.lifetime_j == 132_912.0 * WH


def test_copied_total_without_a_live_production_ct_is_left_out() -> None:
    pj = metered_json(
        production_active=0,
        consumption=(
            eim("total-consumption", 428.0, 5_649_402.0),
            eim("net-consumption", 428.0, 5_649_402.0),
        ),
    )
    snap = assemble(Assembler(), METERED, production_json=pj)
    assert snap.consumption_total is None
    assert snap.consumption_net.total.power_w == 428.0


# --------------------------------------------------------------------------------------------
# Phases


def test_three_phase_lines_become_l1_l2_l3_in_order() -> None:
    lines = [line(-3.0, 1_869_678.0), line(0.0, 1_241_246.0), line(-4.0, 1_240_189.0)]
    pj = ProductionJson(production=eim("production", -6.0, 4_351_113.0, lines=lines))
    phases = assemble(Assembler(), METERED, production_json=pj).production.phases
    assert list(phases) == ["L1", "L2", "L3"]
    assert phases["L2"].lifetime_j == 1_241_246.0 * WH  # 0 W is a quiet phase, not an unused one


def test_all_zero_third_line_on_split_phase_is_left_out() -> None:
    pj = ProductionJson(
        production=eim(
            "production", 0.0, 47_078.0, lines=[line(0.0, 23_506.0), line(0.0, 23_572.0), ZERO_LINE]
        )
    )
    assert list(assemble(Assembler(), METERED, production_json=pj).production.phases) == ["L1", "L2"]


@pytest.mark.parametrize("lines", [[], [line(734.0, 1_243_811.0)], [line(300.0, 9.0), ZERO_LINE, ZERO_LINE]])
def test_single_phase_gets_no_phases(lines) -> None:
    pj = ProductionJson(production=eim("production", 734.0, 1_243_811.0, lines=lines))
    assert assemble(Assembler(), METERED, production_json=pj).production.phases == {}


# --------------------------------------------------------------------------------------------
# Meters


def config(eid: int, kind: str, state: str = "enabled", phases: int = 2) -> MeterConfig:
    return MeterConfig(
        eid=eid,
        measurement_type=kind,
        state=state,
        phase_mode="split",
        phase_count=phases,
        metering_status="normal",
    )


def channel(eid: int, power: float, **kw) -> MeterChannel:
    return MeterChannel(eid=eid, timestamp_s=1.0, power_w=power, voltage_v=120.0, frequency_hz=60.0, **kw)


def test_meters_match_configs_and_readings_by_eid() -> None:
    configs = (config(11, "production"), config(22, "net-consumption"))
    readings = (
        MeterReading(total=channel(22, 50.0), channels=(channel(221, 20.0), channel(222, 30.0))),
        MeterReading(total=channel(11, 2660.0), channels=(channel(111, 1331.0), channel(112, 1329.0))),
    )
    meters = assemble(Assembler(), METERED, meters=configs, meter_readings=readings).meters
    assert [m.config.measurement_type for m in meters] == ["production", "net-consumption"]
    assert meters[0].total.power_w == 2660.0
    assert meters[1].phases["L2"].power_w == 30.0


def test_meter_phases_stop_at_phase_count_and_skip_all_zero_channels() -> None:
    unused = MeterChannel(
        eid=0,
        timestamp_s=1.0,
        power_w=0.0,
        voltage_v=0.0,
        current_a=0.0,
        frequency_hz=60.0,
        delivered_j=0.0,
        received_j=0.0,
    )
    quiet = MeterChannel(eid=0, timestamp_s=1.0, power_w=0.0, current_a=5.7, frequency_hz=0.0)
    reading3 = MeterReading(total=channel(1, 10.0), channels=(channel(0, 5.0), unused, channel(0, 5.0)))
    reading2 = MeterReading(total=channel(2, 10.0), channels=(channel(0, 5.0), quiet, channel(0, 99.0)))
    meters = assemble(
        Assembler(),
        METERED,
        meters=(config(1, "production", phases=3), config(2, "backfeed")),
        meter_readings=(reading3, reading2),
    ).meters
    assert list(meters[0].phases) == ["L1", "L3"]
    assert list(meters[1].phases) == ["L1", "L2"]  # a current alone makes it a used phase


def test_disabled_meter_keeps_its_config_but_no_values() -> None:
    readings = (MeterReading(total=channel(22, 5.0), channels=(channel(0, 2.0), channel(0, 3.0))),)
    (meter,) = assemble(
        Assembler(), METERED, meters=(config(22, "net-consumption", "disabled"),), meter_readings=readings
    ).meters
    assert meter.config.state == "disabled"
    assert meter.total is None and meter.phases == {}


def single_phase_channel(eid: int, **kw) -> MeterChannel:
    """Shaped after a single-phase production CT on firmware 8.2 (phaseCount 1, 50 Hz)."""
    values = dict(power_w=807.3, voltage_v=244.06, current_a=5.3, frequency_hz=50.06, power_factor=0.654)
    return MeterChannel(eid=eid, timestamp_s=1.0, **{**values, **kw})


def test_single_phase_meter_is_its_own_l1() -> None:
    # The gateway lists three channels whatever the phase count; the first repeats the meter,
    # the other two carry noise (2 V, 0.18 A) that is no phase.
    readings = (
        MeterReading(
            total=single_phase_channel(1),
            channels=(
                single_phase_channel(11),
                single_phase_channel(12, power_w=-0.04, voltage_v=2.1, current_a=0.18, power_factor=0.0),
                single_phase_channel(13, power_w=0.0, voltage_v=3.0, current_a=0.0, power_factor=0.0),
            ),
        ),
    )
    (meter,) = assemble(
        Assembler(), METERED, meters=(config(1, "production", phases=1),), meter_readings=readings
    ).meters
    assert list(meter.phases) == ["L1"]
    l1 = meter.phases["L1"]
    assert (l1.voltage_v, l1.frequency_hz, l1.power_factor, l1.current_a) == (244.06, 50.06, 0.654, 5.3)


def test_single_phase_meter_without_channels_is_its_own_l1() -> None:
    readings = (MeterReading(total=single_phase_channel(1)),)
    (meter,) = assemble(
        Assembler(), METERED, meters=(config(1, "production", phases=1),), meter_readings=readings
    ).meters
    assert meter.phases["L1"].voltage_v == 244.06


def test_single_phase_meter_reading_nothing_has_no_l1() -> None:
    silent = single_phase_channel(1, power_w=0.0, voltage_v=0.0, current_a=0.0, power_factor=0.0)
    readings = (MeterReading(total=silent, channels=(replace(silent, eid=11),)),)
    (meter,) = assemble(
        Assembler(), METERED, meters=(config(1, "production", phases=1),), meter_readings=readings
    ).meters
    assert meter.phases == {}


# --------------------------------------------------------------------------------------------
# Inverters, devices, batteries


def test_device_data_preferred_and_v1_fills_the_ones_it_leaves_out() -> None:
    rich = (InverterReading("900000000201", power_w=255.0, dc_voltage_v=32.4),)
    plain = V1Inverters(
        inverters=(
            InverterReading("900000000201", power_w=250.0),
            InverterReading("900000000202", power_w=78.0),
        )
    )
    inverters = assemble(
        Assembler(), METERED, device_data=DeviceData(inverters=rich), api_v1_inverters=plain
    ).inverters
    assert [(i.serial, i.power_w) for i in inverters] == [("900000000201", 255.0), ("900000000202", 78.0)]


def test_v1_inverters_alone() -> None:
    plain = V1Inverters(inverters=(InverterReading("900000000203", power_w=14.0, max_power_w=346.0),))
    assert assemble(Assembler(), METERED, api_v1_inverters=plain).inverters == plain.inverters


def test_devices_and_relays_from_the_inventory() -> None:
    inventory = Inventory(
        devices=(Device("900000000301", "PCU", producing=True),),
        relays=(Relay("900000000302", closed=True, lines_connected={"1": True}),),
    )
    snap = assemble(Assembler(), METERED, inventory=inventory)
    assert snap.devices == inventory.devices and snap.relays == inventory.relays


def test_batteries_merge_by_serial_and_the_power_endpoints_soc_wins() -> None:
    inventory = Ensemble(
        batteries=(
            Battery("900000000401", "encharge", soc_ratio=0.10, capacity_j=3500 * WH, temperature_c=11.0),
        )
    )
    power = Ensemble(batteries=(Battery("900000000401", "encharge", soc_ratio=0.54, power_w=105.0),))
    acb = Inventory(batteries=(Battery("900000000402", "acb", soc_ratio=0.02),))
    (enc, ac) = assemble(
        Assembler(), METERED, ensemble_inventory=inventory, ensemble_power=power, inventory=acb
    ).batteries
    assert enc == Battery(
        "900000000401", "encharge", soc_ratio=0.54, power_w=105.0, capacity_j=3500 * WH, temperature_c=11.0
    )
    assert ac.serial == "900000000402" and ac.battery_type == "acb"


def test_storage_from_secctrl_and_enpower_from_the_ensemble() -> None:
    aggregate = StorageAggregate(soc_ratio=0.39, available_j=2820 * WH, capacity_j=7220 * WH)
    enpower = Enpower("900000000501", grid_connected=True)
    pj = ProductionJson(storage=AcbStorage(3, 260.0, 930 * WH, "discharging", 0.25))
    snap = assemble(
        Assembler(),
        METERED,
        production_json=pj,
        ensemble_secctrl=Ensemble(aggregate=aggregate),
        ensemble_inventory=Ensemble(enpower=enpower),
    )
    assert snap.storage == aggregate
    assert snap.enpower == enpower


def test_acb_storage_section_stands_in_without_secctrl() -> None:
    pj = ProductionJson(storage=AcbStorage(2, -2.0, 25 * WH, "idle", 0.01))
    assert assemble(Assembler(), METERED, production_json=pj).storage == StorageAggregate(
        soc_ratio=0.01, available_j=25 * WH
    )
    idle = ProductionJson(storage=AcbStorage(0, 0.0, 0.0, "idle", None))
    assert assemble(Assembler(), METERED, production_json=idle).storage is None


def test_endpoints_are_copied_in() -> None:
    endpoints = {"production_json": EndpointResult(Outcome.OK)}
    snap = Assembler().assemble(Readings(info=METERED), endpoints, now=5.0)
    assert snap.endpoints == endpoints and snap.endpoints is not endpoints


def test_readings_have_one_typed_field_per_endpoint() -> None:
    # The client stores each parser result in the field named by its endpoint's key; assembly
    # reads typed fields, never a dict of objects checked with isinstance.
    assert {f.name for f in fields(Readings)} == set(BY_KEY)
    snap = assemble(Assembler(), METERED, production_json=None, meters=None)
    assert snap.production is None and snap.meters == ()


# --------------------------------------------------------------------------------------------
# production.json on its slow cadence: the powers come from the CT readings


CACHED = {
    "production_json": EndpointResult(Outcome.CACHED, age_s=60.0),
    "meter_readings": EndpointResult(Outcome.OK),
}


def ct_system(*consumption_cts: str) -> Readings:
    """A split-phase CT system whose production.json is older than its readings."""
    pj = ProductionJson(
        inverters=section(),
        production=eim("production", 1000.0, 2_000_000.0, lines=(line(500.0, 1e6), line(500.0, 1e6))),
        consumption=(
            eim("total-consumption", 1500.0, 9_000_000.0, today_wh=700.0),
            eim("net-consumption", 500.0, 7_000_000.0),
        ),
    )
    configs = (config(1, "production"), *(config(2 + i, k) for i, k in enumerate(consumption_cts)))
    powers = {"production": (1200.0, 700.0, 500.0), "net-consumption": (-400.0, -300.0, -100.0)}
    powers["total-consumption"] = (800.0, 400.0, 400.0)
    readings = tuple(
        MeterReading(
            total=channel(c.eid, powers[c.measurement_type][0]),
            channels=tuple(channel(0, p) for p in powers[c.measurement_type][1:]),
        )
        for c in configs
    )
    return Readings(info=METERED, production_json=pj, meters=configs, meter_readings=readings)


def test_powers_of_a_cached_production_json_come_from_the_readings() -> None:
    snap = Assembler().assemble(ct_system("net-consumption"), CACHED, now=1.0)
    assert snap.production_source == "meter"
    assert snap.production.total.power_w == 1200.0
    assert {ph: r.power_w for ph, r in snap.production.phases.items()} == {"L1": 700.0, "L2": 500.0}
    # lifetime and today stay production.json's: they move on its cadence
    assert snap.production.total.lifetime_j == 2_000_000.0 * WH
    assert snap.production.total.today_j == 10.0 * WH
    assert snap.consumption_net.total.power_w == -400.0
    assert snap.consumption_total.total.power_w == 800.0  # net + production: no total CT
    assert snap.consumption_total.total.today_j == 700.0 * WH


def test_the_inverters_power_stays_while_production_json_is_cached() -> None:
    # The inverters' own figure is the sum of their 5-minute reports, like every
    # enphase_inverter_power_watts served from the 5-minute inverter cache: a production.json
    # read up to 5 minutes ago holds it as fresh as it comes. Dropping it left the CT-versus-
    # inverters comparison with one sample in twenty scrapes.
    snap = Assembler().assemble(ct_system("net-consumption"), CACHED, now=1.0)
    assert snap.inverters_total == Reading(power_w=900.0, lifetime_j=174_000.0 * WH)


def test_a_total_consumption_ct_gives_net_as_total_less_production() -> None:
    snap = Assembler().assemble(ct_system("total-consumption"), CACHED, now=1.0)
    assert snap.consumption_total.total.power_w == 800.0
    assert snap.consumption_net.total.power_w == 800.0 - 1200.0


def test_no_readings_this_time_means_no_power_rather_than_a_stale_one() -> None:
    readings = replace(ct_system("net-consumption"), meter_readings=None)
    endpoints = {**CACHED, "meter_readings": EndpointResult(Outcome.TIMEOUT)}
    snap = Assembler().assemble(readings, endpoints, now=1.0)
    assert snap.production.total.power_w is None
    assert snap.production.total.lifetime_j == 2_000_000.0 * WH
    assert snap.consumption_net.total.power_w is None


@pytest.mark.parametrize(
    "production_json",
    [EndpointResult(Outcome.OK), EndpointResult(Outcome.CACHED, age_s=9.0)],
    ids=["read now", "younger than production figures live"],
)
def test_a_fresh_production_json_keeps_its_own_powers(production_json) -> None:
    endpoints = {"production_json": production_json, "meter_readings": EndpointResult(Outcome.OK)}
    snap = Assembler().assemble(ct_system("net-consumption"), endpoints, now=1.0)
    assert snap.production.total.power_w == 1000.0
    assert snap.consumption_net.total.power_w == 500.0


# --------------------------------------------------------------------------------------------
# How long the plan caches an answer


def family(endpoint, readings: Readings, asm: Assembler | None = None, unsupported=()) -> str:
    return Plan(readings.info, lambda: readings, asm or Assembler(), unsupported).family(endpoint)


def deciding(**readings) -> Assembler:
    """An assembler that has chosen its source from these readings."""
    asm = Assembler()
    assemble(asm, STANDARD, **readings)
    return asm


def test_production_json_on_a_ct_system_is_read_for_its_energy_figures() -> None:
    assert family(PRODUCTION_JSON, ct_system("net-consumption")) == "energy"
    # without readings of the consumption CTs, production.json carries consumption power
    assert family(PRODUCTION_JSON, ct_system()) == "production"
    assert (
        family(PRODUCTION_JSON, ct_system("net-consumption"), unsupported=("meter_readings",)) == "production"
    )


def test_production_json_where_v1_is_the_source_unless_an_ac_battery_reports_there() -> None:
    standard = Readings(info=STANDARD, production_json=ProductionJson(inverters=section()))
    v1_source = deciding(production_json=standard.production_json, api_v1_production=v1())
    section_source = deciding(production_json=standard.production_json)
    assert (v1_source.source, section_source.source) == ("api_v1", "section")
    assert family(PRODUCTION_JSON, standard, v1_source) == "energy"
    assert family(PRODUCTION_JSON, standard, section_source) == "production"
    acb = AcbStorage(active_count=1, power_w=-200.0, energy_j=1.0, state="charging", soc_ratio=0.5)
    with_acb = Readings(info=STANDARD, production_json=ProductionJson(inverters=section(), storage=acb))
    assert family(PRODUCTION_JSON, with_acb, v1_source) == "production"


def test_the_ensemble_inventory_every_scrape_with_a_grid_relay_slow_else_and_hourly_when_empty() -> None:
    battery = Battery(serial="1", battery_type="encharge")
    enpower = Enpower(serial="2", grid_connected=True)
    of = lambda e: family(ENSEMBLE_INVENTORY, Readings(info=METERED, ensemble_inventory=e))  # noqa: E731
    # a system controller or Meter Collar: its relay state is the grid-outage signal
    assert of(Ensemble(batteries=(battery,), enpower=enpower)) == "readings"
    assert of(Ensemble(enpower=enpower)) == "readings"
    assert of(Ensemble(batteries=(battery,))) == "inventory"
    assert of(Ensemble()) == "info"


# --------------------------------------------------------------------------------------------
# The inverters' own production, batteries by type, Ensemble devices, settings


def test_inverters_own_production_beside_a_live_ct_is_the_inverters_section() -> None:
    snap = assemble(Assembler(), METERED, production_json=metered_json())
    assert snap.production_source == "meter"
    assert snap.inverters_total == Reading(power_w=900.0, lifetime_j=174_000.0 * WH)


def test_inverters_own_production_is_the_production_reading_where_inverters_are_the_source() -> None:
    snap = assemble(
        Assembler(), STANDARD, production_json=ProductionJson(inverters=section()), api_v1_production=v1()
    )
    assert snap.production_source == "inverters"
    assert snap.inverters_total is snap.production.total  # one reading, one counter


def test_no_inverters_own_production_on_the_legacy_page() -> None:
    snap = assemble(Assembler(), LEGACY, production_html=Reading(power_w=6630.0, lifetime_j=1.0))
    assert snap.production_source == "legacy" and snap.inverters_total is None


def test_acb_storage_section_and_encharge_sum_by_type() -> None:
    acb = AcbStorage(active_count=3, power_w=260.0, energy_j=930 * WH, state="discharging", soc_ratio=0.25)
    power = Ensemble(
        batteries=(
            Battery("900000000601", "encharge", power_w=-1200.0),
            Battery("900000000602", "encharge", power_w=-800.0),
        )
    )
    snap = assemble(Assembler(), METERED, production_json=metered_json(storage=acb), ensemble_power=power)
    assert snap.storage_groups == (
        StorageGroup("acb", power_w=260.0, state="discharging"),
        StorageGroup("encharge", power_w=-2000.0),
    )


def test_no_group_for_an_idle_storage_section_without_acbs() -> None:
    acb = AcbStorage(active_count=0, power_w=0.0, energy_j=0.0, state="idle", soc_ratio=0.0)
    assert assemble(Assembler(), METERED, production_json=metered_json(storage=acb)).storage_groups == ()


def test_ensemble_devices_join_the_inventorys_once_per_serial() -> None:
    inventory = Inventory(devices=(Device("900000000201", "PCU"), Device("900000000601", "ACB")))
    ensemble = Ensemble(devices=(Device("900000000601", "ENCHARGE"), Device("900000000602", "ENPOWER")))
    snap = assemble(Assembler(), METERED, inventory=inventory, ensemble_inventory=ensemble)
    assert [(d.serial, d.device_type) for d in snap.devices] == [
        ("900000000201", "PCU"),
        ("900000000601", "ACB"),
        ("900000000602", "ENPOWER"),
    ]


def test_slow_cache_results_pass_through() -> None:
    settings = StorageSettings(mode="backup", reserve_ratio=1.0)
    contacts = (DryContact("NC1", closed=True),)
    home = HomeStatus(enlighten_connected=True)
    snap = assemble(
        Assembler(),
        METERED,
        tariff=TariffAnswer(storage=settings),
        dry_contacts=contacts,
        generator=Generator(present=False),
        home=home,
    )
    assert (snap.storage_settings, snap.dry_contacts, snap.generator, snap.home) == (
        settings,
        contacts,
        Generator(present=False),
        home,
    )


def test_the_inverter_lists_acb_watts_are_not_a_units_power() -> None:
    # Shaped after 8.3.5169 without device_data: the inverter list says 4 W for an "idle" unit
    # that drew 1 W, and 5 W for one the inventory does not list. Neither becomes a power; the
    # storage section's -2 W stays the AC batteries' power, together.
    section = AcbStorage(active_count=2, power_w=-2.0, energy_j=25 * WH, state="idle", soc_ratio=0.01)
    units = V1Inverters(
        batteries=(AcbReading("121900000002", power_w=4.0), AcbReading("121900000003", power_w=5.0))
    )
    inventory = Inventory(batteries=(Battery("121900000002", "acb", soc_ratio=0.02, state="idle"),))
    snap = assemble(
        Assembler(),
        METERED,
        production_json=metered_json(storage=section),
        api_v1_inverters=units,
        inventory=inventory,
    )
    assert snap.batteries == (Battery("121900000002", "acb", soc_ratio=0.02, state="idle"),)
    assert snap.storage_groups == (StorageGroup("acb", power_w=-2.0, state="idle"),)
