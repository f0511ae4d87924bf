"""``model.evolve``: ``dataclasses.replace`` for the model's frozen, slotted dataclasses."""

from __future__ import annotations

import dataclasses

import pytest

from envoy_exporter.snapshot.model import (
    EndpointResult,
    Flow,
    Money,
    Reading,
    Snapshot,
    evolve,
)
from envoy_exporter.snapshot.outcome import Outcome

READING = Reading(power_w=1500.0, lifetime_j=3.6e9, today_j=-0.0, voltage_v=240.1)
SNAPSHOT = Snapshot(
    collected_at=1_700_000_000.0,
    production_source="meter",
    production=Flow(READING, {"L1": READING}),
    endpoints={"info": EndpointResult(Outcome.CACHED, age_s=12.0)},
    partial=True,
)


@pytest.mark.parametrize(
    ("obj", "changes"),
    [
        (READING, {"lifetime_j": 3.7e9}),
        (READING, {"power_w": None, "today_j": 0.0}),
        (SNAPSHOT, {"partial": False}),
        (SNAPSHOT, {"money": Money(currency="EUR", import_cost=1.5), "reported": ()}),
        (Money(currency="EUR"), {"import_cost": 2.25, "export_credit": 0.5}),
    ],
)
def test_evolve_makes_what_replace_makes(obj, changes):
    made = evolve(obj, **changes)
    assert type(made) is type(obj)
    assert made == dataclasses.replace(obj, **changes)
    for name, value in changes.items():
        assert getattr(made, name) is value
    # Every other field is the very object the original holds, and the original is unchanged.
    for field in dataclasses.fields(obj):
        if field.name not in changes:
            assert getattr(made, field.name) is getattr(obj, field.name)
    assert obj == dataclasses.replace(obj)


def test_evolve_keeps_the_copy_frozen():
    made = evolve(READING, power_w=2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.power_w = 3.0  # type: ignore[misc]


def test_evolve_refuses_a_field_the_class_does_not_have():
    with pytest.raises(TypeError, match="Reading has no field 'power'"):
        evolve(READING, power=1.0)
