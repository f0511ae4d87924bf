"""Build the Grafana dashboards of envoy-exporter from code.

    python dashboards/build.py           # (re)write dashboards/*.json
    python dashboards/build.py --check   # exit 1 when a committed JSON differs from this code

Standard library only, and deterministic: the same code always gives the same bytes, so the
committed JSON can be compared with the generator in the tests.

Conventions every panel follows (``tests/test_dashboards.py`` enforces them):

* the data source is the ``datasource`` template variable, never a fixed uid, so the files work
  both when imported by hand and when provisioned from disk;
* every selector filters ``gateway=~"$gateway"``;
* ``rate()`` / ``increase()`` take ``$__rate_interval`` for curves and ``$__range`` for the totals
  of the selected time range; lifetime counters (``*_total``) are only read through them, never
  shown raw, because their absolute value says nothing and their resets would show as cliffs;
* energy is exported in joules and shown in kWh: ``/ 3600000`` and unit ``kwatth``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent

DS = {"type": "prometheus", "uid": "${datasource}"}
GATEWAY = 'gateway=~"$gateway"'
RATE = "[$__rate_interval]"
KWH = 3_600_000  # joules per kWh
SCHEMA_VERSION = 39
TAGS = ["enphase", "solar", "envoy-exporter"]
GRID_WIDTH = 24


def sel(metric: str, **labels: str) -> str:
    """A selector with the gateway filter first; ``labels`` are exact matches unless the value
    starts with another matcher (``=~``, ``!~``, ``!=``)."""
    matchers = [GATEWAY]
    for name, value in labels.items():
        op = next((o for o in ("=~", "!~", "!=") if value.startswith(o)), "")
        matchers.append(f'{name}{op or "="}"{value[len(op) :]}"')
    return f"{metric}{{{', '.join(matchers)}}}"


def kwh(expr: str) -> str:
    return f"{expr} / {KWH}"


def range_joules(metric: str, by: str = "gateway", **labels: str) -> str:
    """Energy over the dashboard's time range, from a lifetime counter (never the gateway's
    "today", which several firmware get wrong)."""
    return f"sum by ({by}) (increase({sel(metric, **labels)}[$__range]))"


def range_total(metric: str, by: str = "gateway", **labels: str) -> str:
    return kwh(range_joules(metric, by, **labels))


# Grid flow from the net-consumption measurement: positive = import, negative = export.
NET_POWER = f"sum by (gateway) ({sel('enphase_consumption_power_watts', measurement='net')})"
PEER_MEDIAN = f"quantile by (gateway) (0.5, {sel('enphase_inverter_power_watts')})"
REPORT_AGE = f"time() - {sel('enphase_inverter_last_report_timestamp_seconds')}"


def imbalance(metric: str) -> str:
    """NEMA unbalance: the largest deviation of a phase from the mean of the phases, as a ratio
    of that mean."""
    phases = sel(metric)
    mean = f"avg by (gateway, meter) ({phases})"
    deviation = f"max by (gateway, meter) (abs({phases} - on (gateway, meter) group_left () {mean}))"
    return f"{deviation} / {mean}"


# --------------------------------------------------------------------------------------------
# Panels


@dataclass(frozen=True)
class Q:
    """One Prometheus query of a panel."""

    expr: str
    legend: str = "{{gateway}}"
    instant: bool = False
    table: bool = False  # table format: one column per label, for table panels


@dataclass
class Panel:
    kind: str
    title: str
    unit: str
    queries: tuple[Q, ...]
    description: str
    width: int = 12
    height: int = 8
    options: dict = field(default_factory=dict)
    defaults: dict = field(default_factory=dict)
    overrides: list = field(default_factory=list)
    transformations: list = field(default_factory=list)
    interval: str | None = None  # the panel's query step ("1d": one point per day)

    def to_json(self, panel_id: int, x: int, y: int) -> dict:
        targets = []
        for i, q in enumerate(self.queries):
            target = {
                "datasource": DS,
                "editorMode": "code",
                "expr": q.expr,
                "instant": q.instant,
                "legendFormat": q.legend,
                "range": not q.instant,
                "refId": chr(ord("A") + i),
            }
            if q.table:
                target["format"] = "table"
            targets.append(target)
        panel = {
            "datasource": DS,
            "description": self.description,
            "fieldConfig": {"defaults": {"unit": self.unit, **self.defaults}, "overrides": self.overrides},
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "id": panel_id,
            "options": self.options,
            "targets": targets,
            "title": self.title,
            "type": self.kind,
        }
        if self.transformations:
            panel["transformations"] = self.transformations
        if self.interval:
            panel["interval"] = self.interval
        return panel


@dataclass(frozen=True)
class Row:
    title: str


REDUCE_LAST = {"calcs": ["lastNotNull"], "fields": "", "values": False}
LEGEND_TABLE = {
    "calcs": ["lastNotNull", "max", "mean"],
    "displayMode": "table",
    "placement": "bottom",
    "showLegend": True,
}
LEGEND_LIST = {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True}


def thresholds(*steps: tuple[float | None, str]) -> dict:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in steps]}


GREEN_ONLY = thresholds((None, "green"))


def state_mapping(off: str, on: str, colors: tuple[str, str] = ("red", "green")) -> list[dict]:
    """Value mappings for a 0/1 gauge; ``colors`` for 0 and 1 (red/green: 0 is a problem)."""
    return [
        {
            "options": {
                "0": {"color": colors[0], "index": 0, "text": off},
                "1": {"color": colors[1], "index": 1, "text": on},
            },
            "type": "value",
        }
    ]


def timeseries(
    title: str,
    unit: str,
    *queries: Q,
    description: str,
    width: int = 12,
    height: int = 8,
    legend: dict = LEGEND_TABLE,
    draw: str = "line",
    no_value: str | None = None,
    **defaults: object,
) -> Panel:
    if no_value:
        defaults["noValue"] = no_value
    custom = {
        "drawStyle": draw,
        "fillOpacity": 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
    }
    return Panel(
        "timeseries",
        title,
        unit,
        queries,
        description,
        width,
        height,
        options={"legend": legend, "tooltip": {"mode": "multi", "sort": "desc"}},
        defaults={"color": {"mode": "palette-classic"}, "custom": custom, **defaults},
    )


def stat(
    title: str,
    unit: str,
    *queries: Q,
    description: str,
    width: int = 4,
    height: int = 4,
    mappings: list | None = None,
    steps: dict = GREEN_ONLY,
    decimals: int | None = None,
    graph: bool = True,
    text_mode: str = "auto",
) -> Panel:
    defaults: dict = {"color": {"mode": "thresholds"}, "thresholds": steps}
    if mappings:
        defaults["mappings"] = mappings
    if decimals is not None:
        defaults["decimals"] = decimals
    options = {
        "colorMode": "value",
        "graphMode": "area" if graph else "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": REDUCE_LAST,
        "textMode": text_mode,
    }
    return Panel("stat", title, unit, queries, description, width, height, options, defaults)


def gauge(
    title: str,
    unit: str,
    *queries: Q,
    description: str,
    steps: dict,
    width: int = 4,
    height: int = 8,
    low: float = 0,
    high: float = 1,
) -> Panel:
    defaults = {"color": {"mode": "thresholds"}, "max": high, "min": low, "thresholds": steps}
    options = {"reduceOptions": REDUCE_LAST, "showThresholdLabels": False, "showThresholdMarkers": True}
    return Panel("gauge", title, unit, queries, description, width, height, options, defaults)


def bargauge(
    title: str,
    unit: str,
    *queries: Q,
    description: str,
    width: int = 12,
    height: int = 8,
    steps: dict = GREEN_ONLY,
    **defaults: object,
) -> Panel:
    options = {
        "displayMode": "gradient",
        "orientation": "horizontal",
        "reduceOptions": REDUCE_LAST,
        "showUnfilled": True,
        "valueMode": "color",
    }
    return Panel(
        "bargauge",
        title,
        unit,
        queries,
        description,
        width,
        height,
        options,
        {"color": {"mode": "thresholds"}, "thresholds": steps, **defaults},
    )


@dataclass(frozen=True)
class Column:
    """One value column of a table panel: an instant query merged with the others on labels."""

    header: str
    expr: str
    unit: str
    decimals: int | None = None


def table(
    title: str,
    columns: Iterable[Column],
    *,
    description: str,
    keys: tuple[str, ...],
    width: int = 24,
    height: int = 8,
    show_values: bool = True,
) -> Panel:
    """A table with one row per ``keys`` combination: instant queries in table format, merged.

    Each query is summed by ``keys`` so that every frame has the same label columns (no
    ``__name__``, job or instance) and the merge joins them row by row; each value column is
    renamed and gets its own unit."""
    columns = tuple(columns)
    by = ", ".join(keys)
    queries = tuple(
        Q(f"sum by ({by}) ({c.expr})", legend="__auto", instant=True, table=True) for c in columns
    )
    rename, order, overrides = {}, {key: i for i, key in enumerate(keys)}, []
    hidden = {"Time": True}
    for i, column in enumerate(columns):
        field_name = f"Value #{chr(ord('A') + i)}" if len(columns) > 1 else "Value"
        rename[field_name] = column.header
        order[field_name] = len(keys) + i
        if not show_values:
            hidden[field_name] = True
        properties: list[dict] = [{"id": "unit", "value": column.unit}]
        if column.decimals is not None:
            properties.append({"id": "decimals", "value": column.decimals})
        overrides.append({"matcher": {"id": "byName", "options": column.header}, "properties": properties})
    transformations = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {"excludeByName": hidden, "indexByName": order, "renameByName": rename},
        },
    ]
    return Panel(
        "table",
        title,
        "none",
        queries,
        description,
        width,
        height,
        options={"cellHeight": "sm", "footer": {"show": False}, "showHeader": True},
        defaults={"custom": {"align": "auto", "filterable": True}},
        overrides=overrides,
        transformations=transformations,
    )


def info_table(title: str, metric: str, keys: tuple[str, ...], description: str, height: int = 6) -> Panel:
    """A table of the labels of an ``*_info`` series (its value, always 1, is hidden)."""
    return table(
        title,
        [Column("Value", sel(metric), "none")],
        description=description,
        keys=keys,
        height=height,
        show_values=False,
    )


# --------------------------------------------------------------------------------------------
# Dashboards


def layout(items: Iterable[Panel | Row]) -> list[dict]:
    """Place panels left to right, wrapping at the grid width; a row starts a new line."""
    panels: list[dict] = []
    x = y = line_height = 0
    for panel_id, item in enumerate(items, start=1):
        if isinstance(item, Row):
            y += line_height
            panels.append(
                {
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                    "id": panel_id,
                    "panels": [],
                    "title": item.title,
                    "type": "row",
                }
            )
            x, y, line_height = 0, y + 1, 0
            continue
        if x + item.width > GRID_WIDTH:
            x, y, line_height = 0, y + line_height, 0
        panels.append(item.to_json(panel_id, x, y))
        x += item.width
        line_height = max(line_height, item.height)
    return panels


def templating(extra: tuple[dict, ...] = ()) -> dict:
    return {
        "list": [
            {
                "current": {},
                "hide": 0,
                "includeAll": False,
                "label": "Data source",
                "multi": False,
                "name": "datasource",
                "options": [],
                "query": "prometheus",
                "refresh": 1,
                "regex": "",
                "type": "datasource",
            },
            {
                "allValue": ".*",
                "current": {},
                "datasource": DS,
                "definition": "label_values(enphase_up, gateway)",
                "hide": 0,
                "includeAll": True,
                "label": "Gateway",
                "multi": True,
                "name": "gateway",
                "options": [],
                "query": "label_values(enphase_up, gateway)",
                "refresh": 2,
                "regex": "",
                "sort": 1,
                "type": "query",
            },
            *extra,
        ]
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    items: Iterable[Panel | Row],
    span: str,
    variables: tuple[dict, ...] = (),
    timezone: str = "browser",
) -> dict:
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": True,
                "icon": "external link",
                "includeVars": True,
                "keepTime": True,
                "tags": ["envoy-exporter"],
                "title": "Enphase dashboards",
                "type": "dashboards",
            }
        ],
        "panels": layout(items),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": TAGS,
        "templating": templating(variables),
        "time": {"from": span, "to": "now"},
        "timepicker": {},
        "timezone": timezone,
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


def overview() -> dict:
    production = f"sum by (gateway) ({sel('enphase_production_power_watts')})"
    consumption = f"sum by (gateway) ({sel('enphase_consumption_power_watts', measurement='total')})"
    grid_import = f"clamp_min({NET_POWER}, 0)"
    grid_export = f"clamp_min(-{NET_POWER}, 0)"
    # By type, not by unit: AC batteries report a unit's power only on firmware 8 (device data)
    battery = f"sum by (gateway) ({sel('enphase_storage_power_watts')})"
    produced = range_joules("enphase_production_energy_joules_total")
    consumed = range_joules("enphase_consumption_energy_joules_total", measurement="total")
    imported = range_joules("enphase_meter_energy_delivered_joules_total", meter="net-consumption")
    exported = range_joules("enphase_meter_energy_received_joules_total", meter="net-consumption")
    percent_steps = thresholds((None, "red"), (0.3, "orange"), (0.6, "green"))
    return dashboard(
        "enphase-overview",
        "Enphase / Overview",
        "Where the power goes now, and the energy of the selected time range.",
        [
            Row("Now"),
            stat("Production", "watt", Q(production), description="Solar production now."),
            stat("Consumption", "watt", Q(consumption), description="Everything the house uses now."),
            stat(
                "Grid import",
                "watt",
                Q(grid_import),
                description="Power drawn from the grid now (net-consumption CT).",
                steps=thresholds((None, "green"), (100, "orange")),
            ),
            stat(
                "Grid export",
                "watt",
                Q(grid_export),
                description="Power fed into the grid now (net-consumption CT).",
            ),
            stat(
                "Battery",
                "watt",
                Q(battery),
                description="Battery power now: positive = discharging into the house, negative = charging.",
            ),
            stat(
                "Battery charge",
                "percentunit",
                Q(f"{sel('enphase_storage_state_of_charge_ratio')}"),
                description="State of charge of all batteries together.",
                steps=thresholds((None, "red"), (0.1, "orange"), (0.3, "green")),
            ),
            Row("Power flow"),
            timeseries(
                "Power flow",
                "watt",
                Q(production, "{{gateway}} production"),
                Q(consumption, "{{gateway}} consumption"),
                Q(grid_import, "{{gateway}} grid import"),
                Q(grid_export, "{{gateway}} grid export"),
                Q(battery, "{{gateway}} battery (+ discharge)"),
                description=(
                    "Production, consumption, grid import and export, and battery power. Import and "
                    "export come from the sign of the net-consumption measurement."
                ),
                width=24,
                height=10,
            ),
            timeseries(
                "Production by phase",
                "watt",
                Q(
                    f"sum by (gateway, phase) ({sel('enphase_production_phase_power_watts')})",
                    "{{gateway}} {{phase}}",
                ),
                description="Production per phase (production CT); empty without a production CT.",
            ),
            timeseries(
                "Consumption by phase",
                "watt",
                Q(
                    f"sum by (gateway, phase) "
                    f"({sel('enphase_consumption_phase_power_watts', measurement='total')})",
                    "{{gateway}} {{phase}}",
                ),
                description="Total consumption per phase: shows a phase that carries most of the load.",
            ),
            Row("Energy in the selected time range"),
            stat(
                "Produced",
                "kwatth",
                Q(kwh(produced)),
                description="Energy produced in the time range, from the lifetime counter.",
                decimals=2,
                graph=False,
            ),
            stat(
                "Consumed",
                "kwatth",
                Q(kwh(consumed)),
                description="Energy consumed in the time range.",
                decimals=2,
                graph=False,
            ),
            stat(
                "Imported",
                "kwatth",
                Q(kwh(imported)),
                description="Energy bought from the grid in the time range (net-consumption CT, delivered).",
                decimals=2,
                graph=False,
            ),
            stat(
                "Exported",
                "kwatth",
                Q(kwh(exported)),
                description="Energy sold to the grid in the time range (net-consumption CT, received).",
                decimals=2,
                graph=False,
            ),
            stat(
                "Self-consumption",
                "percentunit",
                Q(f"clamp(1 - {exported} / {produced}, 0, 1)"),
                description="Share of the production used on site (house or battery) instead of exported.",
                steps=percent_steps,
                graph=False,
            ),
            stat(
                "Self-sufficiency",
                "percentunit",
                Q(f"clamp(1 - {imported} / {consumed}, 0, 1)"),
                description="Share of the consumption covered without the grid.",
                steps=percent_steps,
                graph=False,
            ),
            money_stat(
                "Cost",
                money_range(COST),
                "What the energy bought from the grid cost in the time range, each part at the rate in "
                "force when it was bought (Money and days dashboard).",
            ),
            money_stat(
                "Credit",
                money_range(CREDIT),
                "What the energy sold to the grid earned in the time range, each part at the export rate "
                "in force when it was sold.",
            ),
        ],
        "now-24h",
    )


def meters() -> dict:
    def per_meter(title: str, metric: str, unit: str, description: str) -> Panel:
        return timeseries(
            title,
            unit,
            Q(sel(metric), "{{gateway}} {{meter}}"),
            description=description,
            width=8,
        )

    def per_phase(title: str, metric: str, unit: str, description: str, **defaults: object) -> Panel:
        return timeseries(
            title,
            unit,
            Q(sel(metric), "{{gateway}} {{meter}} {{phase}}"),
            description=description,
            **defaults,
        )

    return dashboard(
        "enphase-meters",
        "Enphase / Meters",
        "The gateway's CT meters: their health, the production CT against the inverters, and power, "
        "voltage, current, frequency and power factor per phase.",
        [
            info_table(
                "Meters",
                "enphase_meter_info",
                ("gateway", "meter", "eid", "state", "phase_mode", "phase_count"),
                "The CT meters the gateway knows, and whether they are enabled.",
            ),
            *ct_health(),
            Row("Power per meter"),
            per_meter(
                "Active power",
                "enphase_meter_power_watts",
                "watt",
                "Active power per meter. Net-consumption: positive = import, negative = export.",
            ),
            per_meter(
                "Reactive power",
                "enphase_meter_reactive_power_var",
                "voltampreact",
                "Reactive power per meter.",
            ),
            per_meter(
                "Apparent power",
                "enphase_meter_apparent_power_voltamperes",
                "voltamp",
                "Apparent power per meter.",
            ),
            Row("Per phase"),
            per_phase("Active power per phase", "enphase_meter_phase_power_watts", "watt", "Active power."),
            per_phase(
                "Reactive power per phase",
                "enphase_meter_phase_reactive_power_var",
                "voltampreact",
                "Reactive power.",
            ),
            per_phase(
                "Apparent power per phase",
                "enphase_meter_phase_apparent_power_voltamperes",
                "voltamp",
                "Apparent power.",
            ),
            per_phase(
                "Voltage",
                "enphase_meter_phase_voltage_volts",
                "volt",
                "Line-to-neutral voltage per phase. Inverters disconnect when it stays too high.",
            ),
            per_phase("Current", "enphase_meter_phase_current_amperes", "amp", "Current per phase."),
            per_phase(
                "Frequency",
                "enphase_meter_phase_frequency_hertz",
                "hertz",
                "Grid frequency seen by each phase.",
                decimals=2,
            ),
            per_phase(
                "Power factor",
                "enphase_meter_phase_power_factor",
                "none",
                "Power factor per phase (-1 to 1; the sign follows the direction of the flow).",
                decimals=2,
                min=-1,
                max=1,
            ),
            Row("Phase imbalance"),
            timeseries(
                "Voltage imbalance",
                "percentunit",
                Q(imbalance("enphase_meter_phase_voltage_volts"), "{{gateway}} {{meter}}"),
                description=(
                    "Largest deviation of a phase voltage from the mean of the phases (NEMA). "
                    "Above 2 % deserves a word with the grid operator."
                ),
            ),
            timeseries(
                "Current imbalance",
                "percentunit",
                Q(imbalance("enphase_meter_phase_current_amperes"), "{{gateway}} {{meter}}"),
                description="Largest deviation of a phase current from the mean of the phases.",
            ),
            Row("Energy in the selected time range"),
            bargauge(
                "Delivered",
                "kwatth",
                Q(
                    range_total("enphase_meter_energy_delivered_joules_total", by="gateway, meter"),
                    "{{gateway}} {{meter}}",
                ),
                description="Energy delivered per meter (on the net-consumption meter: imported).",
                decimals=2,
            ),
            bargauge(
                "Received",
                "kwatth",
                Q(
                    range_total("enphase_meter_energy_received_joules_total", by="gateway, meter"),
                    "{{gateway}} {{meter}}",
                ),
                description="Energy received per meter (on the net-consumption meter: exported).",
                decimals=2,
            ),
        ],
        "now-6h",
    )


# Production as the CT measures it and as the microinverters report it; their ratio only while
# the inverters produce enough for it to mean something (at night it is 0 / 0).
CT_PRODUCTION = f"sum by (gateway) ({sel('enphase_production_power_watts', source='meter')})"
INVERTERS_PRODUCTION = f"sum by (gateway) ({sel('enphase_inverters_power_watts')})"
CT_RATIO = (
    f"{CT_PRODUCTION} / on (gateway) {INVERTERS_PRODUCTION} and on (gateway) ({INVERTERS_PRODUCTION} > 50)"
)


def ct_health() -> list[Panel | Row]:
    status = sel("enphase_meter_metering_status")
    # A meter with no flag set gets one row flag="none" = 0, so the table shows every CT.
    flags = (
        f"{sel('enphase_meter_status_flag')} or on (gateway, meter) "
        f'label_replace(0 * {status}, "flag", "none", "", "")'
    )
    ratio_steps = thresholds((None, "red"), (0.9, "green"), (1.1001, "red"))
    return [
        Row("CT health"),
        table(
            "Metering status",
            [Column("In force", f"{status} == 1", "none")],
            description=(
                "Each enabled CT's metering status (/ivp/meters): normal, not-metering, check-wiring, ... "
                "Anything but normal raises EnphaseMeterStatusAbnormal."
            ),
            keys=("gateway", "meter", "status"),
            width=12,
            show_values=False,
        ),
        table(
            "Status flags",
            [Column("Set", flags, "none")],
            description=(
                "The flags each CT raises, e.g. negative-production or production-imbalance "
                "(1 = set; none = no flag). A flag raises EnphaseMeterStatusAbnormal."
            ),
            keys=("gateway", "meter", "flag"),
            width=12,
        ),
        Row("Production CT against the inverters"),
        timeseries(
            "Production CT and inverters",
            "watt",
            Q(CT_PRODUCTION, "{{gateway}} production CT"),
            Q(INVERTERS_PRODUCTION, "{{gateway}} inverters"),
            description=(
                "Production as the production CT measures it and as the microinverters report it "
                "(enphase_inverters_power_watts). The inverters report every 5 minutes, so their curve "
                "lags the CT's; over an hour the two should agree within a few percent."
            ),
            width=16,
        ),
        stat(
            "CT / inverters",
            "percentunit",
            Q(CT_RATIO),
            description=(
                "The production CT's reading over the inverters' own figure, while they produce over "
                "50 W. Far from 100 % for an hour: a CT on the wrong wire, a bad calibration, or "
                "inverters that stopped reporting (EnphaseProductionSourcesDisagree)."
            ),
            width=8,
            height=8,
            steps=ratio_steps,
            decimals=1,
        ),
        timeseries(
            "CT / inverters over time",
            "percentunit",
            Q(CT_RATIO),
            description="The same ratio over time; short swings are clouds passing between two reports.",
            width=24,
        ),
    ]


def inverters() -> dict:
    power = sel("enphase_inverter_power_watts")
    relative = f"{power} / on (gateway) group_left () {PEER_MEDIAN}"
    ratio_steps = thresholds((None, "red"), (0.5, "orange"), (0.8, "green"))
    return dashboard(
        "enphase-inverters",
        "Enphase / Inverters",
        "Every microinverter: its power, its last report, and how it compares with its peers.",
        [
            stat(
                "Inverters",
                "none",
                Q(f"count by (gateway) ({power})"),
                description="Microinverters the gateway lists.",
                graph=False,
            ),
            stat(
                "Reporting now",
                "none",
                Q(f"sum by (gateway) ({REPORT_AGE} < bool 900)"),
                description="Microinverters that reported within 15 minutes (all of them stop at night).",
            ),
            stat(
                "Inverter production",
                "watt",
                Q(f"sum by (gateway) ({power})"),
                description="Sum of the last reports of the microinverters.",
            ),
            stat(
                "Peer median",
                "watt",
                Q(PEER_MEDIAN),
                description="Median of the microinverters' last reports.",
            ),
            stat(
                "Devices not communicating",
                "none",
                Q(f"sum by (gateway) (1 - {sel('enphase_device_communicating')})"),
                description="Devices of the inventory that the gateway cannot reach.",
                steps=thresholds((None, "green"), (1, "red")),
            ),
            stat(
                "Devices not producing",
                "none",
                Q(f"sum by (gateway) (1 - {sel('enphase_device_producing')})"),
                description="Devices of the inventory not producing now (all of them at night).",
                steps=thresholds((None, "green"), (1, "orange")),
            ),
            Row("Power"),
            timeseries(
                "Power per inverter",
                "watt",
                Q(power, "{{gateway}} {{serial}}"),
                description="Last reported power of each microinverter (they report every 5 minutes or so).",
                width=24,
                height=10,
            ),
            timeseries(
                "Power relative to the peers' median",
                "percentunit",
                Q(relative, "{{gateway}} {{serial}}"),
                description=(
                    "Each microinverter against the median of the microinverters of its gateway. A "
                    "panel that stays well below 100 % in sunshine is shaded, dirty or failing."
                ),
            ),
            bargauge(
                "Now, relative to the peers' median",
                "percentunit",
                Q(relative, "{{serial}}"),
                description="The same ratio now, one bar per microinverter.",
                steps=ratio_steps,
                min=0,
                max=1.5,
            ),
            timeseries(
                "Age of the last report",
                "s",
                Q(REPORT_AGE, "{{gateway}} {{serial}}"),
                description="Seconds since each microinverter last reported; one that grows alone stopped.",
                width=24,
            ),
            Row("Details"),
            table(
                "Device status",
                [Column("Reported", f"{sel('enphase_device_status')} == 1", "none")],
                description=(
                    "The status codes each device reports (/inventory.json device_status). Anything but "
                    "envoy.global.ok is a condition; a microinverter's dc-pwr-low is normal at night. "
                    "A fault that lasts raises EnphaseDeviceFault."
                ),
                keys=("gateway", "device_type", "serial", "status"),
                show_values=False,
            ),
            table(
                "Inverters",
                [
                    Column("Power", power, "watt"),
                    Column("Max power", sel("enphase_inverter_max_power_watts"), "watt"),
                    Column("Vs. median", relative, "percentunit", decimals=0),
                    Column("Report age", REPORT_AGE, "s"),
                    Column(
                        "Last report",
                        f"{sel('enphase_inverter_last_report_timestamp_seconds')} * 1000",
                        "dateTimeAsIso",
                    ),
                    Column("Today", kwh(sel("enphase_inverter_energy_today_joules")), "kwatth", decimals=3),
                    Column("Temperature", sel("enphase_inverter_temperature_celsius"), "celsius"),
                ],
                description="One row per microinverter. Today is the gateway's own figure.",
                keys=("gateway", "serial"),
                height=12,
            ),
            timeseries(
                "Temperature",
                "celsius",
                Q(sel("enphase_inverter_temperature_celsius"), "{{gateway}} {{serial}}"),
                description="Microinverter temperature, where the gateway reports it (/ivp/pdm/device_data).",
            ),
            timeseries(
                "AC voltage",
                "volt",
                Q(sel("enphase_inverter_ac_voltage_volts"), "{{gateway}} {{serial}}"),
                description="AC voltage at each microinverter, where reported; rises along long AC runs.",
            ),
            timeseries(
                "DC voltage",
                "volt",
                Q(sel("enphase_inverter_dc_voltage_volts"), "{{gateway}} {{serial}}"),
                description="Panel (DC) voltage at each microinverter, where reported.",
            ),
            timeseries(
                "DC current",
                "amp",
                Q(sel("enphase_inverter_dc_current_amperes"), "{{gateway}} {{serial}}"),
                description="Panel (DC) current at each microinverter, where reported.",
            ),
            bargauge(
                "Energy per inverter in the selected time range",
                "kwatth",
                Q(range_total("enphase_inverter_energy_joules_total", by="gateway, serial"), "{{serial}}"),
                description="From each microinverter's lifetime counter, where the gateway reports it.",
                width=24,
                height=10,
                decimals=2,
            ),
        ],
        "now-24h",
    )


def storage() -> dict:
    soc_steps = thresholds((None, "red"), (0.1, "orange"), (0.3, "green"))
    battery = sel("enphase_battery_power_watts")
    return dashboard(
        "enphase-storage",
        "Enphase / Storage",
        "Batteries (Encharge / IQ Battery, AC Battery), reserve, storage settings, the grid relay, "
        "dry contacts and the generator.",
        [
            gauge(
                "State of charge",
                "percentunit",
                Q(sel("enphase_storage_state_of_charge_ratio")),
                description="All batteries together.",
                steps=soc_steps,
            ),
            stat(
                "Reserve",
                "percentunit",
                Q(sel("enphase_storage_reserve_ratio")),
                description="Charge kept back for grid outages.",
                graph=False,
            ),
            stat(
                "Capacity",
                "kwatth",
                Q(kwh(sel("enphase_storage_capacity_joules"))),
                description="Usable capacity of all batteries together.",
                decimals=1,
                graph=False,
            ),
            stat(
                "Available energy",
                "kwatth",
                Q(kwh(sel("enphase_storage_available_energy_joules"))),
                description="Energy stored now.",
                decimals=1,
            ),
            stat(
                "Battery power",
                "watt",
                Q(f"sum by (gateway) ({battery})"),
                description="Positive = discharging, negative = charging.",
            ),
            stat(
                "Grid",
                "none",
                Q(sel("enphase_grid_connected")),
                description="Whether the system controller's mains relay is closed (on grid).",
                mappings=state_mapping("Off grid", "On grid"),
                steps=thresholds((None, "red"), (1, "green")),
                graph=False,
            ),
            Row("Over time"),
            timeseries(
                "State of charge",
                "percentunit",
                Q(sel("enphase_storage_state_of_charge_ratio"), "{{gateway}} all batteries"),
                Q(sel("enphase_storage_reserve_ratio"), "{{gateway}} reserve"),
                Q(sel("enphase_battery_state_of_charge_ratio"), "{{gateway}} {{serial}}"),
                description="Charge of all batteries, each battery, and the reserve.",
                min=0,
                max=1,
            ),
            timeseries(
                "Battery power",
                "watt",
                Q(battery, "{{gateway}} {{serial}}"),
                description="Per battery: positive = discharging, negative = charging.",
            ),
            timeseries(
                "Battery temperature",
                "celsius",
                Q(sel("enphase_battery_temperature_celsius"), "{{gateway}} {{serial}}"),
                description="Temperature of each battery.",
            ),
            timeseries(
                "Grid connected",
                "none",
                Q(sel("enphase_grid_connected")),
                description="1 = on grid, 0 = islanded (grid outage or manual off-grid).",
                draw="line",
                min=0,
                max=1,
                mappings=state_mapping("off grid", "on grid"),
            ),
            table(
                "Batteries",
                [
                    Column("Charge", sel("enphase_battery_state_of_charge_ratio"), "percentunit", decimals=0),
                    Column("Power", battery, "watt"),
                    Column("Capacity", kwh(sel("enphase_battery_capacity_joules")), "kwatth", decimals=1),
                    Column("Temperature", sel("enphase_battery_temperature_celsius"), "celsius"),
                ],
                description="One row per battery.",
                keys=("gateway", "serial"),
                width=12,
            ),
            table(
                "Relays",
                [Column("Closed", sel("enphase_relay_closed"), "none")],
                description="Q-Relays (NSRB) of the inventory: 1 = closed, the array is connected.",
                keys=("gateway", "serial"),
                width=12,
            ),
            *storage_settings(),
        ],
        "now-24h",
    )


def state_name(title: str, metric: str, label: str, description: str) -> Panel:
    """A stat showing the state in force of a state set (one series = 1 per state)."""
    return stat(
        title,
        "none",
        Q(f"{sel(metric)} == 1", f"{{{{{label}}}}}"),
        description=description,
        graph=False,
        text_mode="name",
    )


def storage_settings() -> list[Panel | Row]:
    """Settings, grid controller, dry contacts and generator (read on the slow settings cache)."""
    soc = sel("enphase_storage_state_of_charge_ratio")
    closed = thresholds((None, "text"), (1, "orange"))
    return [
        Row("Settings and grid controller"),
        state_name(
            "Storage mode",
            "enphase_storage_mode",
            "mode",
            "The battery profile in force (/admin/lib/tariff): self-consumption, backup, economy, ...",
        ),
        stat(
            "Reserve setting",
            "percentunit",
            Q(sel("enphase_storage_reserve_setting_ratio")),
            description="The configured backup reserve. The reserve in force is on the Reserve panel above.",
            graph=False,
        ),
        stat(
            "Very-low setting",
            "percentunit",
            Q(sel("enphase_storage_very_low_setting_ratio")),
            description="The configured very-low state of charge.",
            graph=False,
        ),
        stat(
            "Charge from grid",
            "none",
            Q(sel("enphase_storage_charge_from_grid")),
            description="Whether the batteries may charge from the grid.",
            mappings=state_mapping("Not allowed", "Allowed", ("text", "blue")),
            steps=thresholds((None, "text"), (1, "blue")),
            graph=False,
        ),
        stat(
            "Grid enabled",
            "none",
            Q(sel("enphase_grid_enabled")),
            description=(
                "Whether the system controller's mains relay is allowed to close (mains_admin_state). "
                "Disabled means the operator took the system off grid on purpose."
            ),
            mappings=state_mapping("Disabled", "Enabled"),
            steps=thresholds((None, "red"), (1, "green")),
            graph=False,
        ),
        state_name(
            "Grid mode",
            "enphase_grid_mode",
            "mode",
            "The grid mode of the system controller or Meter Collar: multimode-ongrid, grid-tied, ...",
        ),
        timeseries(
            "Reserve setting against state of charge",
            "percentunit",
            Q(f"avg by (gateway) ({soc})", "{{gateway}} state of charge"),
            Q(sel("enphase_storage_reserve_setting_ratio"), "{{gateway}} reserve setting"),
            Q(sel("enphase_storage_reserve_ratio"), "{{gateway}} reserve in force"),
            Q(sel("enphase_storage_very_low_setting_ratio"), "{{gateway}} very-low setting"),
            description=(
                "The batteries' charge with the configured reserve and very-low settings. In backup "
                "the charge stays up near full; in self-consumption it falls to the reserve and stops."
            ),
            min=0,
            max=1,
        ),
        timeseries(
            "System controller temperature",
            "celsius",
            Q(sel("enphase_system_controller_temperature_celsius"), "{{gateway}} {{serial}}"),
            description="Temperature of the IQ System Controller (Enpower) or IQ Meter Collar.",
        ),
        Row("Dry contacts and generator"),
        table(
            "Dry contacts",
            [
                Column("Closed", sel("enphase_dry_contact_closed"), "none"),
                Column("Shed below", sel("enphase_dry_contact_soc_low_setting_ratio"), "percentunit"),
                Column("Restore above", sel("enphase_dry_contact_soc_high_setting_ratio"), "percentunit"),
            ],
            description="The system controller's load-control relays: 1 = closed; in soc mode a contact "
            "sheds its load below the first state of charge and restores it above the second.",
            keys=("gateway", "contact"),
            width=8,
        ),
        stat(
            "Generator",
            "none",
            Q(sel("enphase_generator_present")),
            description="Whether a generator is configured on the system controller.",
            mappings=state_mapping("None", "Present", ("text", "blue")),
            steps=thresholds((None, "text"), (1, "blue")),
            graph=False,
        ),
        stat(
            "Generator relay",
            "none",
            Q(sel("enphase_generator_relay_closed")),
            description="Closed while the generator feeds the home.",
            mappings=state_mapping("Open", "Closed (running)", ("text", "orange")),
            steps=closed,
            graph=False,
        ),
        timeseries(
            "Dry contacts and generator relay",
            "none",
            Q(sel("enphase_dry_contact_closed"), "{{gateway}} {{contact}}"),
            Q(sel("enphase_generator_relay_closed"), "{{gateway}} generator"),
            description="1 = closed. A generator relay closed for hours: a long outage or a stuck relay.",
            width=8,
            draw="line",
            min=0,
            max=1,
        ),
        info_table(
            "Dry contact modes",
            "enphase_dry_contact_mode",
            ("gateway", "contact", "mode"),
            "How each dry contact is switched: manual, or soc (by the batteries' state of charge).",
        ),
        info_table(
            "Dry contact loads",
            "enphase_dry_contact_type",
            ("gateway", "contact", "type"),
            "What each dry contact switches: none, load, 3rd-pv (a third-party PV inverter), ...",
        ),
    ]


def exporter() -> dict:
    requests = f"rate({sel('enphase_gateway_requests_total')}{RATE})"
    failed = f"sum by (gateway) (rate({sel('enphase_gateway_requests_total', code='!~2..')}{RATE}))"
    return dashboard(
        "enphase-exporter",
        "Enphase / Exporter health",
        "Is the exporter getting fresh data from each gateway, and at what cost?",
        [
            stat(
                "Gateway up",
                "none",
                Q(sel("enphase_up")),
                description="1 when the last collection got production data.",
                mappings=state_mapping("down", "up"),
                steps=thresholds((None, "red"), (1, "green")),
                graph=False,
            ),
            stat(
                "Data age",
                "s",
                Q(sel("enphase_data_age_seconds")),
                description="Age of the data served; it grows while the gateway does not answer.",
                steps=thresholds((None, "green"), (120, "orange"), (600, "red")),
            ),
            stat(
                "Collection time",
                "s",
                Q(sel("enphase_scrape_duration_seconds")),
                description="How long the last collection from the gateway took.",
            ),
            stat(
                "Token expires in",
                "s",
                Q(f"{sel('enphase_token_expiry_timestamp_seconds')} - time()"),
                description="Time left on the gateway token (firmware 7 and later).",
                steps=thresholds((None, "red"), (14 * 86400, "orange"), (30 * 86400, "green")),
                graph=False,
            ),
            stat(
                "Failed requests / s",
                "reqps",
                # "or 0 * all": show 0 rather than "No data" while nothing has failed yet.
                Q(f"{failed} or 0 * sum by (gateway) ({requests})"),
                description="Requests to the gateway that did not answer 2xx.",
                steps=thresholds((None, "green"), (0.01, "orange")),
            ),
            stat(
                "Endpoints down",
                "none",
                Q(f"sum by (gateway) (1 - {sel('enphase_endpoint_up')})"),
                description="Endpoints whose last collection failed.",
                steps=thresholds((None, "green"), (1, "orange")),
            ),
            info_table(
                "Gateways",
                "enphase_gateway_info",
                ("gateway", "serial", "firmware", "part_number", "metered", "auth"),
                "What /info says about each gateway, and how the exporter authenticates.",
                height=5,
            ),
            Row("Collection"),
            timeseries(
                "Data age",
                "s",
                Q(sel("enphase_data_age_seconds")),
                description="Age of the data served per gateway.",
            ),
            timeseries(
                "Collection time",
                "s",
                Q(sel("enphase_scrape_duration_seconds")),
                description="Seconds the collection from each gateway took.",
            ),
            timeseries(
                "Gateway requests by endpoint and code",
                "reqps",
                Q(
                    f"sum by (gateway, endpoint, code) ({requests})",
                    "{{gateway}} {{endpoint}} {{code}}",
                ),
                description=(
                    "Requests the exporter sent to the gateway. Cached endpoints are asked less "
                    "often than the scrape interval; 401s mean the credentials are being renewed."
                ),
                width=24,
            ),
            timeseries(
                "Endpoint up",
                "none",
                Q(sel("enphase_endpoint_up"), "{{gateway}} {{endpoint}}"),
                description="1 when the endpoint's last collection succeeded.",
                min=0,
                max=1,
            ),
            timeseries(
                "Counter corrections",
                "short",
                Q(
                    f"sum by (gateway, kind) "
                    f"(increase({sel('enphase_energy_corrections_total')}[$__rate_interval]))",
                    "{{gateway}} {{kind}}",
                ),
                description=(
                    "Lifetime counters the exporter had to correct: 32-bit wrap, bogus zero, gateway "
                    "reset, implausible jump."
                ),
                draw="bars",
            ),
            timeseries(
                "Lifetime production as the gateway reports it",
                "kwatth",
                Q(kwh(sel("enphase_production_energy_reported_joules")), "{{gateway}} {{source}}"),
                description="The raw lifetime figure, before the exporter's counter corrections (auditing).",
                width=24,
            ),
            *connectivity(),
        ],
        "now-6h",
    )


def connectivity() -> list[Panel | Row]:
    """The gateway's own link to Enlighten and its network interfaces (/home.json)."""
    interface = ("gateway", "interface", "type")
    return [
        Row("Gateway connectivity"),
        stat(
            "Enlighten",
            "none",
            Q(sel("enphase_gateway_enlighten_connected")),
            description="Whether the gateway reaches Enlighten (web_comm in /home.json).",
            mappings=state_mapping("Not connected", "Connected"),
            steps=thresholds((None, "red"), (1, "green")),
            graph=False,
        ),
        stat(
            "Last report to Enlighten",
            "s",
            Q(f"time() - {sel('enphase_gateway_enlighten_last_report_timestamp_seconds')}"),
            description=(
                "How long ago the gateway last reported to Enlighten; it reports every 5 to 15 minutes. "
                "A day raises EnphaseGatewayNotReportingToEnlighten."
            ),
            steps=thresholds((None, "green"), (3600, "orange"), (86400, "red")),
            graph=False,
        ),
        table(
            "Network interfaces",
            [
                Column("Link", sel("enphase_gateway_network_interface_up"), "none"),
                Column("Signal", sel("enphase_gateway_network_signal_ratio"), "percentunit", decimals=0),
            ],
            description=(
                "Each network interface of the gateway: link (1 = up) and, for Wi-Fi and cellular, "
                "the signal."
            ),
            keys=interface,
            width=16,
        ),
    ]


