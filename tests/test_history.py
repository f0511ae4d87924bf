"""The power history behind the status page's chart: one point per 30 s bucket, the last hour
only, bounded whatever the scrape interval."""

from __future__ import annotations

import pytest

from envoy_exporter.config.settings import GatewaySettings, Secret
from envoy_exporter.demo import start_demo
from envoy_exporter.gateway.client import GatewayClient
from envoy_exporter.snapshot.history import BUCKET_S, SPAN_S, Point, PowerHistory

T0 = 1_750_000_020.0  # the start of a bucket


def test_a_bucket_keeps_its_newest_reading():
    history = PowerHistory()
    history.add(T0, 100.0, 50.0)
    history.add(T0 + 10, 120.0, None)
    history.add(T0 + BUCKET_S, 130.0, 60.0)
    assert history.points(T0 + 40) == [Point(T0 + 10, 120.0, None), Point(T0 + BUCKET_S, 130.0, 60.0)]


def test_only_the_last_hour_is_kept_and_shown():
    history = PowerHistory()
    for second in range(0, 3 * 3600, 5):  # three hours of 5 s scrapes
        history.add(T0 + second, float(second), 1.0)
    now = T0 + 3 * 3600
    points = history.points(now)
    assert len(points) == SPAN_S / BUCKET_S
    assert all(now - p.at <= SPAN_S for p in points)
    assert len(history._at) == SPAN_S / BUCKET_S  # bounded: no more held than shown


def test_an_hour_of_a_gateway_is_held_in_under_one_and_a_half_kilobytes():
    history = PowerHistory()
    for second in range(0, 2 * 3600, 15):
        history.add(T0 + second + 0.25, 3421.5, 812.25)
    held = sum(column.itemsize * len(column) for column in history._columns())
    assert held <= 1440
    assert history.points(T0 + 2 * 3600)[-1] == Point(T0 + 2 * 3600 - 15, 3421.5, 812.25)


def test_a_clock_no_chart_can_show_adds_nothing():
    history = PowerHistory()
    history.add(-5.0, 1.0, 1.0)
    history.add(2.0**32, 1.0, 1.0)
    assert history.points(T0) == []


def test_an_older_snapshot_shown_again_adds_nothing():
    history = PowerHistory()
    history.add(T0 + 100, 5.0, 5.0)
    history.add(T0, 1.0, 1.0)
    assert history.points(T0 + 200) == [Point(T0 + 100, 5.0, 5.0)]


@pytest.mark.e2e
def test_the_client_feeds_it_with_each_fresh_collection():
    demo = start_demo()
    client = GatewayClient(GatewaySettings(name="demo", host=demo.url, token=Secret(demo.token)), None)
    try:
        snapshot = client.collect(timeout=10)
    finally:
        client.close()
        demo.stop()
    (point,) = client.history.points(snapshot.collected_at + 1)
    assert point.production_w == pytest.approx(snapshot.production.total.power_w, rel=1e-6)
    assert point.consumption_w == pytest.approx(snapshot.consumption_total.total.power_w, rel=1e-6)
