"""The status page: one card per gateway, plain server-rendered HTML that reads on a phone.

Each card says what the system does now (production, consumption, the grid, the batteries),
today's energy, which microinverters report, a chart of the last hour (inline SVG), and what is
wrong, in words. No script at all: the cards flow into one column on a narrow screen by CSS
alone. Every value from a gateway or the configuration is escaped.
"""

from __future__ import annotations

import html
import shlex
import time
from collections.abc import Sequence
from urllib.parse import quote

from envoy_exporter import __version__
from envoy_exporter.snapshot.history import SPAN_S, Point
from envoy_exporter.web.status import GatewayStatus, Problem


def capture_help(target: str | None) -> str:
    """The /capture page: how to record what a gateway answers. The server records nothing
    itself; the ``envoy-exporter capture`` tool does, on a machine that reaches the gateway."""
    name = shlex.quote(target) if target else "NAME"
    folder = shlex.quote(f"capture-{target}") if target else "capture-NAME"
    return (
        "To record what this gateway answers, for a bug report or a new test fixture, run on a\n"
        "machine that reaches it, with the exporter's configuration file:\n\n"
        f"    envoy-exporter capture --config.file exporter.yml --target {name} --out {folder}\n\n"
        "Serials, tokens, cookies and e-mail addresses are redacted from the copy; check it with\n"
        f"`envoy-exporter capture --redact-check --out {folder}`. docs/capture.md in the sources\n"
        "has the details.\n"
    )


