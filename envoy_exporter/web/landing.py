"""The landing page: one row per gateway, plain server-rendered HTML that reads on a phone.

No script at all: a table that turns into one card per gateway on a narrow screen, by CSS alone.
Every value from a gateway or the configuration is escaped.
"""

from __future__ import annotations

import html
import shlex
import time
from collections.abc import Sequence
from urllib.parse import quote

from envoy_exporter import __version__
from envoy_exporter.web.status import GatewayStatus


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


_COLUMNS = ("Gateway", "Serial", "Firmware", "Up", "Data age", "Token expiry", "Last error", "Links")

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1rem;color:#1a1a1a;background:#fff}
h1{font-size:1.4rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}
th{background:#f3f3f3}
.up{color:#0a6b0a;font-weight:bold}.down{color:#b00020;font-weight:bold}.unknown{color:#666}
.error{color:#b00020;word-break:break-word}
@media (max-width:700px){
 thead{display:none}
 table,tbody,tr,td{display:block;width:auto}
 tr{border:1px solid #ccc;border-radius:6px;margin:0 0 .8rem;padding:.3rem}
 td{border:0;padding:.2rem .4rem}
 td::before{content:attr(data-label) ": ";font-weight:bold}
}
"""


def render_landing(gateways: Sequence[GatewayStatus], telemetry_path: str, now: float) -> str:
    rows = "".join(_row(gateway, now) for gateway in gateways)
    if not rows:
        rows = f'<tr><td colspan="{len(_COLUMNS)}">No gateway configured.</td></tr>'
    head = "".join(f"<th>{name}</th>" for name in _COLUMNS)
    metrics = html.escape(telemetry_path)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Enphase exporter</title><style>{_STYLE}</style></head><body>"
        "<h1>Enphase gateway exporter</h1>"
        f"<table id='gateways'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        f'<p><a href="{metrics}">{metrics}</a> (every gateway) · '
        '<a href="/sd">/sd</a> (targets for Prometheus http_sd_configs) · '
        '<a href="/-/healthy">/-/healthy</a> · <a href="/-/ready">/-/ready</a></p>'
        f"<p>envoy-exporter {html.escape(__version__)}</p>"
        "</body></html>\n"
    )


def _row(gateway: GatewayStatus, now: float) -> str:
    probe = f"/probe?target={quote(gateway.name, safe='')}"
    capture = f"/capture?target={quote(gateway.name, safe='')}"
    links = f'<a href="{html.escape(probe)}">probe</a> · <a href="{html.escape(capture)}">capture</a>'
    cells = (
        _esc(gateway.name),
        _esc(gateway.serial),
        _esc(gateway.firmware),
        _up(gateway.up),
        _esc(_age(gateway.data_age)),
        _esc(_expiry(gateway.token_expiry, now)),
        f'<span class="error">{_esc(gateway.last_error)}</span>' if gateway.last_error else "",
        links,
    )
    pairs = zip(_COLUMNS, cells, strict=True)
    tds = "".join(f'<td data-label="{label}">{cell}</td>' for label, cell in pairs)
    return f'<tr class="gateway">{tds}</tr>'


def _esc(value: str | None) -> str:
    return "—" if value is None else html.escape(value)


def _up(up: bool | None) -> str:
    if up is None:
        return '<span class="unknown">not yet</span>'
    return '<span class="up">up</span>' if up else '<span class="down">down</span>'


def _age(seconds: float | None) -> str | None:
    return None if seconds is None else _duration(seconds)


def _expiry(expiry: float | None, now: float) -> str | None:
    if expiry is None:
        return None
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expiry))
    left = expiry - now
    return f"{date} (expired)" if left <= 0 else f"{date} (in {_duration(left)})"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
