"""Counter integrity: wraps, bogus zeros, resets and phantom jumps never reach the exported counter."""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import replace
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envoy_exporter import state
from envoy_exporter.snapshot.counters import CounterKeeper, state_path
from envoy_exporter.snapshot.model import (
    WH,
    WRAP_J,
    Flow,
    InverterReading,
    Meter,
    MeterChannel,
    MeterConfig,
    Reading,
    Reported,
    Snapshot,
)

KWH = 1000 * WH
KEY = ("gw1", "production", "inverters", "")
T0 = 1_750_000_000.0  # epoch seconds, a summer day


def kwh(value: float) -> float:
    return value * KWH


def counts(keeper: CounterKeeper, gateway: str = "gw1") -> dict[str, int]:
    return {kind: n for (gw, kind), n in keeper.corrections().items() if gw == gateway and n}


@pytest.fixture
def keeper() -> CounterKeeper:
    return CounterKeeper(None, clock=lambda: T0)


# ---------------------------------------------------------------------------------------------
# Plain readings


def test_first_value_is_accepted_and_normal_increases_pass_through(keeper: CounterKeeper) -> None:
    assert keeper.observe(KEY, kwh(8100), T0) == kwh(8100)
    assert keeper.observe(KEY, kwh(8100.5), T0 + 600) == kwh(8100.5)
    assert keeper.observe(KEY, kwh(8100.5), T0 + 610) == kwh(8100.5)
    assert counts(keeper) == {}


def test_nothing_known_gives_none_then_the_last_good_value(keeper: CounterKeeper) -> None:
    assert keeper.observe(KEY, None, T0) is None
    assert keeper.observe(KEY, float("nan"), T0) is None
    keeper.observe(KEY, kwh(50), T0)
    assert keeper.observe(KEY, None, T0 + 10) == kwh(50)


def test_a_first_zero_is_exported_but_not_a_baseline(keeper: CounterKeeper) -> None:
    # A meter channel that never metered energy reads 0, and the gateway said so: 0 is exported.
    # With no history, the next value cannot be judged against it: it starts the series as it
    # comes (no "jump"), and later falls are judged from there.
    assert keeper.observe(KEY, 0.0, T0) == 0.0
    assert keeper.observe(KEY, 0.0, T0 + 30) == 0.0
    assert keeper.observe(KEY, kwh(50), T0 + 60) == kwh(50)
    assert keeper.observe(KEY, 0.0, T0 + 90) == kwh(50)  # now a zero is a bogus reading, held
    assert counts(keeper) == {"bogus": 1}


def test_a_negative_first_value_is_not_a_value(keeper: CounterKeeper) -> None:
    assert keeper.observe(KEY, -5.0, T0) is None


def test_the_default_clock_is_used_without_now() -> None:
    now = [T0]
    keeper = CounterKeeper(None, clock=lambda: now[0])
    keeper.observe(KEY, kwh(10))
    now[0] += 3600
    assert keeper.observe(KEY, kwh(14)) == kwh(14)  # 4 kWh in an hour is plausible


def test_a_step_after_a_flat_stretch_is_plausible(keeper: CounterKeeper) -> None:
    # Microinverters report every 5 minutes: the counter stands still, then moves by 5 minutes'
    # worth between two collections 10 s apart.
    keeper.observe(KEY, kwh(100), T0, max_power_w=1000)
    for t in range(10, 300, 10):
        keeper.observe(KEY, kwh(100), T0 + t, max_power_w=1000)
    assert keeper.observe(KEY, kwh(100) + 30 * WH, T0 + 300, max_power_w=1000) == kwh(100) + 30 * WH
    assert counts(keeper) == {}


def test_rounding_jitter_below_the_level_changes_nothing(keeper: CounterKeeper) -> None:
    keeper.observe(KEY, kwh(100), T0)
    assert keeper.observe(KEY, kwh(100) - 0.5 * WH, T0 + 10) == kwh(100)
    assert keeper.observe(KEY, kwh(100) + 2 * WH, T0 + 20) == kwh(100) + 2 * WH
    assert counts(keeper) == {}


# ---------------------------------------------------------------------------------------------
# Wraps


