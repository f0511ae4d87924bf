"""The dashboards and rules against a real Prometheus scraping the exporter's demo.

One Prometheus (1 s scrape and rule evaluation, storage in a temporary directory, loopback
only) scrapes ``envoy-exporter --demo``. Once it holds about 15 s of data, every dashboard query,
with Grafana's variables filled in, must parse and return data, and every rule must load and
evaluate cleanly. Skips only when the ``prometheus`` binary is absent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from exporter_process import (
    RULE_FILES,
    get,
    prometheus_config,
    running_exporter,
    running_prometheus,
    wait_for,
)
from promql_helpers import dashboard_queries, substitute

PROMETHEUS_BIN = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS_BIN is None, reason="no prometheus (apt-get install prometheus)")

QUERIES = list(dashboard_queries())
DATA_TIMEOUT_S = 40.0
WANTED_SAMPLES = 15  # ~15 s of data at a 1 s scrape interval
RETRIES = 5


@dataclass(frozen=True)
class Live:
    url: str
    exporter_address: str

    def api(self, path: str, **params: str) -> dict:
        status, body = get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        assert body, f"{path}: no answer (HTTP {status})"
        return json.loads(body)

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)

    def settled(self, ask: Callable[[], dict], accept: Callable[[dict], bool]) -> dict:
        """The answer of ``ask`` once ``accept`` takes it, or the last one after a few seconds.

        On a busy machine a 1 s scrape sometimes times out; Prometheus then marks the series
        stale until the next scrape, and an instant query in between finds nothing."""
        for _ in range(RETRIES):
            answer = ask()
            if accept(answer):
                break
            time.sleep(1.0)
        return answer

    def query_data(self, expr: str) -> dict:
        """``query``, asked again for a few seconds while it returns nothing."""
        return self.settled(lambda: self.query(expr), lambda answer: bool(answer["data"]["result"]))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("prometheus-live")
    with (
        running_exporter(tmp, None, "--demo", ready="/metrics", ready_text=b"enphase_up") as exporter,
        running_prometheus(tmp, str(PROMETHEUS_BIN), prometheus_config(exporter.address)) as prometheus,
    ):
        result = Live(f"http://{prometheus.address}", exporter.address)

        def enough_data() -> bool:
            samples = result.query("count_over_time(enphase_up[1m])")["data"]["result"]
            return bool(samples) and float(samples[0]["value"][1]) >= WANTED_SAMPLES

        wait_for("15 s of scraped data", enough_data, DATA_TIMEOUT_S, prometheus.process, prometheus.log)
        yield result


@pytest.mark.e2e
def test_prometheus_scrapes_the_demo(live: Live) -> None:
    answer = live.query_data('up{job="envoy"} == 1')
    assert [r["metric"]["instance"] for r in answer["data"]["result"]] == [live.exporter_address]


@pytest.mark.e2e
def test_promtool_check_metrics_prints_nothing_on_a_demo_scrape(live: Live) -> None:
    # promtool ships with prometheus; a full --demo scrape has every family the demo simulates.
    status, body = get(f"http://{live.exporter_address}/metrics")
    assert status == 200
    promtool = shutil.which("promtool") or str(Path(str(PROMETHEUS_BIN)).with_name("promtool"))
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert (result.stdout + result.stderr).decode().strip() == ""
    assert result.returncode == 0


def test_gateway_variable_lists_the_demo(live: Live) -> None:
    # What Grafana's label_values(enphase_up, gateway) asks for.
    values = live.api("label/gateway/values", **{"match[]": "enphase_up"})["data"]
    assert values == ["demo"]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q[0]}:{q[1]}")
def test_dashboard_query_returns_data(live: Live, query: tuple[str, str, str]) -> None:
    answer = live.query_data(substitute(query[2]))
    assert answer["status"] == "success", answer
    assert answer["data"]["result"], f"no data for {query[2]}"


def test_rules_load_and_evaluate_cleanly(live: Live) -> None:
    groups = live.api("rules")["data"]["groups"]
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    expected = {
        rule.get("alert") or rule["record"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    }
    assert set(loaded) == expected
    unhealthy = {name: rule.get("lastError") for name, rule in loaded.items() if rule["health"] != "ok"}
    assert unhealthy == {}


def test_recording_rules_produce_the_power_flow(live: Live) -> None:
    for record in (
        "gateway:enphase_production_power_watts:sum",
        "gateway:enphase_consumption_power_watts:sum",
        "gateway:enphase_grid_power_watts:sum",
        "gateway:enphase_grid_import_power_watts:clamp_min",
        "gateway:enphase_grid_export_power_watts:clamp_min",
        "gateway:enphase_battery_power_watts:sum",
        "gateway:enphase_inverter_power_watts:median",
        "gateway:enphase_production_energy_joules:increase1h",
        "gateway:enphase_grid_import_energy_joules:increase1h",
    ):
        result = live.query_data(record)["data"]["result"]
        assert [r["metric"] for r in result] == [{"__name__": record, "gateway": "demo"}], record


def test_a_healthy_demo_raises_no_alert(live: Live) -> None:
    # Pending counts too: no alert condition may hold for a plant that works.
    alerts = live.settled(lambda: live.api("alerts"), lambda a: not a["data"]["alerts"])
    assert alerts["data"]["alerts"] == []
