"""Lifetimes that move with the CT readings between reads of production.json, and per-phase
production from the production CT's channels (assemble, pure)."""

from __future__ import annotations

from envoy_exporter.snapshot.assemble import Assembler
from envoy_exporter.snapshot.model import (
    WH,
    EimSection,
    EndpointResult,
    GatewayInfo,
    MeterChannel,
    MeterConfig,
    MeterReading,
    ProductionJson,
    Reading,
    Readings,
)
from envoy_exporter.snapshot.outcome import Outcome

INFO = GatewayInfo(serial="900000000301", firmware="D8.2.127", metered=True)
FRESH = EndpointResult(Outcome.OK)
CACHED = EndpointResult(Outcome.CACHED, age_s=60.0)
CONFIGS = (
    MeterConfig(1, "production", "enabled", "split", 2, "normal"),
    MeterConfig(2, "net-consumption", "enabled", "split", 2, "normal"),
)


def _eim(kind: str, lifetime_wh: float, lines: tuple[Reading, ...] = ()) -> EimSection:
    return EimSection(kind, 1, 1.0, Reading(power_w=500.0, lifetime_j=lifetime_wh * WH), lines)


def production_json(made_wh: float, net_wh: float, total_wh: float, lines: bool = False) -> ProductionJson:
    phases = (Reading(power_w=250.0, lifetime_j=made_wh / 2 * WH),) * 2 if lines else ()
    return ProductionJson(
        production=_eim("production", made_wh, phases),
        consumption=(_eim("total-consumption", total_wh), _eim("net-consumption", net_wh)),
    )


def _channel(eid: int, delivered_wh: float, received_wh: float, power: float) -> MeterChannel:
    return MeterChannel(eid=eid, power_w=power, delivered_j=delivered_wh * WH, received_j=received_wh * WH)


def readings(
    made_wh: tuple[float, float], imported_wh: float, exported_wh: float
) -> tuple[MeterReading, ...]:
    l1, l2 = made_wh
    return (
        MeterReading(
            _channel(1, l1 + l2, 0.0, 500.0),
            (_channel(1, l1, 0.0, 240.0), _channel(1, l2, 0.0, 260.0), _channel(1, 0.0, 0.0, 0.0)),
        ),
        MeterReading(_channel(2, imported_wh, exported_wh, 100.0)),
    )


def collect(asm: Assembler, pj: ProductionJson, cts, pj_status=FRESH, ct_status=FRESH):
    readings_ = Readings(info=INFO, production_json=pj, meters=CONFIGS, meter_readings=cts)
    return asm.assemble(readings_, {"production_json": pj_status, "meter_readings": ct_status}, now=1.0)


def lifetimes(snap) -> tuple[float, float, float]:
    return tuple(
        round(flow.total.lifetime_j / WH, 6)
        for flow in (snap.production, snap.consumption_total, snap.consumption_net)
    )


def test_between_reads_the_lifetimes_follow_the_cts_and_equal_production_json_when_read() -> None:
    asm = Assembler()
    pj = production_json(1000.0, 300.0, 1300.0)
    # production.json's own values where it was just read
    assert lifetimes(collect(asm, pj, readings((500.0, 500.0), 800.0, 500.0))) == (1000.0, 1300.0, 300.0)
    # +20 Wh produced on L1, +40 Wh imported, +10 Wh exported: production.json from the cache
    moved = collect(asm, pj, readings((520.0, 500.0), 840.0, 510.0), pj_status=CACHED)
    assert lifetimes(moved) == (1020.0, 1350.0, 330.0)  # total = net + production where no total CT
    # production.json read again: its own values stand
    assert lifetimes(
        collect(asm, production_json(1021.0, 331.0, 1352.0), readings((521, 500), 841, 510))
    ) == (
        1021.0,
        1352.0,
        331.0,
    )


def test_the_anchor_is_never_a_reading_older_than_production_json() -> None:
    asm = Assembler()
    pj = production_json(1000.0, 300.0, 1300.0)
    # production.json fresh but the readings from the cache (read before it): no anchor from them
    collect(asm, pj, readings((490.0, 490.0), 790.0, 500.0), ct_status=CACHED)
    assert lifetimes(collect(asm, pj, readings((500.0, 500.0), 800.0, 500.0), pj_status=CACHED)) == (
        1000.0,
        1300.0,
        300.0,
    )
    # the first fresh readings after it are the anchor
    moved = collect(asm, pj, readings((505.0, 500.0), 800.0, 500.0), pj_status=CACHED)
    assert lifetimes(moved)[0] == 1005.0


