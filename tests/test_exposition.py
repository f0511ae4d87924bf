"""The exposition joined from pieces rendered apart is the one a single rendering gives, and valid.

Each gateway's data is rendered once per snapshot and the per-scrape series on every scrape; the
pieces are joined per family. These tests hold the joined bytes against prometheus-client's own
rendering of all the families at once, parse them with its parsers, and, where promtool is
installed, run ``promtool check metrics`` on them.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

import pytest
from exporter_fakes import NOW, FakeClient, rich_snapshot, samples, value
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from envoy_exporter.collector import ExporterCollector, GatewayCollector, exposition
from envoy_exporter.collector import scrape as scrape_module
from envoy_exporter.collector.data import add_snapshot
from envoy_exporter.collector.exposition import SnapshotCache, join, render
from envoy_exporter.collector.families import Families
from envoy_exporter.config.settings import GatewaySettings
from envoy_exporter.fleet.registry import Fleet
from envoy_exporter.snapshot.model import Reading
from envoy_exporter.web.server import make_server

TEXT = "text/plain;version=0.0.4"
OPENMETRICS = "application/openmetrics-text;version=1.0.0"
# Label values that need escaping, and a non-ASCII one.
GATEWAYS = ("garage", 'bar"n\\', "line\nbreak", "Gäste")


def health(gateway: str, age: float) -> list[Metric]:
    up = GaugeMetricFamily("enphase_up", "1 if fresh", labels=["gateway"])
    up.add_metric([gateway], 1)
    data_age = GaugeMetricFamily("enphase_data_age_seconds", "Age of the data", labels=["gateway"])
    data_age.add_metric([gateway], age)
    requests = CounterMetricFamily(
        "enphase_gateway_requests", "Requests\nsent \\ counted", labels=["gateway", "endpoint", "code"]
    )
    requests.add_metric([gateway, "info", "200"], 3)
    requests.add_metric([gateway, "meter_readings", "timeout"], 1)
    return [up, data_age, requests]


def data(gateway: str) -> list[Metric]:
    power = GaugeMetricFamily("enphase_production_power_watts", "Power now", labels=["gateway"])
    power.add_metric([gateway], 1234.5)
    energy = CounterMetricFamily("enphase_production_energy_joules", "Energy", labels=["gateway"])
    energy.add_metric([gateway], 1.8e10)
    phase = GaugeMetricFamily(
        "enphase_production_phase_power_watts", "Per phase", labels=["gateway", "phase"]
    )
    for n, name in enumerate(("L1", "L2", "L3")):
        phase.add_metric([gateway, name], 400.0 + n)
    return [power, energy, phase]


def merged(gateways: tuple[str, ...], age: float) -> list[Metric]:
    """Every gateway's families merged by name, as one collector would yield them."""
    families: dict[str, Metric] = {}
    for gateway in gateways:
        for family in health(gateway, age) + data(gateway):
            target = families.setdefault(family.name, _empty_like(family))
            target.samples.extend(family.samples)
    return list(families.values())


def _empty_like(family: Metric) -> Metric:
    return Metric(family.name, family.documentation, family.type)


def pieces(gateways: tuple[str, ...], age: float, encoder, content_type: str) -> list:
    parts = []
    for gateway in gateways:
        parts.append(render(encoder, content_type, health(gateway, age)))
        parts.append(render(encoder, content_type, data(gateway)))
    return parts


class _All:
    def __init__(self, families: list[Metric]):
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


@pytest.mark.parametrize("accept", [TEXT, OPENMETRICS])
def test_joined_pieces_equal_one_rendering_of_everything(accept):
    encoder, content_type = choose_encoder(accept)
    joined = join(pieces(GATEWAYS, 2.5, encoder, content_type), content_type)
    assert joined == encoder(_All(merged(GATEWAYS, 2.5)))


