"""``/info``: the XML identity page every firmware serves without authentication."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from envoy_exporter.snapshot.model import GatewayInfo
from envoy_exporter.snapshot.parsers import ParseError

_FLAGS = {"true": True, "false": False}
# The serial, firmware and part number become label values and log text: a gateway that sends a
# 100 kB serial must not make a 14 MB /metrics. Real serials are 12 digits; the shared captures
# also hold anonymised ones ("xxxxxxxxxxxx", "envoyserial"), hence letters too.
_SERIAL = re.compile(r"[0-9A-Za-z]{1,20}")
_FIRMWARE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,31}")  # "D7.6.175", "R3.9.36"
_PART_NUMBER = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,31}")  # "800-00547-r05"


def parse_info(body: bytes) -> GatewayInfo:
    # /info never declares entities; refusing them keeps entity-expansion bombs out of expat.
    if b"<!ENTITY" in body:
        raise ParseError("/info must not declare XML entities")
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, LookupError) as exc:  # LookupError: unknown encoding declaration
        raise ParseError(f"/info is not XML: {exc}") from exc
    device = root.find("device")
    if device is None:
        raise ParseError("/info has no <device> element")
    return GatewayInfo(
        serial=_checked(_required_text(device, "sn"), _SERIAL, "sn", "a serial of up to 20 digits"),
        firmware=_checked(_required_text(device, "software"), _FIRMWARE, "software", "a firmware version"),
        # Optional, and worth no more than itself: an odd part number is left out.
        part_number=_valid(_text(device, "pn"), _PART_NUMBER),
        metered=_flag(device, "imeter"),
        web_tokens=_flag(root, "web-tokens"),  # beside <device>, not inside it
    )


def _text(parent: ET.Element, tag: str) -> str | None:
    # Only direct children: <package> elements further down carry their own <pn>.
    element = parent.find(tag)
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def _required_text(parent: ET.Element, tag: str) -> str:
    text = _text(parent, tag)
    if text is None:
        raise ParseError(f"/info has no <{tag}>")
    return text


def _checked(text: str, pattern: re.Pattern[str], tag: str, what: str) -> str:
    if not pattern.fullmatch(text):
        raise ParseError(f"/info <{tag}> is not {what}: {text[:40]!r}{'...' if len(text) > 40 else ''}")
    return text


def _valid(text: str | None, pattern: re.Pattern[str]) -> str | None:
    return text if text is not None and pattern.fullmatch(text) else None


def _flag(parent: ET.Element, tag: str) -> bool | None:
    # An odd optional flag must not cost the serial and firmware that auth depends on: None.
    text = _text(parent, tag)
    return None if text is None else _FLAGS.get(text.lower())