_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;padding:1rem;color:#1a1a1a;background:#f4f5f7}
h1{font-size:1.3rem;margin:0 0 1rem}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,24rem),1fr));gap:1rem}
.gateway{background:#fff;border:1px solid #d8dbe0;border-radius:8px;padding:.9rem 1rem}
.gateway header{display:flex;justify-content:space-between;align-items:baseline;gap:.5rem}
.gateway h2{font-size:1.15rem;margin:0;word-break:break-word}
.state{font-weight:bold;font-size:.9rem;padding:.1rem .5rem;border-radius:1rem;white-space:nowrap}
.state.up{background:#e3f4e3;color:#0a6b0a}.state.down{background:#fde8ea;color:#b00020}
.state.unknown{background:#eee;color:#555}.state.partly{background:#fff3d6;color:#7a4b00}
.meta{color:#555;font-size:.85rem;margin:.2rem 0 .7rem;word-break:break-word}
.now{display:grid;grid-template-columns:repeat(auto-fit,minmax(6.5rem,1fr));gap:.5rem;margin:0 0 .6rem}
.figure{background:#f7f8fa;border-radius:6px;padding:.4rem .5rem}
.figure .label{display:block;font-size:.75rem;color:#555;text-transform:uppercase;letter-spacing:.03em}
.figure .value{display:block;font-size:1.35rem;font-weight:600;font-variant-numeric:tabular-nums}
.figure .sub{display:block;font-size:.8rem;color:#555}
.production .value{color:#a66300}.consumption .value{color:#1f5f99}
.gateway.down .figure .value{color:#777}
.stale{font-size:.8rem;color:#777;margin:-.3rem 0 .5rem}
p{margin:.35rem 0}
.chart{width:100%;height:5.5rem;display:block;margin:.5rem 0 .1rem;background:#fbfbfc;border-radius:4px}
.legend{font-size:.8rem;color:#555}
.key{display:inline-block;width:.8rem;height:.25rem;vertical-align:middle;margin-right:.25rem}
.problem{color:#b00020;word-break:break-word;margin:.5rem 0 0}
.advice{color:#333;font-size:.9rem;word-break:break-word}
.silent{color:#8a4b00}
.links{font-size:.85rem;color:#555;margin-top:.6rem}
footer{margin-top:1.2rem;font-size:.85rem;color:#555}
"""

_PRODUCTION_COLOUR = "#d98c00"
_CONSUMPTION_COLOUR = "#1f6fb2"


def render_landing(gateways: Sequence[GatewayStatus], telemetry_path: str, now: float) -> str:
    cards = "".join(_card(gateway, now) for gateway in gateways) or "<p>No gateway configured.</p>"
    metrics = html.escape(telemetry_path)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Enphase exporter</title><style>{_STYLE}</style></head><body>"
        "<h1>Enphase gateways</h1>"
        f"<main id='gateways'>{cards}</main>"
        f'<footer><p><a href="{metrics}">{metrics}</a> (every gateway) · '
        '<a href="/sd">/sd</a> (targets for Prometheus http_sd_configs) · '
        '<a href="/-/healthy">/-/healthy</a> · <a href="/-/ready">/-/ready</a></p>'
        f"<p>envoy-exporter {html.escape(__version__)}</p></footer>"
        "</body></html>\n"
    )


def _card(gateway: GatewayStatus, now: float) -> str:
    state = {None: ("unknown", "not yet"), True: ("up", "up"), False: ("down", "down")}[gateway.up]
    if gateway.up and gateway.problems:  # data comes, but not all of it: say so beside "up"
        state = ("up partly", "up, with problems")
    parts = [
        f'<header><h2>{_esc(gateway.name)}</h2><span class="state {state[0]}">{state[1]}</span></header>',
        f'<p class="meta">{_meta(gateway)}</p>',
        _figures(gateway),
        _stale(gateway),
        _today(gateway),
        _inverters(gateway),
        _chart(gateway.history, now),
        "".join(_problem(problem) for problem in gateway.problems),
        f'<p class="links">{_links(gateway, now)}</p>',
    ]
    anchor = html.escape(gateway.name, quote=True)
    return f'<section class="gateway {state[0]}" id="gw-{anchor}">{"".join(parts)}</section>'


def _meta(gateway: GatewayStatus) -> str:
    items = [f"serial {_esc(gateway.serial)}" if gateway.serial else None]
    items.append(f"firmware {_esc(gateway.firmware)}" if gateway.firmware else None)
    if gateway.data_age is not None:
        items.append(f"data {_duration(gateway.data_age)} old")
    elif gateway.up is None:
        items.append("waiting for the first answer")
    return " · ".join(item for item in items if item) or "&nbsp;"


def _figures(gateway: GatewayStatus) -> str:
    figures = [("production", "Production", _power(gateway.production_w), None)]
    if gateway.consumption_w is not None or gateway.up is None:
        # Left out where no consumption CT measures it, rather than shown as missing.
        figures.append(("consumption", "Consumption", _power(gateway.consumption_w), None))
    if gateway.net_w is not None:
        way = "importing" if gateway.net_w > 0 else "exporting"
        figures.append(("grid", "Grid", _power(abs(gateway.net_w)), way))
    if gateway.battery_soc is not None:
        soc = f"{gateway.battery_soc * 100:.0f} %"
        figures.append(("battery", "Battery", soc, _battery(gateway.battery_w)))
    cells = "".join(_figure(*figure) for figure in figures)
    return f'<div class="now">{cells}</div>'


def _figure(kind: str, label: str, value: str | None, sub: str | None) -> str:
    below = f'<span class="sub">{sub}</span>' if sub else ""
    return (
        f'<div class="figure {kind}"><span class="label">{label}</span>'
        f'<span class="value">{value or "—"}</span>{below}</div>'
    )


def _stale(gateway: GatewayStatus) -> str:
    """A gateway that stopped answering shows what it said last, and says so."""
    if gateway.up is not False or gateway.data_age is None:
        return ""
    return f'<p class="stale">Last known values, {_duration(gateway.data_age)} old</p>'


def _battery(watts: float | None) -> str | None:
    if watts is None or abs(watts) < 20:
        return "idle" if watts is not None else None
    return f"{'discharging' if watts > 0 else 'charging'} {_power(abs(watts))}"


def _today(gateway: GatewayStatus) -> str:
    items = []
    if gateway.production_today_j is not None:
        items.append(f"produced {_energy(gateway.production_today_j)}")
    if gateway.consumption_today_j is not None:
        items.append(f"used {_energy(gateway.consumption_today_j)}")
    return f'<p class="today">Today: {" · ".join(items)}</p>' if items else ""


# What a gateway's card says between the start-up's collection (production and consumption only)
# and the first scrape, which reads the rest.
_NOT_READ_YET = "Microinverters and batteries: not read yet; the first scrape reads them"


def _inverters(gateway: GatewayStatus) -> str:
    inverters = gateway.inverters
    if inverters is None and gateway.partial:
        return f'<p class="inverters">{_NOT_READ_YET}</p>'
    if inverters is None:
        return ""
    text = f"Microinverters: {inverters.reporting} of {inverters.total} reporting"
    if not inverters.silent:
        return f'<p class="inverters">{text}</p>'
    shown = ", ".join(_esc(serial) for serial in inverters.silent[:12])
    more = f" and {len(inverters.silent) - 12} more" if len(inverters.silent) > 12 else ""
    return f'<p class="inverters">{text}; <span class="silent">silent: {shown}{more}</span></p>'


def _chart(points: Sequence[Point], now: float) -> str:
    """Production and consumption as two lines, over the last hour or since the exporter's first
    collection when that is more recent; the scale is the peak of what is drawn."""
    drawn = [p for p in points if p.production_w is not None or p.consumption_w is not None]
    if len(drawn) < 2:
        return '<p class="legend">The chart of the last hour fills in as the exporter collects.</p>'
    start = max(now - SPAN_S, drawn[0].at)
    span = max(now - start, 1.0)
    peak = max(max(p.production_w or 0.0, p.consumption_w or 0.0) for p in drawn) or 1.0
    width, height = 300.0, 80.0

    def line(values: list[tuple[float, float | None]], colour: str) -> str:
        xy = [
            f"{(at - start) / span * width:.1f},{height - max(0.0, w) / peak * (height - 4):.1f}"
            for at, w in values
            if w is not None
        ]
        if len(xy) < 2:
            return ""
        return (
            f'<polyline points="{" ".join(xy)}" fill="none" stroke="{colour}" stroke-width="2" '
            'vector-effect="non-scaling-stroke" stroke-linejoin="round"/>'
        )

    lines = {
        "production": line([(p.at, p.production_w) for p in drawn], _PRODUCTION_COLOUR),
        "consumption": line([(p.at, p.consumption_w) for p in drawn], _CONSUMPTION_COLOUR),
    }
    colours = {"production": _PRODUCTION_COLOUR, "consumption": _CONSUMPTION_COLOUR}
    svg = (
        f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" preserveAspectRatio="none" '
        'role="img" aria-label="Production and consumption over the last hour">'
        + "".join(lines.values())
        + "</svg>"
    )
    keys = "".join(
        f'<span class="key" style="background:{colours[name]}"></span>{name} '
        for name, drawn_line in lines.items()
        if drawn_line
    )
    when = "last hour" if span >= SPAN_S - 60 else f"last {_duration(span)}"
    return svg + f'<p class="legend">{keys}· {when}, top of the chart {_power(peak)}</p>'


def _problem(problem: Problem) -> str:
    advice = f'<p class="advice">{_esc(problem.advice)}</p>' if problem.advice else ""
    return f'<p class="problem error">{_esc(problem.what)}</p>{advice}'


def _links(gateway: GatewayStatus, now: float) -> str:
    target = quote(gateway.name, safe="")
    items = [
        f'<a href="{html.escape(f"/probe?target={target}")}">probe</a>',
        f'<a href="{html.escape(f"/capture?target={target}")}">capture</a>',
    ]
    expiry = _expiry(gateway.token_expiry, now)
    if expiry is not None:
        items.append(_esc(expiry))
    return " · ".join(items)


def _esc(value: str | None) -> str:
    return "—" if value is None else html.escape(value)


def _power(watts: float | None) -> str | None:
    if watts is None:
        return None
    if abs(watts) < 1000:
        return f"{watts:.0f} W"
    return f"{watts / 1000:.2f} kW"


def _energy(joules: float) -> str:
    wh = joules / 3600
    if wh < 1000:
        return f"{wh:.0f} Wh"
    if wh < 1_000_000:
        return f"{wh / 1000:.1f} kWh"
    return f"{wh / 1_000_000:.2f} MWh"


def _expiry(expiry: float | None, now: float) -> str | None:
    if expiry is None:
        return None
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expiry))
    left = expiry - now
    return f"token expired {date}" if left <= 0 else f"token expires {date} (in {_duration(left)})"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
