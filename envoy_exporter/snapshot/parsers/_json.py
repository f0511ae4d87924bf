"""JSON helpers shared by the parsers.

Gateways answer HTML login pages, empty bodies and cut-off JSON where JSON belongs, and
their numbers are occasionally strings or nulls. These helpers turn every such surprise into
``ParseError`` so that a parser never leaks ``KeyError``, ``TypeError`` or
``json.JSONDecodeError``. Every ``as_*`` helper maps JSON ``null`` to ``None`` ("not
reported"); ``what`` names the field in the error message.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from envoy_exporter.snapshot.parsers import ParseError

# No gateway figure comes near this (lifetime Wh ~1e10, epoch seconds ~2e9). A larger one is
# garbage, and turned into joules it could overflow to inf: it is treated as not reported.
ABSURD = 1e18
# Longer integer literals are absurd. int() refuses more than 4,300 digits with a ValueError
# (sys.int_info.default_max_str_digits); below that its time grows with the square of the length.
_INT_DIGITS = 20
# The longest text a real gateway sends where the parsers read one is a 41-character status code.
MAX_TEXT = 64
_FIT_TEXT = re.compile(rf"[^\x00-\x1f\x7f]{{0,{MAX_TEXT}}}")


def _reject_constant(name: str) -> float:
    raise ParseError(f"non-finite number {name} in JSON")


def _parse_int(literal: str) -> int | float:
    """An integer literal; a very long one becomes a float (inf past 1e308) for ``as_float`` to
    drop, so that one absurd value costs only itself."""
    return int(literal) if len(literal) <= _INT_DIGITS else float(literal)


def load_json(body: bytes) -> Any:
    """Decode a JSON body; HTML, empty, truncated or non-UTF-8 bodies raise ``ParseError``."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError("body is not UTF-8") from exc
    stripped = text.lstrip()
    if not stripped:
        raise ParseError("empty body")
    if stripped.startswith("<"):
        raise ParseError("HTML or XML instead of JSON")
    try:
        return _decode(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ParseError(f"not JSON: {exc}") from exc


def _decode(text: str) -> Any:
    # NaN/Infinity are not JSON; Python accepts them unless told otherwise.
    try:
        # The decoder's own integers: a hook called for each of the hundreds in a readings
        # answer costs a quarter of its decoding. An integer too long for it is retried below.
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError:
        raise
    except ValueError:  # an integer literal past the int-string limit
        # Each literal then costs time linear in its length, and a long one becomes a float
        # (inf past 1e308) for ``as_float`` to drop: one absurd value costs only itself.
        return json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)


def expect_dict(obj: Any, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ParseError(f"{what}: expected an object, got {type(obj).__name__}")
    return obj


def expect_list(obj: Any, what: str) -> list[Any]:
    if not isinstance(obj, list):
        raise ParseError(f"{what}: expected a list, got {type(obj).__name__}")
    return obj


def as_float(value: Any, what: str) -> float | None:
    """A number as float; None for null and for an absurd magnitude (past ``ABSURD``, or too
    large for a float): one garbage value must not cost the rest of the answer. Strings, lists
    and bools are not numbers here."""
    kind = value.__class__
    # The common cases first, with one comparison each: a parser reads hundreds of numbers per
    # answer. (NaN and the infinities fail the comparison, as they fail ``isfinite`` below.)
    if kind is float:
        return value if -ABSURD <= value <= ABSURD else None
    if kind is int:
        try:
            result = float(value)
        except OverflowError:  # an integer too large for a float
            return None
        return result if -ABSURD <= result <= ABSURD else None
    if value is None:
        return None
    # bool is an int subclass; a true/false where a number belongs is a schema surprise.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParseError(f"{what}: expected a number, got {type(value).__name__}")
    try:
        result = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    if not math.isfinite(result) or abs(result) > ABSURD:
        return None
    return result


def number_at(obj: dict[str, Any], key: str, what: str) -> float | None:
    """``as_float(obj.get(key), f"{what}.{key}")``, the name made only where it is needed (an
    answer that is not a number): the readings parsed on every scrape hold hundreds of numbers."""
    value = obj.get(key)
    kind = value.__class__
    if kind is float and -ABSURD <= value <= ABSURD:
        return value
    if kind is int and -ABSURD <= value <= ABSURD:  # the integer-valued readings, as many firmware writes
        return float(value)
    return as_float(value, f"{what}.{key}")


def as_percent(value: Any, what: str) -> float | None:
    """A setting in percent (0-100) as a 0-1 ratio; a value outside 0-100 is not a setting."""
    percent = as_float(value, what)
    if percent is None:
        return None
    if not 0.0 <= percent <= 100.0:
        raise ParseError(f"{what}: {percent} is not a percentage")
    return percent / 100.0


def as_int(value: Any, what: str) -> int | None:
    """An integer; a float is accepted only when it is integral (some firmware writes 3.0)."""
    number = as_float(value, what)
    if number is None:
        return None
    if not number.is_integer():
        raise ParseError(f"{what}: expected an integer, got {value!r}")
    return int(number)


def as_timestamp(value: Any, what: str) -> float | None:
    """Epoch seconds; 0 means "never" on the gateway (idle ACB sections, silent devices) -> None."""
    seconds = as_float(value, what)
    return seconds or None


def as_bool(value: Any, what: str) -> bool | None:
    """A JSON boolean; 0 and 1 are accepted because some firmware writes flags as numbers."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ParseError(f"{what}: expected a boolean, got {type(value).__name__}")


def as_str(value: Any, what: str) -> str | None:
    """A string; None for null and for text unfit to be a label value or a log word (longer than
    ``MAX_TEXT`` or with control characters): every string the parsers read becomes a label,
    where a 100 kB serial is repeated on every series of its device."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParseError(f"{what}: expected a string, got {type(value).__name__}")
    return value if _FIT_TEXT.fullmatch(value) else None


def group_devices(group: dict[str, Any], group_type: str) -> list[dict[str, Any]]:
    """The ``devices`` of one ``{type, devices}`` group, the shape both ``/inventory.json`` and
    ``/ivp/ensemble/inventory`` use; a group without the key has none."""
    entries = group.get("devices")
    if entries is None:
        return []
    return [
        expect_dict(entry, f"{group_type} device") for entry in expect_list(entries, f"{group_type}.devices")
    ]
