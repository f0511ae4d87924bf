"""``/sd`` for Prometheus ``http_sd_configs``: the JSON, the shipped scrape configs under promtool,
a real Prometheus scraping each gateway exactly once through ``/probe`` with no relabelling, and
``hashmod`` sharding that puts each gateway on exactly one of several servers."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, free_port
from exporter_fakes import FakeClient
from exporter_process import get, running_exporter, running_prometheus, wait_for

from envoy_exporter.config.settings import GatewaySettings
from envoy_exporter.demo import start_demo
from envoy_exporter.fleet.registry import Fleet
from envoy_exporter.web.http_sd import SDGateway, exporter_address, target_groups
from envoy_exporter.web.server import make_server

pytestmark = pytest.mark.e2e

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="no promtool (apt-get install prometheus)")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus (apt-get install prometheus)")
SHIPPED = ROOT / "prometheus" / "http-sd.yml"
SHARDED = ROOT / "prometheus" / "http-sd-sharded.yml"
SCRAPE_TIMEOUT_S = 40.0


def test_target_groups_point_at_probe():
    groups = target_groups(
        [SDGateway("home", "122212345678"), SDGateway("122233334444", None), SDGateway("192.0.2.9", None)],
        "exporter:9433",
    )
    assert groups == [
        {
            "targets": ["exporter:9433"],
            "labels": {
                "__metrics_path__": "/probe",
                "__param_target": "122233334444",
                "instance": "122233334444",
                "__meta_enphase_gateway": "122233334444",
                "__meta_enphase_serial": "122233334444",  # an unnamed gateway's label is its serial
            },
        },
        {
            "targets": ["exporter:9433"],
            "labels": {
                "__metrics_path__": "/probe",
                "__param_target": "192.0.2.9",  # serial not known yet: no serial label
                "instance": "192.0.2.9",
                "__meta_enphase_gateway": "192.0.2.9",
            },
        },
        {
            "targets": ["exporter:9433"],
            "labels": {
                "__metrics_path__": "/probe",
                "__param_target": "home",
                "instance": "home",
                "__meta_enphase_gateway": "home",
                "__meta_enphase_serial": "122212345678",
            },
        },
    ]


@pytest.mark.parametrize(
    ("header", "address"),
    [
        ("exporter:9433", "exporter:9433"),
        ("192.0.2.1:9433", "192.0.2.1:9433"),
        ("[fd00::1]:9433", "[fd00::1]:9433"),
        ("exporter.example", "exporter.example"),
        (None, "fallback:1"),
        ("", "fallback:1"),
        ("evil.example/../x", "fallback:1"),
        ("a b:1", "fallback:1"),
        ("x:1\r\nSet-Cookie: y", "fallback:1"),
    ],
)
def test_exporter_address_comes_from_a_plain_host_header(header, address):
    assert exporter_address(header, "fallback:1") == address


def test_sd_route_lists_every_gateway():
    clients = {"home": FakeClient("home"), "barn": FakeClient("barn")}
    fleet = Fleet(
        [
            GatewaySettings(name="home", host="192.0.2.10", serial="122212345678"),
            GatewaySettings(name="barn", host="192.0.2.11"),
        ],
        lambda settings: clients[settings.name],
    )
    server = make_server("127.0.0.1:0", fleet)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        status, body = get(f"{server.url}/sd")
    finally:
        server.shutdown()
        server.server_close()
    assert status == 200
    groups = json.loads(body)
    address = server.url.split("://", 1)[1]
    assert [g["targets"] for g in groups] == [[address], [address]]
    assert [(g["labels"]["__param_target"], g["labels"].get("__meta_enphase_serial")) for g in groups] == [
        ("barn", None),
        ("home", "122212345678"),
    ]
    assert all(c.calls == 0 for c in clients.values())  # listing gateways asks none of them


def test_sd_gives_the_serial_a_gateway_reported_once_it_is_known():
    # Configured by name and host, as most are: the serial comes from its /info.
    home = FakeClient("home")
    fleet = Fleet([GatewaySettings(name="home", host="192.0.2.10")], lambda settings: home)
    server = make_server("127.0.0.1:0", fleet)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        (before,) = json.loads(get(f"{server.url}/sd")[1])
        home.start().result(timeout=10)
        (after,) = json.loads(get(f"{server.url}/sd")[1])
    finally:
        server.shutdown()
        server.server_close()
    assert "__meta_enphase_serial" not in before["labels"]  # not known yet, and /sd asks nobody
    assert after["labels"]["__meta_enphase_serial"] == "999012345678"
    assert home.calls == 1


@needs_promtool
@pytest.mark.parametrize("path", [SHIPPED, SHARDED], ids=lambda p: p.name)
def test_shipped_scrape_configs_pass_promtool(path):
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (job,) = yaml.safe_load(path.read_text())["scrape_configs"]
    assert job["job_name"] == "envoy"  # the alert rules' job
    assert [sd["url"] for sd in job["http_sd_configs"]] == ["http://exporter:9433/sd"]
    if path == SHIPPED:
        assert set(job) == {"job_name", "http_sd_configs"}  # nothing but the discovery


# --------------------------------------------------------------------------------------------
# Against the real exporter (and Prometheus / promtool)

DEAD_GATEWAYS = [f"site-{i:02d}" for i in range(12)]


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """The exporter, serving one simulated gateway and twelve that do not answer (a closed port
    on loopback: each /probe answers at once, with enphase_up 0)."""
    tmp = tmp_path_factory.mktemp("http-sd")
    demo = start_demo()
    closed = free_port()
    entries = [{"name": "roof", "host": demo.url, "token": demo.token, "serial": demo.serial}]
    entries += [
        {"name": name, "host": f"http://127.0.0.{i + 2}:{closed}", "timeout": 1}
        for i, name in enumerate(DEAD_GATEWAYS)
    ]
    try:
        with running_exporter(tmp, {"gateways": entries}, ready="/sd") as served:
            yield served.address, ["roof", *DEAD_GATEWAYS]
    finally:
        demo.stop()


def with_url(path: Path, url: str, **global_overrides: str) -> dict:
    """A shipped scrape config, pointed at the test's exporter, without its rule files."""
    config = yaml.safe_load(path.read_text())
    config.pop("rule_files", None)
    config["global"].update(global_overrides)
    for job in config["scrape_configs"]:
        for sd in job["http_sd_configs"]:
            sd["url"] = url
            sd["refresh_interval"] = "2s"
    return config