# --------------------------------------------------------------------------------------------
# Money and days

COST = "enphase_grid_import_cost_total"
CREDIT = "enphase_grid_export_credit_total"
PRICE = "enphase_tariff_price_per_kilowatt_hour"
NO_MONEY = "No net-consumption CT or no tariff: cost and credit need both (see docs/tariffs.md)"
OFFSET = sel("enphase_gateway_utc_offset_seconds")


def hidden_variable(name: str, query: str, description: str) -> dict:
    """A variable holding one whole number of seconds computed by Prometheus for the first selected
    gateway: how its local calendar sits against UTC. Refreshed with the time range."""
    return {
        "current": {},
        "datasource": DS,
        "definition": query,
        "description": description,
        "hide": 2,
        "includeAll": False,
        "label": name,
        "multi": False,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 2,
        "regex": "/\\s(-?[0-9]+)(\\.[0-9]*)?\\s/",
        "type": "query",
    }


# ``offset ${day_shift}s`` moves a daily ``increase(...[1d])`` drawn at a UTC midnight (the
# dashboard's time zone is UTC, so Grafana puts daily steps there) onto the gateway's local day of
# that date: its local midnight is ``-offset`` seconds from UTC midnight, and the day ends a day later.
DAY_SHIFT = "${day_shift}"
TODAY = "${today_s}"  # seconds since the gateway's local midnight (+1: never a 0 s window)
MONTH = "${month_s}"  # seconds since its local month began
LOCAL_NOW = f"(time() + {OFFSET})"
MONEY_VARIABLES = (
    hidden_variable(
        "day_shift", f"query_result(max({OFFSET}) - 86400)", "The gateway's local day against UTC's."
    ),
    hidden_variable(
        "today_s",
        f"query_result(max(floor({LOCAL_NOW} % 86400)) + 1)",
        "Seconds since the gateway's local midnight.",
    ),
    hidden_variable(
        "month_s",
        f"query_result(max(floor((day_of_month({LOCAL_NOW}) - 1) * 86400 + {LOCAL_NOW} % 86400)) + 1)",
        "Seconds since the gateway's local month began.",
    ),
)


