"""The exposition as served: one renderer, pieces rendered apart joined into one valid exposition.

Each gateway's data is rendered once per snapshot and the per-scrape series on every scrape; the
pieces are joined per family. These tests hold the joined bytes against one rendering of all the
families at once, hold what the renderer writes against what prometheus-client writes for the
same families (parsed back by its parsers: the same families, samples and values), and, where
promtool is installed, run ``promtool check metrics`` on them.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace

import pytest
from exporter_fakes import NOW, FakeClient, rich_snapshot, samples, value
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from envoy_exporter.collector import ExporterCollector, GatewayCollector
from envoy_exporter.collector import scrape as scrape_module
from envoy_exporter.collector.data import add_snapshot
from envoy_exporter.collector.exposition import (
    Group,
    SnapshotCache,
    gateway_labels,
    join,
    negotiate,
    number,
    render_labels,
    with_label,
    with_labels,
)
from envoy_exporter.collector.families import Families, column, columns, from_library
from envoy_exporter.collector.scrape import render_data
from envoy_exporter.config.settings import GatewaySettings
from envoy_exporter.fleet.registry import Fleet
from envoy_exporter.snapshot.model import Reading
from envoy_exporter.web.server import make_server

TEXT = "text/plain;version=0.0.4"
OPENMETRICS = "application/openmetrics-text;version=1.0.0"
# Label values that need escaping, and a non-ASCII one.
GATEWAYS = ("garage", 'bar"n\\', "line\nbreak", "Gäste")
ACCEPTS = (
    "",  # curl
    TEXT,
    OPENMETRICS,
    "application/openmetrics-text",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    # Prometheus 2.x
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    # other escapings are answered with names escaped as underscores, which leaves them as they are
    "text/plain;version=1.0.0;escaping=dots",
    "application/openmetrics-text;version=1.0.0;escaping=values",
)
VALUES = (0.0, -0.0, 1.0, -2.5, 1e-7, 123456.0, 1234567.0, 1.8e10, 2**53 + 1, 1e300, math.inf, -math.inf)


def health(f: Families, gateway: str, age: float) -> None:
    base = gateway_labels(gateway)
    f.gauge("enphase_up", "1 if fresh", base, 1)
    f.gauge("enphase_data_age_seconds", "Age of the data", base, age)
    f.counter(
        "enphase_gateway_requests",
        "Requests\nsent \\ counted",
        with_labels(base, endpoint="info", code="200"),
        3,
    )
    f.counter(
        "enphase_gateway_requests",
        "Requests\nsent \\ counted",
        with_labels(base, endpoint="readings", code="x"),
        1,
    )


def data(f: Families, base: str) -> None:
    f.gauge("enphase_production_power_watts", "Power now", base, 1234.5)
    f.counter("enphase_production_energy_joules", "Energy", base, 1.8e10)
    for n, phase in enumerate(("L1", "L2", "L3")):
        f.gauge(
            "enphase_production_phase_power_watts", "Per phase", with_label(base, "phase", phase), 400.0 + n
        )


def pieces(gateways: tuple[str, ...], age: float) -> list:
    parts = []
    for gateway in gateways:
        for add in (lambda f, g=gateway: health(f, g, age), lambda f, g=gateway: data(f, gateway_labels(g))):
            families = Families()
            add(families)
            parts.append(families.groups())
    return parts


def all_at_once(gateways: tuple[str, ...], age: float) -> Families:
    families = Families()
    for gateway in gateways:
        health(families, gateway, age)
        data(families, gateway_labels(gateway))
    return families


def parsed(text: str, openmetrics: bool) -> list[tuple]:
    """Families parsed back: (name, type, help, [(sample name, labels, value)]), NaN as a string."""
    parse = parse_openmetrics if openmetrics else parse_text
    return [
        (
            f.name,
            f.type,
            f.documentation,
            [(s.name, s.labels, "NaN" if math.isnan(s.value) else s.value) for s in f.samples],
        )
        for f in parse(text)
    ]


class _All:
    def __init__(self, families: list[Metric]):
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


@pytest.mark.parametrize("accept", [TEXT, OPENMETRICS])
def test_joined_pieces_equal_one_rendering_of_everything(accept):
    _, content_type = choose_encoder(accept)
    joined = join(pieces(GATEWAYS, 2.5), content_type)
    assert joined == join([all_at_once(GATEWAYS, 2.5).groups()], content_type)


def test_text_has_each_family_once_with_every_gateway():
    text = join(pieces(GATEWAYS, 2.5), choose_encoder(TEXT)[1]).decode()
    families = {f.name: f for f in parse_text(text)}
    assert sorted(families) == sorted(name for (name, _, _), _ in all_at_once(GATEWAYS, 0).groups())
    assert text.count("# TYPE enphase_up gauge") == 1
    assert {s.labels["gateway"] for s in families["enphase_up"].samples} == set(GATEWAYS)
    requests = families["enphase_gateway_requests"].samples
    assert {(s.labels["gateway"], s.labels["code"], s.value) for s in requests} >= {('bar"n\\', "x", 1.0)}
    phases = families["enphase_production_phase_power_watts"].samples
    guest = {s.labels["phase"]: s.value for s in phases if s.labels["gateway"] == "Gäste"}
    assert guest == {"L1": 400.0, "L2": 401.0, "L3": 402.0}


def test_openmetrics_parses_and_ends_with_one_eof():
    text = join(pieces(GATEWAYS, 2.5), choose_encoder(OPENMETRICS)[1]).decode()
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    families = {f.name: f for f in parse_openmetrics(text)}
    energy = families["enphase_production_energy_joules"]
    assert energy.type == "counter"
    assert {s.labels["gateway"]: s.value for s in energy.samples} == dict.fromkeys(GATEWAYS, 1.8e10)


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_joined_exposition():
    # promtool reads the Prometheus text format (OpenMetrics is held to its parser above).
    body = join(pieces(GATEWAYS, 2.5), choose_encoder(TEXT)[1])
    checked = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


def odd_families() -> tuple[Families, list[Metric]]:
    """The same odd families twice: ours, and prometheus-client's."""
    ours, library = Families(), []
    doc = 'Help with "quotes", a \\ backslash\nand a newline'
    ours.gauge("odd_doc", doc, "", 1)
    library.append(GaugeMetricFamily("odd_doc", doc, value=1))
    values = GaugeMetricFamily("odd_values", "Values", labels=["gateway", "n"])
    for n, v in enumerate(VALUES):
        ours.gauge("odd_values", "Values", render_labels({"gateway": "g", "n": str(n)}), v)
        values.add_metric(["g", str(n)], v)
    labels = CounterMetricFamily("odd_labels", "Labels", labels=["z", "a", "m_1"])
    for text in ("plain", 'q"uote', "back\\slash", "new\nline", "Gäste ☀", ""):
        ours.counter("odd_labels", "Labels", with_labels(gateway_labels("g"), z=text, a="x", m_1="y"), 3)
        labels.add_metric([text, "x", "y"], 3)
    for family in (values, labels):
        for sample in family.samples:
            sample.labels.setdefault("gateway", "g")
    return ours, [*library, values, labels]