def test_wrap_k1_partial_fall_is_added_back(keeper: CounterKeeper) -> None:
    # Envoy-S standard: 8.1 MWh reported, then 1.19 MWh less while 0.5 kWh was produced.
    keeper.observe(KEY, kwh(8100), T0)
    raw = kwh(8100.5) - WRAP_J
    assert keeper.observe(KEY, raw, T0 + 600) == pytest.approx(kwh(8100.5), abs=1.0)
    assert keeper.observe(KEY, raw + kwh(1), T0 + 1200) == pytest.approx(kwh(8101.5), abs=1.0)
    assert counts(keeper) == {"wrap": 1}


def test_the_wrap_table_of_docs_counters_md(keeper: CounterKeeper) -> None:
    hour = 3600
    reported = [8_100_000.0, 8_101_500.0, 8_103_300.0 - WRAP_J / WH, 8_105_000.0 - WRAP_J / WH]
    exported = [keeper.observe(KEY, wh * WH, T0 + i * hour) / WH for i, wh in enumerate(reported)]
    assert round(reported[2], 1) == 6_910_253.5
    assert exported == pytest.approx([8_100_000.0, 8_101_500.0, 8_103_300.0, 8_105_000.0])


def test_wrap_of_a_counter_that_is_true_modulo_2_32(keeper: CounterKeeper) -> None:
    keeper.observe(KEY, 1_193_000 * WH, T0)
    # 146.47 Wh produced: 46.47 Wh up to the wrap, 100 Wh after it
    assert keeper.observe(KEY, 100 * WH, T0 + 600) == pytest.approx(WRAP_J + 100 * WH, abs=1.0)
    assert counts(keeper) == {"wrap": 1}


def test_wrap_k5_after_the_counter_reported_its_full_value(keeper: CounterKeeper) -> None:
    # 6,139,406 Wh true, 174,174 Wh reported: five wraps apart. Seen after 2 h of 203 W.
    keeper.observe(KEY, 6_139_000 * WH, T0, max_power_w=5000)
    corrected = keeper.observe(KEY, 174_174 * WH, T0 + 7200, max_power_w=5000)
    assert corrected == pytest.approx(6_139_406 * WH, abs=WH)
    assert pytest.approx(174_174 * WH, abs=WH) == 6_139_406 * WH - 5 * WRAP_J
    assert counts(keeper) == {"wrap": 1}


def test_several_wraps_need_the_time_to_make_the_remainder_plausible(keeper: CounterKeeper) -> None:
    # The same fall one second later would mean 406 Wh in 1 s from a 5 kW system: not a wrap.
    keeper.observe(KEY, 6_139_000 * WH, T0, max_power_w=5000)
    assert keeper.observe(KEY, 174_174 * WH, T0 + 1, max_power_w=5000) == 6_139_000 * WH
    assert counts(keeper) == {"bogus": 1}


def test_a_remainder_of_weeks_is_not_read_as_a_wrap(keeper: CounterKeeper) -> None:
    # A month later at 100 kW anything is "plausible"; but a fall that would credit 500 kWh since
    # the last reading is more likely a reset gateway than a wrap: held, not invented.
    keeper.observe(KEY, kwh(1000), T0)
    raw = kwh(1000) + kwh(500) - WRAP_J
    assert keeper.observe(KEY, raw, T0 + 30 * 86400) == kwh(1000)
    assert counts(keeper) == {"bogus": 1}


# ---------------------------------------------------------------------------------------------
# Bogus readings and resets


def test_zeros_after_a_reboot_are_held_then_the_counter_catches_up(keeper: CounterKeeper) -> None:
    keeper.observe(KEY, kwh(8000), T0)
    for t in (60, 120, 180, 600):
        assert keeper.observe(KEY, 0.0, T0 + t) == kwh(8000)
    # Back with 1 kWh produced while the gateway read zeros: all of it counts.
    assert keeper.observe(KEY, kwh(8001), T0 + 660) == kwh(8001)
    assert counts(keeper) == {"bogus": 1}


def test_zeros_alone_never_become_a_reset(keeper: CounterKeeper) -> None:
    keeper.observe(KEY, kwh(8000), T0)
    for t in range(60, 4 * 3600, 300):
        assert keeper.observe(KEY, 0.0, T0 + t) == kwh(8000)
    assert keeper.observe(KEY, kwh(8002), T0 + 4 * 3600) == kwh(8002)
    assert counts(keeper) == {"bogus": 1}


