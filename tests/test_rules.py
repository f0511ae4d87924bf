"""Prometheus recording and alert rules: promtool's own checks and unit tests, plus the house
rules (naming, severity, annotations, a firing and a silent unit test for every alert)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, needs_shared
from promql_helpers import ADDITIONS, PROMETHEUS, SPEC, counters_outside_rate, metric_names, spec_metric_names

RULES = PROMETHEUS / "rules"
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
SEVERITIES = {"critical", "warning", "info"}
promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(promtool is None, reason="no promtool (apt-get install prometheus)")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def rules(kind: str) -> list[dict]:
    return [
        rule
        for path in sorted(RULES.glob("*.yml"))
        for group in load(path)["groups"]
        for rule in group["rules"]
        if kind in rule
    ]


ALERTS = rules("alert")
RECORDS = rules("record")


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    assert promtool is not None
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=PROMETHEUS)


@pytest.mark.e2e
@needs_promtool
def test_promtool_check_rules() -> None:
    result = run_promtool("check", "rules", *(str(p) for p in sorted(RULES.glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
@needs_promtool
def test_promtool_unit_tests() -> None:
    # One promtool per file, all at once: each replays hours of rule evaluations.
    assert promtool is not None
    runs = {
        path.name: subprocess.Popen(
            [promtool, "test", "rules", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for path in UNIT_TESTS
    }
    outputs = {name: run.communicate(timeout=120)[0] for name, run in runs.items()}
    assert {name: out for name, out in outputs.items() if runs[name].returncode != 0} == {}


def test_rule_files_are_where_the_unit_tests_and_prometheus_yml_look() -> None:
    config = load(PROMETHEUS / "prometheus.yml")
    assert config["rule_files"] == ["rules/*.yml"]
    for path in UNIT_TESTS:
        for rule_file in load(path)["rule_files"]:
            assert (path.parent / rule_file).resolve().parent == RULES, path.name


def test_there_are_alerts_and_recording_rules() -> None:
    names = {rule["alert"] for rule in ALERTS}
    assert len(names) == len(ALERTS)
    assert {
        "EnphaseExporterDown",
        "EnphaseGatewayDown",
        "EnphaseGatewayDataStale",
        "EnphaseInverterNotReporting",
        "EnphaseInverterUnderperforming",
        "EnphaseTokenExpiringSoon",
        "EnphaseMeterNotMetering",
        "EnphaseGridDisconnected",
        "EnphaseBatteryLow",
        "EnphaseNoProductionInDaylight",
        "EnphaseMeterStatusAbnormal",
        "EnphaseProductionSourcesDisagree",
        "EnphaseGridDisabled",
        "EnphaseGeneratorRunningLong",
        "EnphaseGatewayNotReportingToEnlighten",
        "EnphaseDeviceFault",
        "EnphaseCredentialsRejected",
    } <= names
    assert {
        "gateway:enphase_grid_import_power_watts:clamp_min",
        "gateway:enphase_grid_export_power_watts:clamp_min",
        "gateway:enphase_self_consumption:ratio",
        "gateway:enphase_production_energy_joules:increase1h",
    } <= {rule["record"] for rule in RECORDS}


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: r["alert"])
def test_alert_has_for_severity_and_annotations(rule: dict) -> None:
    assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
    assert rule["labels"]["severity"] in SEVERITIES
    assert set(rule["annotations"]) >= {"summary", "description"}
    assert all(text.strip() for text in rule["annotations"].values())


@pytest.mark.parametrize("rule", RECORDS, ids=lambda r: r["record"])
def test_recording_rule_names_are_level_metric_operations(rule: dict) -> None:
    level, metric, operations = rule["record"].split(":")
    assert level == "gateway"
    assert re.fullmatch(r"enphase_[a-z0-9_]+", metric)
    assert re.fullmatch(r"[a-z0-9_]+", operations)
    # Every recorded series is per gateway: aggregated by gateway or built from such series.
    assert "by (gateway)" in rule["expr"] or "gateway:" in rule["expr"]


@functools.cache
def _unit_test_cases() -> tuple[dict[str, list[bool]], set[str]]:
    """alertname -> [fires?] per alert_rule_test case; the set of tested expressions."""
    alerts: dict[str, list[bool]] = {}
    exprs: set[str] = set()
    for path in UNIT_TESTS:
        for case in load(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                alerts.setdefault(check["alertname"], []).append(bool(check.get("exp_alerts")))
            exprs.update(check["expr"] for check in case.get("promql_expr_test", []))
    return alerts, exprs


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: r["alert"])
def test_every_alert_is_unit_tested_firing_and_silent(rule: dict) -> None:
    outcomes = _unit_test_cases()[0].get(rule["alert"], [])
    assert True in outcomes, f"no unit test where {rule['alert']} fires"
    assert False in outcomes, f"no unit test where {rule['alert']} stays silent"


def test_every_recording_rule_is_unit_tested() -> None:
    tested = _unit_test_cases()[1]
    assert {rule["record"] for rule in RECORDS} - tested == set()


def test_exporter_down_matches_the_scrape_job() -> None:
    (rule,) = [r for r in ALERTS if r["alert"] == "EnphaseExporterDown"]
    jobs = [job["job_name"] for job in load(PROMETHEUS / "prometheus.yml")["scrape_configs"]]
    assert f'up{{job="{jobs[0]}"}}' in rule["expr"]


@pytest.mark.parametrize("rule", ALERTS + RECORDS, ids=lambda r: r.get("alert") or r["record"])
def test_counters_only_inside_rate_or_increase(rule: dict) -> None:
    assert counters_outside_rate(rule["expr"]) == []


@needs_shared
def test_rules_use_only_contract_metrics() -> None:
    known = spec_metric_names(SPEC) | ADDITIONS
    used = set().union(*(metric_names(rule["expr"]) for rule in ALERTS + RECORDS))
    assert used - known == set()


def test_every_alert_is_documented() -> None:
    sections = set(re.findall(r"^## (\w+)$", (ROOT / "docs" / "alerts.md").read_text(), re.MULTILINE))
    assert sections == {rule["alert"] for rule in ALERTS}