@pytest.mark.parametrize("accept", ACCEPTS)
def test_what_is_written_parses_to_what_the_library_writes(accept):
    content_type = negotiate(accept)
    encoder, _ = choose_encoder(content_type)  # the library's writer of that content type
    ours, library = odd_families()
    openmetrics = content_type.startswith("application/openmetrics-text")
    written = join([ours.groups()], content_type).decode()
    assert parsed(written, openmetrics) == parsed(encoder(_All(library)).decode(), openmetrics)


@pytest.mark.parametrize("value", [*VALUES, math.nan, 0.1 + 0.2, 5e-324, 1.7976931348623157e308])
def test_a_value_reads_back_as_itself(value):
    text = number(float(value))
    assert text in ("+Inf", "-Inf", "NaN") or float(text) == float(value)
    assert math.isnan(value) == (text == "NaN")


def test_the_process_collectors_families_are_rendered_here_too():
    # The exporter's own families come from prometheus-client: converted, rendered the same way.
    counter = CounterMetricFamily("odd_cpu_seconds", "CPU", value=2.5)
    gauge = GaugeMetricFamily("odd_fds", "Descriptors", labels=["kind"])
    gauge.add_metric(["open"], 7)
    text = join([from_library([counter, gauge]).groups()], choose_encoder(TEXT)[1]).decode()
    assert "odd_cpu_seconds_total 2.5\n" in text
    assert 'odd_fds{kind="open"} 7.0\n' in text