def test_a_new_low_level_that_keeps_rising_is_a_reset(
    keeper: CounterKeeper, caplog: pytest.LogCaptureFixture
) -> None:
    # Replaced gateway: its counter starts again from almost nothing and rises 100 Wh a minute.
    keeper.observe(KEY, kwh(10_000), T0)
    with caplog.at_level(logging.WARNING, logger="envoy_exporter.snapshot.counters"):
        assert keeper.observe(KEY, 100 * WH, T0 + 60) == kwh(10_000)
        assert keeper.observe(KEY, 200 * WH, T0 + 120) == kwh(10_000)
        assert keeper.observe(KEY, 300 * WH, T0 + 180) == kwh(10_000)
        # Third rise from the new base: the level is real, and what it rose since counts.
        assert keeper.observe(KEY, 400 * WH, T0 + 240) == kwh(10_000) + 300 * WH
        assert keeper.observe(KEY, 500 * WH, T0 + 300) == kwh(10_000) + 400 * WH
    assert counts(keeper) == {"bogus": 1, "reset": 1}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "gw1/production/inverters" in warnings[0].getMessage()


def test_a_low_level_that_stays_beyond_the_hold_window_is_a_reset(keeper: CounterKeeper) -> None:
    keeper.observe(KEY, kwh(10_000), T0)
    for t in range(60, 1800, 300):
        assert keeper.observe(KEY, kwh(5), T0 + t) == kwh(10_000)
    assert keeper.observe(KEY, kwh(5), T0 + 60 + 1800) == kwh(10_000)
    assert keeper.observe(KEY, kwh(6), T0 + 2000) == kwh(10_001)
    assert counts(keeper) == {"bogus": 1, "reset": 1}


def test_an_erratic_low_reading_restarts_the_hold(keeper: CounterKeeper) -> None:
    keeper.observe(KEY, kwh(10_000), T0)
    keeper.observe(KEY, kwh(500), T0 + 60)
    keeper.observe(KEY, kwh(501), T0 + 120)
    keeper.observe(KEY, kwh(100), T0 + 180)  # not consistent with 500: a new candidate level
    keeper.observe(KEY, kwh(100.1), T0 + 240)
    keeper.observe(KEY, kwh(100.2), T0 + 300)
    assert keeper.observe(KEY, kwh(100.3), T0 + 360) == pytest.approx(kwh(10_000.3))
    assert counts(keeper) == {"bogus": 1, "reset": 1}


# ---------------------------------------------------------------------------------------------
# Implausible jumps


def test_a_phantom_jump_is_held_and_dropped_when_it_goes_away(keeper: CounterKeeper) -> None:
    keeper.observe(KEY, kwh(10_000), T0)
    assert keeper.observe(KEY, kwh(13_000), T0 + 60) == kwh(10_000)
    assert keeper.observe(KEY, kwh(10_000.1), T0 + 120) == kwh(10_000.1)
    assert counts(keeper) == {"jump": 1}


def test_a_phantom_jump_that_stays_becomes_the_level_without_the_phantom(
    keeper: CounterKeeper, caplog: pytest.LogCaptureFixture
) -> None:
    keeper.observe(KEY, kwh(10_000), T0)
    with caplog.at_level(logging.WARNING, logger="envoy_exporter.snapshot.counters"):
        assert keeper.observe(KEY, kwh(13_000), T0 + 60) == kwh(10_000)
        assert keeper.observe(KEY, kwh(13_000.1), T0 + 120) == kwh(10_000)
        assert keeper.observe(KEY, kwh(13_000.2), T0 + 180) == kwh(10_000)
        assert keeper.observe(KEY, kwh(13_000.3), T0 + 240) == pytest.approx(kwh(10_000.3))
        assert keeper.observe(KEY, kwh(13_001.3), T0 + 840) == pytest.approx(kwh(10_001.3))
    assert counts(keeper) == {"jump": 1}
    assert any("without the step" in r.getMessage() for r in caplog.records)


def test_the_exporter_being_down_allows_the_energy_of_the_gap(keeper: CounterKeeper) -> None:
    keeper.observe(KEY, kwh(10_000), T0, max_power_w=5000)
    # Down for a day: 30 kWh is a sunny day, not a jump.
    assert keeper.observe(KEY, kwh(10_030), T0 + 86400, max_power_w=5000) == kwh(10_030)
    assert counts(keeper) == {}