def test_text_has_each_family_once_with_every_gateway():
    encoder, content_type = choose_encoder(TEXT)
    text = join(pieces(GATEWAYS, 2.5, encoder, content_type), content_type).decode()
    families = {f.name: f for f in parse_text(text)}
    assert sorted(families) == sorted(f.name for f in merged(GATEWAYS, 0))
    assert text.count("# TYPE enphase_up gauge") == 1
    assert {s.labels["gateway"] for s in families["enphase_up"].samples} == set(GATEWAYS)
    requests = families["enphase_gateway_requests"].samples
    assert {(s.labels["gateway"], s.labels["code"], s.value) for s in requests} >= {
        ('bar"n\\', "timeout", 1.0)
    }
    phases = families["enphase_production_phase_power_watts"].samples
    guest = {s.labels["phase"]: s.value for s in phases if s.labels["gateway"] == "Gäste"}
    assert guest == {"L1": 400.0, "L2": 401.0, "L3": 402.0}


def test_openmetrics_parses_and_ends_with_one_eof():
    encoder, content_type = choose_encoder(OPENMETRICS)
    text = join(pieces(GATEWAYS, 2.5, encoder, content_type), content_type).decode()
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    families = {f.name: f for f in parse_openmetrics(text)}
    energy = families["enphase_production_energy_joules"]
    assert energy.type == "counter"
    assert {s.labels["gateway"]: s.value for s in energy.samples} == dict.fromkeys(GATEWAYS, 1.8e10)


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_joined_exposition():
    # promtool reads the Prometheus text format (OpenMetrics is held to its parser above).
    encoder, content_type = choose_encoder(TEXT)
    body = join(pieces(GATEWAYS, 2.5, encoder, content_type), content_type)
    checked = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


class Snap:
    """A stand-in snapshot: the cache only compares identities."""


def test_the_cache_renders_a_snapshot_once_per_format():
    cache, owner, built = SnapshotCache(), Snap(), []

    def families():
        built.append(1)
        return data("garage")

    first = Snap()
    text_encoder, text_type = choose_encoder(TEXT)
    om_encoder, om_type = choose_encoder(OPENMETRICS)
    a = cache.groups(owner, first, "garage", text_type, text_encoder, families)
    b = cache.groups(owner, first, "garage", text_type, text_encoder, families)
    assert a is b and len(built) == 1
    cache.groups(owner, first, "garage", om_type, om_encoder, families)
    assert len(built) == 2  # another format, rendered once too
    cache.groups(owner, first, "garage", om_type, om_encoder, families)
    assert len(built) == 2
    c = cache.groups(owner, Snap(), "garage", text_type, text_encoder, families)
    assert len(built) == 3 and c == a and c is not a  # a new snapshot is rendered anew
    same = cache.groups(owner, first, "garage", text_type, text_encoder, families)
    assert len(built) == 4 and same == a  # only the latest snapshot is kept
    cache.groups(owner, first, "999012345678", text_type, text_encoder, families)
    assert len(built) == 5  # the label changed (an unnamed gateway told its serial)


def test_the_cache_drops_what_no_scrape_took_for_a_while():
    clock = [100.0]
    cache = SnapshotCache(keep=15.0, clock=lambda: clock[0])
    encoder, content_type = choose_encoder(TEXT)
    busy, idle, snapshot, built = Snap(), Snap(), Snap(), []

    def families():
        built.append(1)
        return data("garage")

    cache.groups(idle, Snap(), "idle", content_type, encoder, families)
    for _ in range(3):
        clock[0] += 10
        cache.groups(busy, snapshot, "busy", content_type, encoder, families)
    assert len(built) == 2  # the busy gateway's rendering was taken three times, rendered once
    assert idle not in cache._entries and busy in cache._entries


def test_the_cache_forgets_a_dropped_gateway():
    cache, owner = SnapshotCache(), Snap()
    encoder, content_type = choose_encoder(TEXT)
    cache.groups(owner, Snap(), "garage", content_type, encoder, lambda: data("garage"))
    assert len(cache._entries) == 1
    del owner
    assert len(cache._entries) == 0


# ------------------------------------------------------------------------------------------------
# The quick rendering: byte for byte the library's