def money_range(metric: str, window: str = "$__range") -> str:
    return f"sum by (gateway, currency) (increase({sel(metric)}[{window}]))"


def per_day(metric: str, by: str = "gateway", **labels: str) -> str:
    """A lifetime counter's increase over each of the gateway's local days (one point a day)."""
    return f"sum by ({by}) (increase({sel(metric, **labels)}[1d] offset {DAY_SHIFT}s))"


def by_period(metric: str, direction: str) -> str:
    """Money per tariff period: each step's increase under the period in force then."""
    period = sel("enphase_tariff_period", direction=direction)
    return (
        f"sum by (gateway, currency, period) (increase({sel(metric)}{RATE}) "
        f"* on (gateway) group_left (period) {period})"
    )


def money_stat(title: str, expr: str, description: str) -> Panel:
    panel = stat(
        title,
        "none",
        Q(expr, "{{gateway}} {{currency}}"),
        description=description,
        decimals=2,
        graph=False,
    )
    panel.defaults["noValue"] = NO_MONEY
    return panel


def daily_bars(title: str, unit: str, *queries: Q, description: str, no_value: str | None = None) -> Panel:
    panel = timeseries(title, unit, *queries, description=description, draw="bars", width=24)
    panel.defaults["custom"] = {**panel.defaults["custom"], "fillOpacity": 80}
    if no_value:
        panel.defaults["noValue"] = no_value
    panel.interval = "1d"
    return panel