def test_max_power_tightens_the_bound(keeper: CounterKeeper) -> None:
    keeper.observe(KEY, kwh(10_000), T0, max_power_w=5000)
    # 50 kWh in one hour from a 5 kW system (x2 margin = 10 kWh)
    assert keeper.observe(KEY, kwh(10_050), T0 + 3600, max_power_w=5000) == kwh(10_000)
    assert counts(keeper) == {"jump": 1}


def test_corrections_list_every_kind_per_known_gateway(keeper: CounterKeeper) -> None:
    assert keeper.corrections() == {}
    keeper.observe(("gw2", "inverter", "121", ""), kwh(1), T0)
    keeper.observe(KEY, kwh(10_000), T0)
    keeper.observe(KEY, 0.0, T0 + 10)
    assert keeper.corrections() == {
        ("gw1", "wrap"): 0,
        ("gw1", "bogus"): 1,
        ("gw1", "reset"): 0,
        ("gw1", "jump"): 0,
        ("gw2", "wrap"): 0,
        ("gw2", "bogus"): 0,
        ("gw2", "reset"): 0,
        ("gw2", "jump"): 0,
    }
    # One gateway's, as each scrape reads them: every kind, a gateway never seen included.
    assert keeper.corrections_of("gw1") == {"wrap": 0, "bogus": 1, "reset": 0, "jump": 0}
    assert keeper.corrections_of("gw2") == {"wrap": 0, "bogus": 0, "reset": 0, "jump": 0}
    assert keeper.corrections_of("gw3") == {"wrap": 0, "bogus": 0, "reset": 0, "jump": 0}
    assert ("gw3", "wrap") not in keeper.corrections()


# ---------------------------------------------------------------------------------------------
# Persistence


def test_state_round_trip_gives_the_same_corrected_value(tmp_path: Path) -> None:
    path = tmp_path / "counters-gw1.json"
    first = CounterKeeper(path)
    first.observe(KEY, kwh(8100), T0)
    corrected = first.observe(KEY, kwh(8100.5) - WRAP_J, T0 + 600)
    first.save()

    second = CounterKeeper(path)
    assert second.observe(KEY, kwh(8100.5) - WRAP_J, T0 + 700) == corrected
    assert second.observe(KEY, kwh(8101.5) - WRAP_J, T0 + 1300) == pytest.approx(kwh(8101.5), abs=1.0)
    assert counts(second) == {}  # corrections are counted per process, like any counter


def test_a_hold_survives_a_restart_without_falling(tmp_path: Path) -> None:
    path = tmp_path / "counters-gw1.json"
    first = CounterKeeper(path)
    first.observe(KEY, kwh(8000), T0)
    first.observe(KEY, 0.0, T0 + 60)
    first.save()

    second = CounterKeeper(path)
    assert second.observe(KEY, 0.0, T0 + 120) == kwh(8000)
    assert second.observe(KEY, kwh(8000.2), T0 + 180) == kwh(8000.2)


def test_save_writes_mode_0600_atomically_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "counters-gw1.json"
    keeper = CounterKeeper(path)
    keeper.observe(KEY, kwh(1), T0)
    old_umask = os.umask(0o022)
    try:
        keeper.save()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    state = json.loads(path.read_text())
    assert state["version"] == 1
    assert state["series"][0]["key"] == list(KEY)


def test_save_skips_when_nothing_changed(tmp_path: Path) -> None:
    path = tmp_path / "counters-gw1.json"
    keeper = CounterKeeper(path)
    keeper.observe(KEY, kwh(1), T0)
    keeper.save()
    path.unlink()
    keeper.observe(KEY, kwh(1), T0 + 10)  # same level, only time passed
    keeper.save()
    assert not path.exists()
    keeper.observe(KEY, kwh(1.001), T0 + 20)
    keeper.save()
    assert path.exists()


