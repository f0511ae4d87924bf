"""``/info``: the XML identity page every firmware serves without authentication."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from envoy_exporter.model import GatewayInfo
from envoy_exporter.parsers import ParseError

_FLAGS = {"true": True, "false": False}


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
        serial=_required_text(device, "sn"),
        firmware=_required_text(device, "software"),
        part_number=_text(device, "pn"),
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


def _flag(parent: ET.Element, tag: str) -> bool | None:
    # An odd optional flag must not cost the serial and firmware that auth depends on: None.
    text = _text(parent, tag)
    return None if text is None else _FLAGS.get(text.lower())