def discovered(config: dict, tmp_path: Path) -> list[dict]:
    """``promtool check service-discovery``: the targets of job envoy after relabelling. It
    waits out its whole timeout; the exporter answers /sd in milliseconds."""
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [PROMTOOL, "check", "service-discovery", "--timeout=3s", str(path), "envoy"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [target for target in json.loads(result.stdout) if target.get("labels")]


@needs_promtool
def test_without_relabelling_each_gateway_is_one_probe_target(exporter, tmp_path):
    address, names = exporter
    targets = discovered(with_url(SHIPPED, f"http://{address}/sd"), tmp_path)
    labels = sorted((t["labels"] for t in targets), key=lambda lab: lab["instance"])
    assert [lab["instance"] for lab in labels] == sorted(names)
    for lab in labels:
        assert lab["__address__"] == address
        assert lab["__metrics_path__"] == "/probe"
        assert lab["__param_target"] == lab["instance"]
    assert {t["discoveredLabels"]["__meta_enphase_gateway"] for t in targets} == set(names)


@needs_promtool
@pytest.mark.parametrize("shards", [2, 3])
def test_hashmod_puts_each_gateway_on_exactly_one_shard(exporter, tmp_path, shards):
    address, names = exporter
    placed: list[str] = []
    per_shard = []
    for shard in range(shards):
        config = with_url(SHARDED, f"http://{address}/sd", external_labels={"shard": str(shard)})
        hashmod, keep = config["scrape_configs"][0]["relabel_configs"]
        hashmod["modulus"], keep["regex"] = shards, str(shard)
        targets = [t["labels"]["__param_target"] for t in discovered(config, tmp_path)]
        per_shard.append(targets)
        placed += targets
    assert sorted(placed) == sorted(names)  # every gateway once, none twice
    assert all(per_shard), per_shard  # 13 gateways do spread over every shard


@needs_prometheus
def test_prometheus_scrapes_each_gateway_once_through_probe(exporter, tmp_path):
    address, names = exporter
    config = with_url(SHIPPED, f"http://{address}/sd", scrape_interval="1s", scrape_timeout="1s")
    with running_prometheus(tmp_path, PROMETHEUS, config) as prometheus:
        api = f"http://{prometheus.address}/api/v1"

        def query(expr: str) -> list[dict]:
            status, body = get(f"{api}/query?query={expr}")
            return json.loads(body)["data"]["result"] if status == 200 else []

        def all_up() -> bool:
            return len([r for r in query("up%7Bjob%3D%22envoy%22%7D%3D%3D1")]) == len(names)

        wait_for("every gateway scraped", all_up, SCRAPE_TIMEOUT_S, prometheus.process, prometheus.log)
        _, body = get(f"{api}/targets?state=active")
        targets = json.loads(body)["data"]["activeTargets"]
        assert sorted(t["labels"]["instance"] for t in targets) == sorted(names)
        assert {t["scrapeUrl"] for t in targets} == {f"http://{address}/probe?target={n}" for n in names}
        # One series per gateway, and each gateway's series come from its own target.
        enphase_up = query("enphase_up")
        assert sorted(r["metric"]["gateway"] for r in enphase_up) == sorted(names)
        assert all(r["metric"]["instance"] == r["metric"]["gateway"] for r in enphase_up)
        assert {r["metric"]["gateway"]: r["value"][1] for r in enphase_up}["roof"] == "1"


def test_an_exporter_on_tls_says_https_in_each_group():
    (group,) = target_groups([SDGateway("home", None)], "exporter:9433", scheme="https")
    assert group["labels"]["__scheme__"] == "https"
    (group,) = target_groups([SDGateway("home", None)], "exporter:9433")
    assert "__scheme__" not in group["labels"]  # the job's own scheme, http by default