def test_a_failed_save_warns_cleans_up_and_retries(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "counters-gw1.json"
    keeper = CounterKeeper(path)
    keeper.observe(KEY, kwh(1), T0)
    with mock.patch.object(state.os, "replace", side_effect=OSError("disk full")):
        keeper.save()
    assert "disk full" in caplog.text
    assert list(tmp_path.iterdir()) == []
    keeper.save()
    assert json.loads(path.read_text())["series"][0]["good"] == kwh(1)


def test_no_state_file_means_no_persistence(tmp_path: Path) -> None:
    keeper = CounterKeeper(None)
    keeper.observe(KEY, kwh(1), T0)
    keeper.save()
    assert list(tmp_path.iterdir()) == []


def test_a_missing_state_file_is_a_fresh_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="envoy_exporter.snapshot.counters"):
        keeper = CounterKeeper(tmp_path / "counters-gw1.json")
    assert keeper.observe(KEY, kwh(3), T0) == kwh(3)
    assert "starting fresh" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[]",
        b'{"version": 99, "series": []}',
        b'{"version": 1, "series": {}}',
        b'{"version": 1, "series": [{"key": "gw1"}]}',
        b'{"version": 1, "series": [{"key": ["gw1"], "raw": "12", "moved": 1, "offset": 0, '
        b'"good": 12, "hold": null}]}',
        b'{"version": 1, "series": [{"key": ["gw1"], "raw": 12, "moved": 1, "offset": 0, '
        b'"good": 12, "hold": {"kind": "odd", "base": 1, "since": 1, "raw": 1, "moved": 1, "rises": 0}}]}',
        b"\xff\xfe",
    ],
    ids=["truncated", "empty", "list", "version", "series", "key", "number", "hold", "binary"],
)
def test_a_corrupt_state_file_is_a_warning_moved_aside_and_a_fresh_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    path = tmp_path / "counters-gw1.json"
    path.write_bytes(body)
    keeper = CounterKeeper(path)
    assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == [logging.WARNING]
    assert "moved aside" in caplog.text
    assert keeper.observe(KEY, kwh(3), T0) == kwh(3)
    keeper.save()
    assert json.loads(path.read_text())["series"][0]["good"] == kwh(3)
    (aside,) = tmp_path.glob("counters-gw1.json.bad-*")
    assert aside.read_bytes() == body  # kept for a look, never overwritten


def test_state_path_is_one_safe_file_per_gateway(tmp_path: Path) -> None:
    assert state_path(tmp_path, "122300000001") == tmp_path / "counters-122300000001.json"
    assert state_path(tmp_path, "https://[fe80::1]/x") == tmp_path / "counters-https____fe80__1__x.json"


# ---------------------------------------------------------------------------------------------
# A whole snapshot


def _snapshot(
    at: float, production_j: float, phase_j: float, source: str = "inverters", grow: float = 0.0
) -> Snapshot:
    """A metered gateway's snapshot; ``grow`` kWh added to every other counter."""
    meter = MeterConfig(1, "net-consumption", "enabled", "split", 2, "normal")
    return Snapshot(
        collected_at=at,
        production_source=source,
        production=Flow(
            total=Reading(power_w=1500.0, lifetime_j=production_j, today_j=kwh(3)),
            phases={"L1": Reading(lifetime_j=phase_j), "L2": Reading(power_w=0.0)},
        ),
        consumption_total=Flow(
            total=Reading(lifetime_j=kwh(900 + grow)), phases={"L1": Reading(lifetime_j=kwh(450 + grow))}
        ),
        consumption_net=Flow(total=Reading(lifetime_j=-kwh(50 + grow))),
        meters=(
            Meter(
                config=meter,
                total=MeterChannel(eid=1, delivered_j=kwh(700 + grow), received_j=kwh(400 + grow)),
                phases={"L1": MeterChannel(eid=1, delivered_j=kwh(350 + grow), received_j=None)},
            ),
        ),
        inverters=(InverterReading(serial="482100000001", lifetime_j=kwh(600 + grow)),),
    )