def test_a_ct_counter_that_falls_moves_nothing() -> None:
    asm = Assembler()
    pj = production_json(1000.0, 300.0, 1300.0)
    collect(asm, pj, readings((500.0, 500.0), 800.0, 500.0))
    # the gateway rebooted: its CT lifetimes read 0
    assert lifetimes(collect(asm, pj, readings((0.0, 0.0), 0.0, 0.0), pj_status=CACHED)) == (
        1000.0,
        1300.0,
        300.0,
    )


def test_phase_lifetimes_follow_their_channels() -> None:
    asm = Assembler()
    pj = production_json(1000.0, 300.0, 1300.0, lines=True)
    collect(asm, pj, readings((500.0, 500.0), 800.0, 500.0))
    snap = collect(asm, pj, readings((520.0, 505.0), 800.0, 500.0), pj_status=CACHED)
    assert {ph: r.lifetime_j / WH for ph, r in snap.production.phases.items()} == {"L1": 520.0, "L2": 505.0}


def test_production_phases_from_the_ct_channels_where_production_json_has_no_lines() -> None:
    snap = collect(
        Assembler(), production_json(1000.0, 300.0, 1300.0), readings((500.0, 500.0), 800.0, 500.0)
    )
    assert {ph: (r.power_w, r.lifetime_j / WH) for ph, r in snap.production.phases.items()} == {
        "L1": (240.0, 500.0),
        "L2": (260.0, 500.0),
    }  # the all-zero third channel is left out


def test_production_json_lagging_the_cts_never_makes_a_lifetime_fall() -> None:
    # A real gateway's production.json can lag its meter readings: here by two minutes, while the
    # morning sun ramps up. Read every five minutes, it says less than the CTs already moved the
    # lifetime on; the lifetime holds until the CTs carry it past that, and never falls.
    asm = Assembler()
    pj = production_json(1000.0, 0.0, 1000.0)
    exported = [lifetimes(collect(asm, pj, readings((500, 500), 0, 0)))[0]]
    for made in (1010.0, 1040.0, 1100.0, 1180.0):
        snap = collect(asm, pj, readings((made - 500, 500), 0, 0), pj_status=CACHED)
        exported.append(lifetimes(snap)[0])
    lagging = production_json(1100.0, 0.0, 1100.0)  # the truth of two minutes ago
    exported.append(lifetimes(collect(asm, lagging, readings((780, 500), 0, 0)))[0])
    exported.append(lifetimes(collect(asm, lagging, readings((890, 500), 0, 0), pj_status=CACHED))[0])
    assert exported == [1000.0, 1010.0, 1040.0, 1100.0, 1180.0, 1180.0, 1210.0]


def test_a_ct_missing_for_one_reading_does_not_pull_its_lifetime_back() -> None:
    asm = Assembler()
    pj = production_json(1000.0, 300.0, 1300.0)
    collect(asm, pj, readings((500.0, 500.0), 800.0, 500.0))
    assert lifetimes(collect(asm, pj, readings((520.0, 500.0), 800.0, 500.0), pj_status=CACHED))[0] == 1020.0
    net_only = readings((530.0, 500.0), 800.0, 500.0)[1:]
    assert lifetimes(collect(asm, pj, net_only, pj_status=CACHED))[0] == 1020.0
    assert lifetimes(collect(asm, pj, readings((530.0, 500.0), 800.0, 500.0), pj_status=CACHED))[0] == 1030.0


def test_a_production_json_that_falls_is_passed_on_for_the_counter_keeper_to_judge() -> None:
    asm = Assembler()
    collect(asm, production_json(1000.0, 300.0, 1300.0), readings((500.0, 500.0), 800.0, 500.0))
    collect(asm, production_json(1000.0, 300.0, 1300.0), readings((520.0, 500.0), 800.0, 500.0), CACHED)
    rebooted = collect(asm, production_json(0.0, 0.0, 0.0), readings((0.0, 0.0), 0.0, 0.0))
    assert lifetimes(rebooted) == (0.0, 0.0, 0.0)