class Snap:
    """A stand-in snapshot: the cache only compares identities."""


def _counting(built: list):
    """A rendering of the data series that counts how often it ran."""

    def render(labels: str) -> list[Group]:
        built.append(labels)
        families = Families()
        data(families, labels)
        return families.groups()

    return render


def test_the_cache_renders_a_snapshot_once_for_every_format():
    cache, owner, built = SnapshotCache(), Snap(), []
    first, garage = Snap(), gateway_labels("garage")
    a = cache.groups(owner, first, garage, _counting(built))
    b = cache.groups(owner, first, garage, _counting(built))
    assert a is b and len(built) == 1
    for accept in (TEXT, OPENMETRICS):  # one rendering serves both formats
        assert join([a], choose_encoder(accept)[1]).count(b"enphase_production_power_watts{") == 1
    c = cache.groups(owner, Snap(), garage, _counting(built))
    assert len(built) == 2 and c == a and c is not a  # a new snapshot is rendered anew
    same = cache.groups(owner, first, garage, _counting(built))
    assert len(built) == 3 and same == a  # only the latest snapshot is kept
    cache.groups(owner, first, gateway_labels("999012345678"), _counting(built))
    assert built[3:] == ['gateway="999012345678"']  # the label changed (an unnamed gateway told its serial)


def test_the_cache_drops_what_no_scrape_took_for_a_while():
    clock = [100.0]
    cache = SnapshotCache(keep=15.0, clock=lambda: clock[0])
    busy, idle, snapshot, built = Snap(), Snap(), Snap(), []
    cache.groups(idle, Snap(), gateway_labels("idle"), _counting(built))
    for _ in range(3):
        clock[0] += 10
        cache.groups(busy, snapshot, gateway_labels("busy"), _counting(built))
    assert len(built) == 2  # the busy gateway's rendering was taken three times, rendered once
    assert idle not in cache._entries and busy in cache._entries


def test_the_cache_drops_a_rendering_once_its_snapshot_can_no_longer_be_served():
    # The gateway's snapshot is served again only while the answers it was made of are cached
    # (5 s for CT readings); after that the next scrape gets a new snapshot, and the rendering
    # of the old one would only sit there until 15 s after the scrape.
    clock = [100.0]
    cache = SnapshotCache(keep=15.0, clock=lambda: clock[0])
    owner, other, snapshot, built = Snap(), Snap(), Snap(), []
    cache.groups(owner, snapshot, gateway_labels("garage"), _counting(built), reusable=5.0)
    clock[0] += 3
    cache.groups(owner, snapshot, gateway_labels("garage"), _counting(built), reusable=2.0)
    assert len(built) == 1  # a second scraper within the cache's time: rendered once
    clock[0] += 2.5
    cache.groups(other, Snap(), gateway_labels("barn"), _counting(built), reusable=60.0)
    assert owner not in cache._entries and other in cache._entries
    clock[0] += 14.0
    cache.groups(owner, Snap(), gateway_labels("garage"), _counting(built))
    assert other in cache._entries  # kept 15 s after its scrape, however long it could be served
    clock[0] += 1.0
    cache.groups(owner, Snap(), gateway_labels("garage"), _counting(built))
    assert other not in cache._entries