def test_apply_corrects_every_lifetime_counter_and_keeps_the_raw_values(keeper: CounterKeeper) -> None:
    keeper.apply("gw1", _snapshot(T0, kwh(8100), kwh(4000)))
    raw = kwh(8100.5) - WRAP_J
    fresh = _snapshot(T0 + 600, raw, kwh(4000.25) - WRAP_J, grow=0.1)
    out = keeper.apply("gw1", fresh, max_power_w=6000)

    assert out.production.total.lifetime_j == pytest.approx(kwh(8100.5), abs=1.0)
    assert out.production.phases["L1"].lifetime_j == pytest.approx(kwh(4000.25), abs=1.0)
    assert out.production.phases["L2"].lifetime_j is None
    assert out.production.total.today_j == kwh(3)  # gauges as reported
    assert out.consumption_total.total.lifetime_j == kwh(900.1)
    assert out.consumption_net == fresh.consumption_net  # net is a gauge: it may fall
    assert out.meters[0].total.delivered_j == kwh(700.1)
    assert out.inverters[0].lifetime_j == kwh(600.1)
    assert fresh.production.total.lifetime_j == raw  # the input is left alone
    assert set(out.reported) == {
        Reported("production", "inverters", "", raw),
        Reported("production", "inverters", "L1", kwh(4000.25) - WRAP_J),
        Reported("consumption", "total", "", kwh(900.1)),
        Reported("consumption", "total", "L1", kwh(450.1)),
        Reported("meter_delivered", "net-consumption", "", kwh(700.1)),
        Reported("meter_received", "net-consumption", "", kwh(400.1)),
        Reported("meter_delivered", "net-consumption", "L1", kwh(350.1)),
        Reported("inverter", "482100000001", "", kwh(600.1)),
    }
    assert counts(keeper) == {"wrap": 2}


def test_apply_holds_a_phantom_per_series(keeper: CounterKeeper) -> None:
    keeper.apply("gw1", _snapshot(T0, kwh(8100), kwh(4000)))
    out = keeper.apply("gw1", _snapshot(T0 + 60, kwh(11_100), kwh(4000)), max_power_w=6000)
    assert out.production.total.lifetime_j == kwh(8100)
    assert Reported("production", "inverters", "", kwh(11_100)) in out.reported
    assert counts(keeper) == {"jump": 1}


def test_apply_uses_a_per_inverter_bound(keeper: CounterKeeper) -> None:
    keeper.apply("gw1", _snapshot(T0, kwh(8100), kwh(4000)))
    # 5 kWh in an hour is fine for the house, not for one microinverter
    out = keeper.apply("gw1", _snapshot(T0 + 3600, kwh(8100), kwh(4000), grow=5))
    assert out.consumption_total.total.lifetime_j == kwh(905)
    assert out.inverters[0].lifetime_j == kwh(600)
    assert counts(keeper) == {"jump": 1}


def test_a_source_switch_starts_a_new_series(keeper: CounterKeeper) -> None:
    keeper.apply("gw1", _snapshot(T0, kwh(8100), kwh(4000)))
    out = keeper.apply("gw1", _snapshot(T0 + 60, kwh(14_000), kwh(7000), source="meter"))
    assert out.production.total.lifetime_j == kwh(14_000)
    assert Reported("production", "meter", "", kwh(14_000)) in out.reported
    assert counts(keeper) == {}


def test_apply_on_a_corrected_snapshot_changes_nothing(keeper: CounterKeeper) -> None:
    keeper.apply("gw1", _snapshot(T0, kwh(8100), kwh(4000)))
    out = keeper.apply("gw1", _snapshot(T0 + 600, kwh(8100.5) - WRAP_J, kwh(4000)))
    assert keeper.apply("gw1", out) is out
    assert counts(keeper) == {"wrap": 1}


def test_apply_to_an_empty_snapshot(keeper: CounterKeeper) -> None:
    empty = Snapshot(collected_at=T0)
    assert keeper.apply("gw1", empty) == empty


# ---------------------------------------------------------------------------------------------
# Properties: random true production with injected wraps, zeros, phantoms and restarts

MAX_POWER_W = 5000.0
READ, ZERO, WRAP, SPIKE, RESTART = "read", "zero", "wrap", "spike", "restart"