ACCEPTS = (
    "",  # curl
    TEXT,
    OPENMETRICS,
    "application/openmetrics-text",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    # Prometheus 2.x
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    # left to the library: other escapings and versions
    "text/plain;version=1.0.0;escaping=dots",
    "application/openmetrics-text;version=1.0.0;escaping=values",
)
VALUES = (
    0.0,
    -0.0,
    1.0,
    -2.5,
    1e-7,
    123456.0,
    1234567.0,
    1.8e10,
    2**53 + 1,
    1e300,
    math.inf,
    -math.inf,
    math.nan,
)


def odd_families() -> list[Metric]:
    """Everything the quick path must write exactly like the library, and what it must leave to it."""
    doc = GaugeMetricFamily("odd_doc", 'Help with "quotes", a \\ backslash\nand a newline')
    doc.add_metric([], 1)
    values = GaugeMetricFamily("odd_values", "Values", labels=["n"])
    for n, v in enumerate(VALUES):
        values.add_metric([str(n)], v)
    labels = CounterMetricFamily("odd_labels", "Labels", labels=["z", "a", "m_1"])
    for text in ("plain", 'q"uote', "back\\slash", "new\nline", "Gäste ☀", ""):
        labels.add_metric([text, "x", "y"], 3)
    empty = GaugeMetricFamily("odd_empty", "No samples at all")
    info = InfoMetricFamily("odd_build", "An info family", value={"version": "1.0"})
    unit = GaugeMetricFamily("odd_seconds", "With a unit", unit="seconds")
    unit.add_metric([], 2)
    stamped = GaugeMetricFamily("odd_stamped", "With a timestamp", labels=["g"])
    stamped.add_metric(["a"], 1, timestamp=1_750_000_000.5)
    created = CounterMetricFamily(
        "odd_created", "A counter with _created", labels=["g"], created=1_700_000_000
    )
    created.add_metric(["a"], 4, created=1_700_000_000)
    return [doc, values, labels, empty, info, unit, stamped, created]


@pytest.mark.parametrize("accept", ACCEPTS)
def test_rendering_is_byte_for_byte_the_librarys(accept):
    encoder, content_type = choose_encoder(accept)
    families = odd_families() + data("Gäste") + health('bar"n\\', 1.5)
    assert join([render(encoder, content_type, families)], content_type) == encoder(_All(families))


@pytest.mark.parametrize("accept", ACCEPTS)
def test_a_real_scrape_renders_byte_for_byte_as_the_library(accept):
    encoder, content_type = choose_encoder(accept)
    scrape = GatewayCollector(clients(), 2.0, wall=lambda: NOW)
    families = list(scrape.collect()) + list(ExporterCollector().collect())
    assert join([render(encoder, content_type, families)], content_type) == encoder(_All(families))


@pytest.mark.parametrize("accept", ACCEPTS)
def test_the_collectors_families_render_byte_for_byte_as_the_library(accept):
    families = Families()
    for n, v in enumerate(VALUES):
        families.gauge("odd_values", 'Values "quoted" \\ and\nbroken', {"z": str(n), "a": "x"}, v)
    for text in ("plain", 'q"uote', "back\\slash", "new\nline", "Gäste ☀", ""):
        families.counter("odd_labels", "Labels", {"gateway": text, "endpoint": "info", "code": "200"}, 3)
    families.gauge("odd_bare", "No labels", {}, True)
    encoder, content_type = choose_encoder(accept)
    rendered = join([render(encoder, content_type, families.tables())], content_type)
    assert rendered == encoder(_All(list(families)))


def test_the_usual_content_types_take_the_quick_path(monkeypatch):
    called = []
    monkeypatch.setattr(exposition, "_library", lambda *args: called.append(args) or [])
    for accept in ACCEPTS[:6]:
        encoder, content_type = choose_encoder(accept)
        render(encoder, content_type, odd_families()[:4] + data("garage") + health("garage", 1.0))
        scrape = GatewayCollector(clients(), 2.0, wall=lambda: NOW)
        scrape.exposition(encoder, content_type, SnapshotCache())
    assert called == []


# ------------------------------------------------------------------------------------------------
# Through the collector and the web server


