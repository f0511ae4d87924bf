"""Helpers shared by the dashboard, rule and live Prometheus tests.

They read PromQL as text: enough to find metric names, selectors and range windows in the
queries this project writes, not a general parser (a real Prometheus checks the syntax).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path

from conftest import ROOT, SHARED

DASHBOARDS = ROOT / "dashboards"
PROMETHEUS = ROOT / "prometheus"
SPEC = SHARED / "spec" / "metrics.md"

# Series the exporter exports beyond the shared contract.
ADDITIONS = frozenset(
    {
        "enphase_endpoint_up",
        "enphase_energy_corrections_total",
        "enphase_production_energy_reported_joules",
        # docs/metrics.md, "additions", used by dashboards and alerts
        "enphase_inverters_power_watts",
        "enphase_storage_power_watts",
        "enphase_device_status",
        "enphase_gateway_enlighten_last_report_timestamp_seconds",
        "enphase_gateway_enlighten_connected",
        "enphase_gateway_network_interface_up",
        "enphase_gateway_network_signal_ratio",
        "enphase_credentials_rejected",
        # money and days (docs/metrics.md)
        "enphase_tariff_period",
        "enphase_gateway_utc_offset_seconds",
        "enphase_dry_contact_mode",
        "enphase_dry_contact_type",
        "enphase_dry_contact_soc_low_setting_ratio",
        "enphase_dry_contact_soc_high_setting_ratio",
    }
)

# What Grafana substitutes for its variables, as the live test sends the queries.
GRAFANA_VARIABLES = {
    "$gateway": ".*",
    "$__rate_interval": "15s",
    "$__range": "1m",
    "$__interval": "5s",
    # the Money dashboard's hidden variables: the gateway's days against UTC's (docs/dashboards.md)
    "${day_shift}": "1",
    "${today_s}": "60",
    "${month_s}": "60",
}

_METRIC = re.compile(r"(?<![\w:])enphase_[a-z0-9_]+(?![\w:])")
_SELECTOR = re.compile(r"(?<![\w:])(enphase_[a-z0-9_]+)(?![\w:])(\{[^}]*\})?")
_RANGE_CALL = re.compile(r"\b(rate|irate|increase|delta|idelta|deriv|[a-z]+_over_time)\s*\(")


def metric_names(expr: str) -> set[str]:
    return set(_METRIC.findall(expr))


def selectors(expr: str) -> Iterator[tuple[str, str]]:
    """(metric, matchers) for every ``enphase_*`` selector; matchers is "" when it has none."""
    for match in _SELECTOR.finditer(expr):
        yield match.group(1), match.group(2) or ""


def _call_argument(expr: str, open_paren: int) -> str:
    """The text between the parenthesis at ``open_paren`` and its match."""
    depth = 0
    for i in range(open_paren, len(expr)):
        depth += {"(": 1, ")": -1}.get(expr[i], 0)
        if depth == 0:
            return expr[open_paren + 1 : i]
    raise ValueError(f"unbalanced parentheses in {expr!r}")


def range_calls(expr: str) -> Iterator[tuple[str, str]]:
    """(function, window) for every call that takes a range vector; window is "" if none."""
    for match in _RANGE_CALL.finditer(expr):
        argument = _call_argument(expr, match.end() - 1)
        windows = re.findall(r"\[([^\]]+)\]\s*$", argument.split(" offset ")[0].rstrip())
        yield match.group(1), windows[0] if windows else ""


def counters_outside_rate(expr: str) -> list[str]:
    """``*_total`` series used other than as the direct argument of rate() or increase()."""
    found = []
    for match in _METRIC.finditer(expr):
        before = expr[: match.start()].rstrip()
        if match.group(0).endswith("_total") and not re.search(r"\b(rate|increase)\s*\($", before):
            found.append(match.group(0))
    return found


def substitute(expr: str, variables: dict[str, str] = GRAFANA_VARIABLES) -> str:
    # Longest names first, so "$__range" does not eat the start of a longer variable.
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace(name, variables[name])
    return expr


def spec_metric_names(spec: Path = SPEC) -> set[str]:
    """Metric names of the shared contract. A row may abbreviate siblings as ``_suffix``
    after a full name: ``enphase_inverter_dc_voltage_volts``, ``_dc_current_amperes``."""
    names: set[str] = set()
    for line in spec.read_text().splitlines():
        prefix = None
        for token in re.findall(r"`([a-z_]+)`", line):
            if token.startswith("enphase_"):
                names.add(token)
                prefix = "_".join(token.split("_")[:2])
            elif token.startswith("_") and prefix:
                names.add(prefix + token)
    return names


@functools.cache
def dashboards() -> dict[str, dict]:
    """File name -> parsed dashboard (cached: callers only read it)."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, rows included, nested row panels too."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) for every panel target."""
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                yield name, panel["title"], target["expr"]