steps = st.lists(
    st.tuples(
        st.floats(1.0, 1800.0),  # seconds since the last collection
        st.floats(0.0, 1.0),  # share of the maximum power produced meanwhile
        st.sampled_from([READ, READ, ZERO, WRAP, SPIKE, RESTART]),
    ),
    max_size=40,
)


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One directory for all examples: creating and removing one per example costs more than the test.
    return tmp_path_factory.mktemp("counters")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    modulo=st.booleans(),
    wraps_before=st.integers(0, 5),
    to_next_wrap=st.floats(0.0, kwh(50)),
    script=steps,
)
def test_the_exported_counter_never_falls_and_follows_true_production(
    state_dir: Path,
    modulo: bool,
    wraps_before: int,
    to_next_wrap: float,
    script: list[tuple[float, float, str]],
) -> None:
    """Two ways a gateway loses 2^32 J: a counter that is true production modulo 2^32 J (``modulo``),
    or one that falls by 2^32 J now and then from any value (``WRAP`` events)."""
    true = (wraps_before + 1) * WRAP_J - to_next_wrap
    lost = 0  # wraps injected so far (not modulo)
    now = T0
    last_spike = False
    path = state_dir / "counters-gw1.json"
    for old in state_dir.iterdir():
        old.unlink()
    with mock.patch.object(state.os, "fsync"):
        keeper = CounterKeeper(path)
        exported: float | None = None
        start: tuple[float, float] | None = None  # (exported, true) at the first value
        for elapsed, share, event in script:
            now += elapsed
            true += MAX_POWER_W * share * elapsed
            if event == WRAP and not modulo and true - (lost + 1) * WRAP_J > 0:
                lost += 1
            raw = true % WRAP_J if modulo else true - lost * WRAP_J
            if event == ZERO:
                raw = 0.0
            # A phantom in the very first reading cannot be told; two in a row look like a level.
            spike = event == SPIKE and exported is not None and not last_spike
            if spike:
                raw += kwh(3000)
            last_spike = spike
            if event == RESTART:
                # The integrator saves after every collection; saving only before the restart
                # leaves the same file and keeps the property fast.
                keeper.save()
                keeper = CounterKeeper(path)

            value = keeper.observe(KEY, raw, now, max_power_w=MAX_POWER_W)

            if start is None and raw == 0.0:
                assert value == 0.0  # zeros before any history: exported as said, not a baseline
                continue
            if start is None:
                start = (value, true)
            if exported is not None:
                assert value >= exported  # never falls
            if raw == 0.0 or spike:
                assert value == exported  # held at the last good value
            else:
                assert value == pytest.approx(start[0] + (true - start[1]), abs=WH)  # caught up
            exported = value
    assert keeper.corrections().get(("gw1", "reset"), 0) == 0


@settings(max_examples=100, deadline=None)
@given(
    first=st.floats(1.0, 40 * WRAP_J),
    rest=st.lists(st.tuples(st.floats(0.0, 7200.0), st.floats(0.0, 40 * WRAP_J)), max_size=30),
)
def test_whatever_the_gateway_says_the_counter_never_falls(
    first: float, rest: list[tuple[float, float]]
) -> None:
    keeper = CounterKeeper(None)
    now = T0
    exported = keeper.observe(KEY, first, now)
    for elapsed, raw in rest:
        now += elapsed
        value = keeper.observe(KEY, raw, now)
        assert value is not None and value >= exported
        exported = value


def test_inverters_total_that_is_the_production_reading_is_kept_once(keeper: CounterKeeper) -> None:
    first = _snapshot(T0, kwh(8100), kwh(4000))
    keeper.apply("gw1", replace(first, inverters_total=first.production.total))
    fresh = _snapshot(T0 + 600, kwh(8100.5) - WRAP_J, kwh(4000))
    out = keeper.apply("gw1", replace(fresh, inverters_total=fresh.production.total))
    assert (
        out.inverters_total.lifetime_j == out.production.total.lifetime_j == pytest.approx(kwh(8100.5), abs=1)
    )
    assert counts(keeper) == {"wrap": 1}  # one correction, not one per family
    assert not any(r.kind == "inverters_total" for r in out.reported)


def test_inverters_total_beside_the_ct_is_a_counter_of_its_own(keeper: CounterKeeper) -> None:
    def with_inverters(t: float, lifetime: float) -> Snapshot:
        return replace(
            _snapshot(t, kwh(8100), kwh(4000), source="meter"),
            inverters_total=Reading(power_w=2400.0, lifetime_j=lifetime),
        )

    keeper.apply("gw1", with_inverters(T0, kwh(5000)))
    out = keeper.apply("gw1", with_inverters(T0 + 600, kwh(5000.3) - WRAP_J))  # a 2^32 J wrap
    assert out.inverters_total.lifetime_j == pytest.approx(kwh(5000.3), abs=1)
    assert out.inverters_total.power_w == 2400.0
    assert Reported("inverters_total", "", "", kwh(5000.3) - WRAP_J) in out.reported


