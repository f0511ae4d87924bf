"""The Money dashboard's days on a real Prometheus: four days of a New York gateway's series,
backfilled with promtool, queried as Grafana queries a daily bar chart (one step a day, at UTC
midnight, the dashboard's time zone) with the hidden variables computed by Prometheus itself.
Each day's bar must equal the gateway's own "today" at that day's end. Skips without prometheus.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

import pytest
from exporter_process import get, running_prometheus
from promql_helpers import DASHBOARDS

PROMETHEUS_BIN = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMETHEUS_BIN is None or PROMTOOL is None, reason="no prometheus (apt-get install prometheus)"
)

START = datetime(2024, 7, 1, tzinfo=timezone.utc).timestamp()
STEP_S = 60
DAYS = 4
OFFSET_S = -4 * 3600  # New York in July (EDT)
LOAD_W = 500.0  # imported day and night: energy flows across midnight too


def solar_w(local_hour: float) -> float:
    return 4000.0 * math.sin(math.pi * (local_hour - 6) / 14) if 6 < local_hour < 20 else 0.0


def series() -> dict[str, list[tuple[float, float]]]:
    produced = imported = today = 0.0
    out: dict[str, list[tuple[float, float]]] = {k: [] for k in ("produced", "imported", "today", "offset")}
    for i in range(DAYS * 86400 // STEP_S + 1):
        t = START + i * STEP_S
        local = (t + OFFSET_S) % 86400
        if i:
            made = solar_w((local - STEP_S / 2) % 86400 / 3600) * STEP_S
            produced += made
            imported += LOAD_W * STEP_S
            today = 0.0 if local == 0 else today + made  # the gateway's own, reset at its midnight
        out["produced"].append((t, produced))
        out["imported"].append((t, imported))
        out["today"].append((t, today))
        out["offset"].append((t, OFFSET_S))
    return out


NAMES = {
    "produced": 'enphase_production_energy_joules_total{gateway="ny",source="meter"}',
    "imported": 'enphase_meter_energy_delivered_joules_total{gateway="ny",meter="net-consumption"}',
    "today": 'enphase_production_energy_today_joules{gateway="ny"}',
    "offset": 'enphase_gateway_utc_offset_seconds{gateway="ny"}',
}


def _panel(title: str) -> dict:
    dashboard = json.loads((DASHBOARDS / "enphase-money.json").read_text())
    return next(p for p in dashboard["panels"] if p["title"] == title)


def _variable(name: str) -> dict:
    dashboard = json.loads((DASHBOARDS / "enphase-money.json").read_text())
    return next(v for v in dashboard["templating"]["list"] if v["name"] == name)


@pytest.mark.e2e
def test_a_days_bar_equals_the_gateways_today_at_the_days_end(tmp_path: Path) -> None:
    data = series()
    text = [f"{NAMES[k]} {v} {t:.0f}" for k in NAMES for t, v in data[k]]
    (tmp_path / "in.om").write_text("\n".join(text) + "\n# EOF\n")
    made = subprocess.run(
        [
            str(PROMTOOL),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(tmp_path / "in.om"),
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    with running_prometheus(tmp_path, str(PROMETHEUS_BIN), {"global": {"scrape_interval": "1m"}}) as prom:

        def api(path: str, **params: str) -> list:
            _status, body = get(f"http://{prom.address}/api/v1/{path}?{urllib.parse.urlencode(params)}")
            answer = json.loads(body)
            assert answer["status"] == "success", answer
            return answer["data"]["result"]

        # The hidden variable, as Grafana's query_result() would ask it (an instant query).
        query = _variable("day_shift")["query"].removeprefix("query_result(").removesuffix(")")
        (shift,) = api("query", query=query.replace("$gateway", ".*"), time=str(START + 3 * 86400))
        day_shift = int(float(shift["value"][1]))
        assert day_shift == OFFSET_S - 86400
        # The bars, as Grafana asks for them: a step of a day, aligned to UTC midnight.
        bars = {}
        for target in _panel("Energy per day")["targets"]:
            expr = target["expr"].replace("$gateway", ".*").replace("${day_shift}", str(day_shift))
            result = api(
                "query_range", query=expr, start=str(START), end=str(START + 2 * 86400), step="86400"
            )
            if result:
                bars[target["legendFormat"]] = {float(t): float(v) for t, v in result[0]["values"]}
        today = dict(data["today"])
        for day in (0, 1, 2):
            step = START + day * 86400  # the bar drawn at this date ...
            end = step - OFFSET_S + 86400  # ... ends at the gateway's midnight after that date
            at_the_end = today[end - STEP_S]  # the gateway's own "today" at the day's end
            assert at_the_end > 30_000_000  # a sunny day: tens of MJ
            assert bars["{{gateway}} produced"][step] * 3_600_000 == pytest.approx(
                at_the_end, rel=1e-9, abs=1.0
            )
            # Import flows at midnight too: the bar is the whole local day, to the sample.
            assert bars["{{gateway}} imported"][step] * 3_600_000 == pytest.approx(LOAD_W * 86400, rel=1e-6)

        # "Today" and "this month" since the gateway's local midnight and the 1st, at 12:00 EDT on
        # the 2nd of July
        noon = START + 86400 + 16 * 3600
        for name, seconds in (("today_s", 12 * 3600), ("month_s", 86400 + 12 * 3600)):
            query = _variable(name)["query"].removeprefix("query_result(").removesuffix(")")
            (value,) = api("query", query=query.replace("$gateway", ".*"), time=str(noon))
            assert float(value["value"][1]) == seconds + 1