def test_the_cache_tells_its_sweeper_when_to_look_and_drops_on_time_without_scrapes():
    # When the scrapes stop, nothing calls ``groups`` any more: the sweeper (the web server's
    # loop) sleeps until the next rendering is due, and is woken when one comes due sooner.
    clock, wakes = [100.0], []
    cache = SnapshotCache(keep=15.0, clock=lambda: clock[0], wake=lambda: wakes.append(clock[0]))
    assert cache.sweep() is None  # nothing kept: sleep until woken
    garage, barn = Snap(), Snap()
    cache.groups(garage, Snap(), gateway_labels("garage"), _counting([]))
    assert wakes == [100.0]
    assert cache.sweep() == 15.0
    clock[0] += 2
    cache.groups(barn, Snap(), gateway_labels("barn"), _counting([]))  # due later: no wake
    assert wakes == [100.0] and cache.sweep() == 13.0
    cache.groups(barn, Snap(), gateway_labels("barn"), _counting([]), reusable=4.0)  # due sooner
    assert wakes == [100.0, 102.0] and cache.sweep() == 4.0
    clock[0] += 4
    assert cache.sweep() == 9.0  # the barn's rendering went; the garage's is due at 115
    assert barn not in cache._entries and garage in cache._entries
    clock[0] += 9
    assert cache.sweep() is None and not cache._entries
    assert len(wakes) == 2


def test_the_cache_forgets_a_dropped_gateway():
    cache, owner = SnapshotCache(), Snap()
    cache.groups(owner, Snap(), gateway_labels("garage"), _counting([]))
    assert len(cache._entries) == 1
    del owner
    assert len(cache._entries) == 0


def test_labels_are_rendered_once_and_narrowed_by_appending():
    base = gateway_labels('a"b')
    assert base == 'gateway="a\\"b"'
    assert with_label(base, "serial", "1") == 'gateway="a\\"b",serial="1"'
    assert with_labels(base, serial="1", phase="L\n1") == 'gateway="a\\"b",serial="1",phase="L\\n1"'
    assert with_label("", "phase", "back\\slash") == 'phase="back\\\\slash"'
    assert render_labels({}) == ""


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
def test_a_scrape_as_served_is_valid_and_holds_every_gateway(accept):
    content_type = negotiate(accept)
    scrape = GatewayCollector(clients(), 2.0, wall=lambda: NOW)
    text = scrape.expose(content_type, SnapshotCache(), [ExporterCollector()]).decode()
    openmetrics = content_type.startswith("application/openmetrics-text")
    families = {name: samples for name, _, _, samples in parsed(text, openmetrics)}
    assert {labels["gateway"] for _, labels, _ in families["enphase_up"]} == {c.name for c in clients()}
    assert "enphase_exporter_build_info" in families
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(names) == len(set(names))


@pytest.fixture
def served(monkeypatch) -> Iterator[tuple[str, list[FakeClient], list[str]]]:
    """The web server over ``clients()``; the third list names the gateway of every rendering of
    data series."""
    rendered: list[str] = []
    names = {gateway_labels(c.name): c.name for c in clients()}

    def counted(families, labels, snapshot):
        rendered.append(names[labels])
        add_snapshot(families, labels, snapshot)

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


def test_a_table_writes_rows_by_family_items_in_order_and_none_as_no_sample():
    rows = columns(
        column("odd_power_watts", "counter", "Power", "power"),
        column("odd_energy_joules", "counter", "Energy", "energy"),
    )
    items = [
        (with_label("", "serial", "1"), SimpleNamespace(power=math.inf, energy=None)),
        (with_label("", "serial", "2"), SimpleNamespace(power=math.nan, energy=-math.inf)),
        (with_label("", "serial", "3"), SimpleNamespace(power=True, energy=7)),
    ]
    families = Families()
    families.table(rows, items)
    families.one("odd_state", "State", with_label("", "state", "on"))
    assert [(header, body.decode()) for header, body in families.groups()] == [
        (
            ("odd_power_watts", "counter", "Power"),
            'odd_power_watts_total{serial="1"} +Inf\n'
            'odd_power_watts_total{serial="2"} NaN\n'
            'odd_power_watts_total{serial="3"} 1.0\n',
        ),
        (
            ("odd_energy_joules", "counter", "Energy"),
            'odd_energy_joules_total{serial="2"} -Inf\nodd_energy_joules_total{serial="3"} 7.0\n',
        ),
        (("odd_state", "gauge", "State"), 'odd_state{state="on"} 1.0\n'),
    ]