def test_inverters_reporting_new_serials_all_the_time_do_not_grow_the_state_without_end(
    tmp_path: Path,
) -> None:
    # A series per serial ever seen: a gateway that reports hundreds of new inverter serials at
    # every collection grew the keeper and its state file by as many series a minute, for ever
    # (and past the 16 MiB read bound, the state of the real series was moved aside too).
    path = tmp_path / "counters-gw1.json"
    keeper = CounterKeeper(path)
    real = ("gw1", "inverter", "900000000001", "")
    for minute in range(8):
        now = T0 + 60 * minute
        keeper.observe(real, kwh(100) + 100.0 * minute, now, 1000.0)
        for n in range(400):
            keeper.observe(("gw1", "inverter", f"8{minute:03}{n:08}", ""), kwh(5), now, 1000.0)
    keeper.save()
    series = json.loads(path.read_text())["series"]
    assert len(series) <= 2_000
    assert list(real) in [s["key"] for s in series]  # the one still rising is kept
    assert ["gw1", "inverter", "800700000399", ""] in [s["key"] for s in series]  # and the newest


def test_microinverters_handed_back_unchanged_cost_no_counter_work(keeper: CounterKeeper) -> None:
    # Between two of their five-minute reports a collection hands back the very readings it had
    # (from the cache): nothing moved, and the corrected readings of last time are the answer.
    inverters = tuple(
        InverterReading(serial=f"4821000000{n:02d}", lifetime_j=kwh(600 + n)) for n in range(30)
    )
    first = keeper.apply("gw1", replace(_snapshot(T0, kwh(8100), kwh(4000)), inverters=inverters))
    with mock.patch.object(keeper, "observe", wraps=keeper.observe) as observe:
        again = keeper.apply("gw1", replace(_snapshot(T0 + 10, kwh(8100), kwh(4000)), inverters=inverters))
    asked = {call.args[0][1] for call in observe.call_args_list}
    assert "inverter" not in asked  # the energy flows are still corrected, the inverters not again
    assert again.inverters is first.inverters
    assert [r for r in again.reported if r.kind == "inverter"] == [
        r for r in first.reported if r.kind == "inverter"
    ]


def test_readings_nothing_corrected_are_handed_on_not_copied(keeper: CounterKeeper) -> None:
    inverters = (InverterReading(serial="482100000001", lifetime_j=kwh(600)),)
    raw = replace(_snapshot(T0, kwh(8100), kwh(4000)), inverters=inverters)
    corrected = keeper.apply("gw1", raw)
    assert corrected.inverters[0] is raw.inverters[0]
    assert corrected.production is not None and raw.production is not None
    assert corrected.production.total is raw.production.total
    # A wrapped counter is corrected in a copy; the raw reading stays as the gateway gave it.
    wrapped = keeper.apply(
        "gw1",
        replace(_snapshot(T0 + 10, kwh(8100), kwh(4000)), inverters=(replace(inverters[0], lifetime_j=0.0),)),
    )
    assert wrapped.inverters[0].lifetime_j == kwh(600)


def test_an_unchanged_microinverter_that_is_holding_is_still_settled_by_time(keeper: CounterKeeper) -> None:
    # A held reading becomes the level after HOLD_WINDOW_S even when it never changes again:
    # readings handed back unchanged must still be looked at while a series holds one.
    keeper.apply(
        "gw1",
        replace(
            _snapshot(T0, kwh(8100), kwh(4000)),
            inverters=(InverterReading(serial="482100000001", lifetime_j=kwh(600)),),
        ),
    )
    low = (InverterReading(serial="482100000001", lifetime_j=kwh(100)),)
    held = keeper.apply("gw1", replace(_snapshot(T0 + 60, kwh(8100), kwh(4000)), inverters=low))
    assert held.inverters[0].lifetime_j == kwh(600)  # a fall: held
    later = keeper.apply("gw1", replace(_snapshot(T0 + 60 + 2 * 3600, kwh(8100), kwh(4000)), inverters=low))
    assert later.inverters[0].lifetime_j == kwh(600)  # the level kept, now continuing from 100 kWh
    assert counts(keeper).get("reset") == 1
