"""The Grafana dashboards: generated from dashboards/build.py, and linted against the house rules
(data source variable, gateway filter, units, rate windows, counters, metric names)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, needs_shared
from promql_helpers import (
    ADDITIONS,
    DASHBOARDS,
    SPEC,
    counters_outside_rate,
    dashboard_queries,
    dashboards,
    metric_names,
    panels,
    range_calls,
    selectors,
    spec_metric_names,
    substitute,
)

DS = {"type": "prometheus", "uid": "${datasource}"}
PANEL_TYPES = {"timeseries", "stat", "gauge", "table", "bargauge"}
UNITS = {
    "watt",
    "kwatth",
    "volt",
    "amp",
    "hertz",
    "percentunit",
    "s",
    "dateTimeAsIso",
    "celsius",
    "none",
    "short",
    "reqps",
    "voltamp",
    "voltampreact",
}
EXPECTED = {
    "enphase-overview.json",
    "enphase-meters.json",
    "enphase-inverters.json",
    "enphase-storage.json",
    "enphase-exporter.json",
    "enphase-money.json",
}
QUERIES = list(dashboard_queries())


def load_build():
    spec = importlib.util.spec_from_file_location("dashboards_build", DASHBOARDS / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def data_panels(dashboard: dict) -> list[dict]:
    return [p for p in panels(dashboard) if p["type"] != "row"]


def query_id(query: tuple[str, str, str]) -> str:
    return f"{query[0]}:{query[1]}"


def test_committed_json_is_the_generator_output() -> None:
    rendered = load_build().render()
    assert set(rendered) == EXPECTED
    assert {p.name for p in DASHBOARDS.glob("*.json")} == EXPECTED
    for name, text in rendered.items():
        assert (DASHBOARDS / name).read_text() == text, f"{name} is stale: run python dashboards/build.py"


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = load_build()
    assert build.main(["--check"]) == 0
    for name, text in build.render().items():
        (tmp_path / name).write_text(text)
    (tmp_path / "enphase-storage.json").write_text("{}")
    monkeypatch.setattr(build, "HERE", tmp_path)
    assert build.main(["--check"]) == 1


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dashboard_frame(name: str) -> None:
    dashboard = dashboards()[name]
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["uid"] == name.removesuffix(".json")
    assert dashboard["title"].startswith("Enphase / ")
    assert dashboard["id"] is None
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    gateway = variables["gateway"]
    assert gateway["type"] == "query"
    assert gateway["query"] == gateway["definition"] == "label_values(enphase_up, gateway)"
    assert gateway["multi"] is True
    assert gateway["includeAll"] is True
    assert gateway["datasource"] == DS


def test_dashboard_uids_are_unique() -> None:
    uids = [d["uid"] for d in dashboards().values()]
    assert len(uids) == len(set(uids))


def test_no_input_datasource_placeholder() -> None:
    # ${DS_PROMETHEUS} is an export placeholder that file provisioning never fills in.
    for path in DASHBOARDS.glob("*.json"):
        assert "DS_PROMETHEUS" not in path.read_text(), path.name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_panels_use_the_datasource_variable_and_have_title_unit_description(name: str) -> None:
    dashboard = dashboards()[name]
    found = data_panels(dashboard)
    assert len(found) >= 6
    for panel in found:
        title = panel["title"]
        assert title.strip(), panel
        assert panel["type"] in PANEL_TYPES, title
        assert panel["datasource"] == DS, title
        assert panel["description"].strip(), title
        assert panel["fieldConfig"]["defaults"]["unit"] in UNITS, title
        assert panel["targets"], title
        for target in panel["targets"]:
            assert target["datasource"] == DS, title
        override_units = [
            prop["value"]
            for override in panel["fieldConfig"]["overrides"]
            for prop in override["properties"]
            if prop["id"] == "unit"
        ]
        assert set(override_units) <= UNITS, title


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_layout_fits_the_grid_without_overlap(name: str) -> None:
    taken: set[tuple[int, int]] = set()
    ids = []
    for panel in panels(dashboards()[name]):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
        ids.append(panel["id"])
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_energy_panels_convert_joules_to_kwh(name: str) -> None:
    for panel in data_panels(dashboards()[name]):
        if panel["fieldConfig"]["defaults"]["unit"] == "kwatth":
            for target in panel["targets"]:
                assert target["expr"].endswith("/ 3600000"), panel["title"]


@pytest.mark.parametrize("query", QUERIES, ids=query_id)
def test_every_selector_filters_the_gateway(query: tuple[str, str, str]) -> None:
    _, _, expr = query
    found = list(selectors(expr))
    assert found, expr
    for metric, matchers in found:
        assert 'gateway=~"$gateway"' in matchers, f"{metric} in {expr}"


@pytest.mark.parametrize("query", QUERIES, ids=query_id)
def test_rate_windows_are_grafana_intervals(query: tuple[str, str, str]) -> None:
    _, _, expr = query
    for func, window in range_calls(expr):
        assert func in ("rate", "increase"), expr
        allowed = {"$__rate_interval", "$__range"} if func == "increase" else {"$__rate_interval"}
        if func == "increase" and "offset ${day_shift}s" in expr:
            allowed.add("1d")  # one of the gateway's days (the Money dashboard's daily bars)
        if func == "increase":
            allowed |= {"${today_s}s", "${month_s}s"}  # since the gateway's midnight, month
        assert window in allowed, f"{func}(...[{window}]) in {expr}"


@pytest.mark.parametrize("query", QUERIES, ids=query_id)
def test_counters_only_inside_rate_or_increase(query: tuple[str, str, str]) -> None:
    assert counters_outside_rate(query[2]) == []


@needs_shared
def test_every_metric_is_in_the_contract() -> None:
    known = spec_metric_names(SPEC) | ADDITIONS
    used = set().union(*(metric_names(expr) for _, _, expr in QUERIES))
    assert used - known == set()


def test_dashboards_cover_the_contract_areas() -> None:
    used = {name: set().union(*(metric_names(e) for n, _, e in QUERIES if n == name)) for name in EXPECTED}
    assert {
        "enphase_production_power_watts",
        "enphase_consumption_power_watts",
        "enphase_production_energy_joules_total",
        "enphase_production_phase_power_watts",
        "enphase_storage_power_watts",
    } <= used["enphase-overview.json"]
    assert {
        "enphase_meter_phase_voltage_volts",
        "enphase_meter_phase_current_amperes",
        "enphase_meter_phase_frequency_hertz",
        "enphase_meter_phase_power_factor",
        "enphase_meter_reactive_power_var",
        "enphase_meter_apparent_power_voltamperes",
        "enphase_meter_metering_status",
        "enphase_meter_status_flag",
        "enphase_inverters_power_watts",
    } <= used["enphase-meters.json"]
    assert {
        "enphase_inverter_power_watts",
        "enphase_inverter_last_report_timestamp_seconds",
        "enphase_inverter_temperature_celsius",
        "enphase_inverter_dc_voltage_volts",
    } <= used["enphase-inverters.json"]
    assert {
        "enphase_storage_state_of_charge_ratio",
        "enphase_storage_reserve_ratio",
        "enphase_storage_capacity_joules",
        "enphase_grid_connected",
        "enphase_storage_mode",
        "enphase_storage_reserve_setting_ratio",
        "enphase_storage_charge_from_grid",
        "enphase_dry_contact_closed",
        "enphase_generator_present",
        "enphase_generator_relay_closed",
        "enphase_grid_enabled",
    } <= used["enphase-storage.json"]
    assert {
        "enphase_up",
        "enphase_data_age_seconds",
        "enphase_scrape_duration_seconds",
        "enphase_gateway_requests_total",
        "enphase_token_expiry_timestamp_seconds",
        "enphase_energy_corrections_total",
    } <= used["enphase-exporter.json"]
    assert {
        "enphase_tariff_price_per_kilowatt_hour",
        "enphase_grid_import_cost_total",
        "enphase_grid_export_credit_total",
        "enphase_tariff_period",
    } <= used["enphase-money.json"]
    assert {"enphase_grid_import_cost_total", "enphase_grid_export_credit_total"} <= used[
        "enphase-overview.json"
    ]


def test_range_totals_come_from_lifetime_counters_not_today_gauges() -> None:
    for _, title, expr in QUERIES:
        assert "_today_" not in expr or "enphase_inverter_energy_today_joules" in expr, title
        if "$__range" in expr:
            assert all(func == "increase" for func, _ in range_calls(expr)), title


def test_peer_comparison_uses_the_per_gateway_median() -> None:
    exprs = [expr for name, _, expr in QUERIES if name == "enphase-inverters.json"]
    assert any(
        re.search(r"/ on \(gateway\) group_left \(\) quantile by \(gateway\) \(0\.5, ", e) for e in exprs
    )
    assert any(e.startswith("time() - enphase_inverter_last_report_timestamp_seconds") for e in exprs)


promtool = shutil.which("promtool")


@pytest.mark.e2e
@pytest.mark.skipif(promtool is None, reason="promtool is not installed (apt-get install prometheus)")
def test_every_query_parses(tmp_path: Path) -> None:
    """promtool checks the PromQL of each query, loaded as a recording rule."""
    rules = [{"record": f"dashboard:query:{i}", "expr": substitute(e)} for i, (_, _, e) in enumerate(QUERIES)]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dashboard_is_documented() -> None:
    text = (ROOT / "docs" / "dashboards.md").read_text()
    for dashboard in dashboards().values():
        assert f"(`{dashboard['uid']}`)" in text, dashboard["uid"]


def test_a_money_panel_without_data_says_what_it_needs() -> None:
    # Cost and credit need a net-consumption CT and a tariff: a site with the CT but no tariff must
    # not be told it has no CT.
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            exprs = " ".join(t.get("expr", "") for t in panel.get("targets", []))
            if "enphase_grid_import_cost_total" in exprs or "enphase_grid_export_credit_total" in exprs:
                no_value = panel.get("fieldConfig", {}).get("defaults", {}).get("noValue", "")
                assert "net-consumption CT" in no_value and "tariff" in no_value, (name, panel["title"])
