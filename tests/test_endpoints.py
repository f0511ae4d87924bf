"""The endpoint catalogue: each row holds everything the exporter knows of one endpoint, and a
collection's readings are filled through it, typed."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace

import pytest

from envoy_exporter.config.settings import DEFAULT_CACHE_TTL
from envoy_exporter.gateway.endpoints import BY_KEY, CATALOGUE, INFO, METERS, PRODUCTION_JSON
from envoy_exporter.snapshot.model import (
    EimSection,
    GatewayInfo,
    MeterConfig,
    ProductionJson,
    Reading,
    Readings,
)


def test_each_row_is_whole() -> None:
    assert len(BY_KEY) == len(CATALOGUE) and CATALOGUE[0] is INFO
    for endpoint in CATALOGUE:
        assert endpoint.paths and all(path.startswith("/") for path in endpoint.paths), endpoint.key
        assert endpoint.family in DEFAULT_CACHE_TTL, endpoint.key
        assert endpoint.left_out, endpoint.key
    assert PRODUCTION_JSON.paths == ("/production.json?details=1", "/production.json")


def test_an_answer_fills_the_field_its_key_names_and_nothing_else() -> None:
    info = GatewayInfo(serial="900000000001", firmware="D8.2.4345", metered=True)
    before = Readings()
    after = before.with_answer(INFO, info)
    assert after.info is info and before.info is None
    assert after == Readings(info=info)
    with pytest.raises(FrozenInstanceError):
        after.info = None  # type: ignore[misc]


def test_an_answer_makes_readings_that_work_out_the_production_ct_afresh() -> None:
    readings = Readings(production_json=ProductionJson(production=eim(1)))
    assert readings.production_ct is not None
    disabled = readings.with_answer(METERS, (meter(False),))
    assert disabled.production_ct is None and readings.production_ct is not None
    assert disabled == Readings(production_json=readings.production_json, meters=(meter(False),))
    with pytest.raises(TypeError):
        readings.with_answer(replace(METERS, key="no_such_field"), ())


def eim(active: int) -> EimSection:
    return EimSection(
        measurement_type="production", active_count=active, reading_time=None, total=Reading(500.0)
    )


def meter(enabled: bool) -> MeterConfig:
    state = "enabled" if enabled else "disabled"
    return MeterConfig(1, "production", state, phase_mode=None, phase_count=1, metering_status=None)


@pytest.mark.parametrize(
    ("production", "meters", "live"),
    [
        (eim(1), None, True),
        (eim(1), (meter(True),), True),
        (eim(1), (meter(False),), False),  # the CT /ivp/meters calls disabled
        (eim(0), (meter(True),), False),  # activeCount 0: a metered gateway without its CT
    ],
)
def test_the_production_ct_is_live_only_while_it_measures(production, meters, live) -> None:
    readings = Readings(production_json=ProductionJson(production=production))
    readings = readings if meters is None else readings.with_answer(METERS, meters)
    assert (readings.production_ct is production) == live
    assert (readings.production_ct is None) == (not live)