def clients() -> list[FakeClient]:
    barn = replace(rich_snapshot(), production_source="inverters")
    return [
        FakeClient("home", requests={("info", "200"): 2}),
        FakeClient("barn", snapshot=barn),
        FakeClient('shed "north"\\2', requests={("meter_readings", "timeout"): 1}),
    ]


@pytest.mark.parametrize("accept", ACCEPTS)
def test_a_scrape_rendered_in_pieces_is_the_collectors_own_rendering(accept):
    encoder, content_type = choose_encoder(accept)
    scrape = GatewayCollector(clients(), 2.0, wall=lambda: NOW)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(scrape)
    registry.register(ExporterCollector())
    parts = scrape.exposition(encoder, content_type, SnapshotCache())
    parts.append(render(encoder, content_type, ExporterCollector().collect()))
    assert join(parts, content_type) == encoder(registry)


@pytest.fixture
def served(monkeypatch) -> Iterator[tuple[str, list[FakeClient], list[str]]]:
    """The web server over ``clients()``; the third list names the gateway of every rendering of
    data series."""
    rendered: list[str] = []

    def counted(families, gateway, snapshot):
        rendered.append(gateway)
        add_snapshot(families, gateway, snapshot)

    monkeypatch.setattr(scrape_module, "add_snapshot", counted)
    fakes = clients()
    by_name = {c.name: c for c in fakes}
    fleet = Fleet(
        [GatewaySettings(name=c.name, host="http://gateway.example") for c in fakes],
        lambda s: by_name[s.name],
    )
    server = make_server("127.0.0.1:0", fleet)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    server.ready.set()
    yield server.url, fakes, rendered
    server.shutdown()
    server.server_close()


def get(url: str, accept: str = TEXT) -> str:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


@pytest.mark.e2e
def test_data_is_rendered_once_per_snapshot_and_health_on_every_scrape(served):
    url, fakes, rendered = served
    first = get(url + "/metrics")
    assert sorted(rendered) == sorted(c.name for c in fakes)
    second = get(url + "/metrics")
    get(url + "/probe?target=home")
    assert len(rendered) == len(fakes)  # the same snapshots: nothing rendered again
    ages = [value(samples(text), "enphase_data_age_seconds", gateway="home") for text in (first, second)]
    assert 0 < ages[0] < ages[1]  # the per-scrape series move on
    home = fakes[0]
    home.snapshot = replace(
        home.snapshot, production=replace(home.snapshot.production, total=Reading(power_w=42.0))
    )
    third = get(url + "/metrics")
    assert rendered[len(fakes) :] == ["home"]  # only the gateway with a new snapshot
    assert value(samples(third), "enphase_production_power_watts", gateway="home", source="meter") == 42.0
    assert (
        value(samples(third), "enphase_production_power_watts", gateway="barn", source="inverters") == 3000.0
    )


@pytest.mark.e2e
def test_metrics_of_several_gateways_is_one_valid_exposition_in_both_formats(served):
    url, fakes, _ = served
    get(url + "/metrics")  # the cache warm: the second scrape joins cached and fresh pieces
    text = get(url + "/metrics")
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(names) == len(set(names))
    families = {f.name: f for f in parse_text(text)}
    assert {s.labels["gateway"] for s in families["enphase_up"].samples} == {c.name for c in fakes}
    assert {s.labels["gateway"] for s in families["enphase_production_power_watts"].samples} == {
        c.name for c in fakes
    }
    openmetrics = get(url + "/metrics", OPENMETRICS)
    assert openmetrics.count("# EOF") == 1 and openmetrics.endswith("# EOF\n")
    parsed = {f.name: f for f in parse_openmetrics(openmetrics)}
    assert "enphase_exporter_build_info" in parsed
    assert len(parsed["enphase_up"].samples) == len(fakes)
    probe = get(url + "/probe?target=barn", OPENMETRICS)
    assert probe.count("# EOF") == 1
    assert {s.labels["gateway"] for f in parse_openmetrics(probe) for s in f.samples} == {"barn"}


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_metrics_of_several_gateways(served):
    url, _, _ = served
    get(url + "/metrics")
    body = get(url + "/metrics").encode()
    checked = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
