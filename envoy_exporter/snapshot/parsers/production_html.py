"""``/production`` on the legacy Envoy-C/R/LCD (firmware 3.x): an HTML page, no JSON API.

The figures sit in table cells after their labels, rounded to three digits with a unit
prefix: "Currently 6.63 kW", "Today 53.6 kWh", "Past Week 405 kWh", "Since Installation
133 MWh". Only the English page is understood.
"""

from __future__ import annotations

import re
from decimal import Decimal

from envoy_exporter.snapshot.model import WH, Reading
from envoy_exporter.snapshot.parsers import ParseError

# A tag holds no "<": so an unclosed "<" is given up at the next one, and a page of "<" costs
# time linear in its size (with "[^>]*" every "<" scanned to the end: quadratic).
_TAG = re.compile(r"<[^<>]*>")
_PREFIX = {"": Decimal(1), "k": Decimal(1000), "M": Decimal(1_000_000)}
# Bounded digits: the page shows three significant ones, and floats must stay finite.
_NUMBER = r"(\d{1,12}(?:\.\d{1,6})?)\s*([kM]?)"
# Power must not match the "W" of "Wh", hence the look-ahead.
_POWER = re.compile(r"Currently\s+" + _NUMBER + r"W(?!h)")
_ENERGY = {
    label: re.compile(re.escape(label) + r"\s+" + _NUMBER + r"Wh\b")
    for label in ("Today", "Past Week", "Since Installation")
}


def parse_production_html(body: bytes) -> Reading:
    # Tags become spaces so "<td>Today</td> <td> 53.6 kWh</td>" reads "Today 53.6 kWh".
    text = " ".join(_TAG.sub(" ", body.decode("utf-8", errors="replace")).split())
    power = _scaled(_POWER, text)
    today, week, lifetime = (_scaled(_ENERGY[label], text) for label in _ENERGY)
    if power is None and today is None and week is None and lifetime is None:
        raise ParseError("no production figures on the /production page")
    return Reading(
        power_w=power,
        today_j=None if today is None else today * WH,
        last_seven_days_j=None if week is None else week * WH,
        lifetime_j=None if lifetime is None else lifetime * WH,
    )


def _scaled(pattern: re.Pattern[str], text: str) -> float | None:
    match = pattern.search(text)
    if match is None:
        return None
    # Decimal keeps "6.63 kW" at exactly 6630 W.
    return float(Decimal(match.group(1)) * _PREFIX[match.group(2)])