def test_a_table_column_of_finite_values_is_written_as_floats():
    rows = columns(column("odd_value", "gauge", "Value", "value"))
    values = (True, 3, -0.0, 1e22, 0.1)
    items = [(with_label("", "serial", str(i)), SimpleNamespace(value=v)) for i, v in enumerate(values)]
    families = Families()
    families.table(rows, items)
    assert [body.decode() for _, body in families.groups()] == [
        'odd_value{serial="0"} 1.0\nodd_value{serial="1"} 3.0\nodd_value{serial="2"} -0.0\n'
        'odd_value{serial="3"} 1e+22\nodd_value{serial="4"} 0.1\n'
    ]


def test_a_state_is_written_with_its_label_escaped_after_the_others():
    families = Families()
    families.state("odd_state", "State", with_label("", "serial", "1"), "state", 'a"b\\c\nd')
    families.state("odd_state", "State", "", "state", "on")
    assert [(header, body.decode()) for header, body in families.groups()] == [
        (
            ("odd_state", "gauge", "State"),
            'odd_state{serial="1",state="a\\"b\\\\c\\nd"} 1.0\nodd_state{state="on"} 1.0\n',
        )
    ]
    assert next(parse_text(families.groups()[0][1].decode())).samples[0].labels["state"] == 'a"b\\c\nd'


def test_gauges_of_one_object_write_each_value_as_the_formats_spell_it():
    rows = columns(*(column(f"odd_{attr}", "gauge", attr, attr) for attr in ("a", "b", "c", "d", "e", "f")))
    families = Families()
    families.gauges(rows, 'serial="1"', SimpleNamespace(a=-math.inf, b=None, c=False, d=3, e=-0.0, f=1e22))
    families.gauges(columns(column("odd_g", "counter", "g", "g")), 'serial="1"', SimpleNamespace(g=0.1))
    assert [body.decode() for _, body in families.groups()] == [
        'odd_a{serial="1"} -Inf\n',
        'odd_c{serial="1"} 0.0\n',
        'odd_d{serial="1"} 3.0\n',
        'odd_e{serial="1"} -0.0\n',
        'odd_f{serial="1"} 1e+22\n',
        'odd_g_total{serial="1"} 0.1\n',
    ]


def test_label_values_made_in_one_string_are_escaped_and_read_back():
    odd = 'a"b\\c\nd ü'
    rich = rich_snapshot()
    meter = rich.meters[0]
    snapshot = replace(
        rich,
        meters=(replace(meter, config=replace(meter.config, phase_mode=odd, state=odd)), *rich.meters[1:]),
        inverters=(replace(rich.inverters[0], serial=odd), *rich.inverters[1:]),
        devices=tuple(
            replace(each, serial=odd, device_type=odd, part_number=odd, firmware=odd) for each in rich.devices
        ),
    )
    body = join([render_data(gateway_labels(odd), snapshot)], "text/plain; version=0.0.4").decode()
    read = {f.name: f.samples for f in parse_text(body)}
    assert {s.labels["gateway"] for samples in read.values() for s in samples} == {odd}
    infos = {s.labels["eid"]: s.labels for s in read["enphase_meter_info"]}
    assert (infos[str(meter.config.eid)]["phase_mode"], infos[str(meter.config.eid)]["state"]) == (odd, odd)
    assert odd in {s.labels["serial"] for s in read["enphase_inverter_power_watts"]}
    device = read["enphase_device_info"][0].labels
    assert [device[k] for k in ("serial", "device_type", "part_number", "firmware")] == [odd] * 4