def money() -> dict:
    consumed = range_joules("enphase_consumption_energy_joules_total", measurement="total")
    imported = range_joules("enphase_meter_energy_delivered_joules_total", meter="net-consumption")
    net_cost = f"({money_range(COST)} - {money_range(CREDIT)})"
    daily_description = (
        "One bar per day of the gateway's own calendar: from its local midnight (its configured "
        "time zone, else the one it reports) to the next; the bar is drawn at the day's date. "
        "On the days clocks change, a bar covers 24 hours from midnight."
    )
    return dashboard(
        "enphase-money",
        "Enphase / Money and days",
        "What the grid cost and paid, at the rates in force when the energy flowed, and the energy "
        "of each of the gateway's days.",
        [
            Row("Prices now"),
            stat(
                "Import price",
                "none",
                Q(
                    f"sum by (gateway, currency) ({sel(PRICE, direction='import')})",
                    "{{gateway}} {{currency}}/kWh",
                ),
                description="The rate in force now for energy bought from the grid, per kWh (the "
                "gateway's own tariff, else the configuration's).",
                decimals=4,
            ),
            stat(
                "Export price",
                "none",
                Q(
                    f"sum by (gateway, currency) ({sel(PRICE, direction='export')})",
                    "{{gateway}} {{currency}}/kWh",
                ),
                description="The rate in force now for energy sold to the grid, per kWh.",
                decimals=4,
            ),
            stat(
                "Import period",
                "none",
                Q(sel("enphase_tariff_period", direction="import"), "{{period}}"),
                description="The tariff period in force now, as the tariff names it (flat: a single rate).",
                graph=False,
                text_mode="name",
            ),
            stat(
                "Export period",
                "none",
                Q(sel("enphase_tariff_period", direction="export"), "{{period}}"),
                description="The export tariff period in force now.",
                graph=False,
                text_mode="name",
            ),
            timeseries(
                "Rates over time",
                "none",
                Q(
                    f"sum by (gateway, direction, currency) ({sel(PRICE)})",
                    "{{gateway}} {{direction}} {{currency}}/kWh",
                ),
                description="The import and export rates in force over the time range: the tariff's periods.",
                width=8,
                height=4,
                legend=LEGEND_LIST,
            ),
            Row("Cost and credit"),
            money_stat(
                "Cost today",
                money_range(COST, f"{TODAY}s"),
                "Grid import cost since the gateway's local midnight.",
            ),
            money_stat(
                "Cost this month",
                money_range(COST, f"{MONTH}s"),
                "Grid import cost since the 1st of the month, the gateway's local time.",
            ),
            money_stat(
                "Credit today",
                money_range(CREDIT, f"{TODAY}s"),
                "Grid export credit since the gateway's local midnight.",
            ),
            money_stat(
                "Credit this month",
                money_range(CREDIT, f"{MONTH}s"),
                "Grid export credit since the 1st of the month, the gateway's local time.",
            ),
            money_stat(
                "Net cost in the time range",
                net_cost,
                "Import cost less export credit over the selected time range.",
            ),
            money_stat(
                "Effective price of the energy used",
                f"{net_cost} / on (gateway) group_left () ({kwh(consumed)})",
                "What each kWh the house used cost over the time range, solar and battery included: "
                "import cost less export credit, divided by the energy consumed.",
            ),
            timeseries(
                "Cost by rate period",
                "none",
                Q(by_period(COST, "import"), "{{gateway}} {{period}} ({{currency}})"),
                description="Grid import cost in each step, under the tariff period in force then.",
                draw="bars",
                no_value=NO_MONEY,
            ),
            timeseries(
                "Credit by rate period",
                "none",
                Q(by_period(CREDIT, "export"), "{{gateway}} {{period}} ({{currency}})"),
                description="Grid export credit in each step, under the export period in force then.",
                draw="bars",
                no_value=NO_MONEY,
            ),
            money_stat(
                "Average import price",
                f"{money_range(COST)} / on (gateway) group_left () ({kwh(imported)})",
                "The import cost over the time range divided by the energy imported: the rate the grid "
                "energy actually cost, periods weighed by use.",
            ),
            Row("Days"),
            daily_bars(
                "Energy per day",
                "kwatth",
                Q(kwh(per_day("enphase_production_energy_joules_total")), "{{gateway}} produced"),
                Q(
                    kwh(per_day("enphase_consumption_energy_joules_total", measurement="total")),
                    "{{gateway}} consumed",
                ),
                Q(
                    kwh(per_day("enphase_meter_energy_delivered_joules_total", meter="net-consumption")),
                    "{{gateway}} imported",
                ),
                Q(
                    kwh(per_day("enphase_meter_energy_received_joules_total", meter="net-consumption")),
                    "{{gateway}} exported",
                ),
                description=daily_description,
            ),
            daily_bars(
                "Cost and credit per day",
                "none",
                Q(per_day(COST, by="gateway, currency"), "{{gateway}} cost ({{currency}})"),
                Q(per_day(CREDIT, by="gateway, currency"), "{{gateway}} credit ({{currency}})"),
                description=daily_description,
                no_value=NO_MONEY,
            ),
        ],
        "now-7d",
        variables=MONEY_VARIABLES,
        timezone="utc",
    )


DASHBOARDS = {
    "enphase-overview.json": overview,
    "enphase-meters.json": meters,
    "enphase-inverters.json": inverters,
    "enphase-storage.json": storage,
    "enphase-exporter.json": exporter,
    "enphase-money.json": money,
}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = HERE / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python dashboards/build.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
