"""Lasting troubles are logged when they start and when they end, with how long they lasted."""

from __future__ import annotations

import logging

import pytest
from conftest import Clock

from envoy_exporter.logs import Condition, duration

log = logging.getLogger("envoy_exporter.test_conditions")


def test_a_condition_is_told_once_then_its_end_with_how_long(caplog):
    clock = Clock()
    gone = Condition(log, clock=clock)
    with caplog.at_level(logging.DEBUG, logger=log.name):
        for _ in range(20):
            gone.failed("gone: connection refused")
            clock.now += 1
        gone.recovered("gone: answers again")
        gone.recovered("gone: answers again")  # over already: nothing more
    told = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert told == [
        (logging.WARNING, "gone: connection refused"),
        (logging.INFO, "gone: answers again (after 20 s)"),
    ]


def test_another_cause_is_told_but_the_trouble_keeps_its_start(caplog):
    clock = Clock()
    gone = Condition(log, clock=clock)
    with caplog.at_level(logging.INFO, logger=log.name):
        gone.failed("gone: connection refused")
        clock.now += 200
        gone.failed("gone: timed out after 10 s")
        clock.now += 100
        gone.recovered("gone: answers again")
    assert [r.getMessage() for r in caplog.records] == [
        "gone: connection refused",
        "gone: timed out after 10 s",
        "gone: answers again (after 5 min)",
    ]


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.4, "0 s"),
        (45, "45 s"),
        (60, "1 min"),
        (200, "3 min 20 s"),
        (7500, "2 h 5 min"),
        (273600, "3 d 4 h"),
    ],
)
def test_duration(seconds, words):
    assert duration(seconds) == words
