"""``/home.json``: the gateway's own status page: its link to Enlighten and its network
interfaces (Ethernet, Wi-Fi, cellular modem)."""

from __future__ import annotations

from typing import Any

from envoy_exporter.snapshot.model import HomeStatus, NetworkInterface
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers._json import (
    as_bool,
    as_float,
    as_str,
    as_timestamp,
    expect_dict,
    expect_list,
    load_json,
)

# Ethernet reports a signal of 1 of 1 (or 0 of 1 without a link): no signal to speak of.
_WIRELESS = frozenset({"wifi", "cellular"})


def parse_home(body: bytes) -> HomeStatus:
    data = expect_dict(load_json(body), "home")
    network = data.get("network")
    if network is None:
        raise ParseError("home answer has no 'network'")
    network = expect_dict(network, "home.network")
    interfaces = network.get("interfaces")
    return HomeStatus(
        enlighten_connected=as_bool(network.get("web_comm"), "network.web_comm"),
        last_enlighten_report_s=as_timestamp(
            network.get("last_enlighten_report_time"), "network.last_enlighten_report_time"
        ),
        interfaces=() if interfaces is None else _interfaces(expect_list(interfaces, "network.interfaces")),
        timezone=as_str(data.get("timezone"), "timezone") or None,
    )


def _interfaces(entries: list[Any]) -> tuple[NetworkInterface, ...]:
    found: dict[str, NetworkInterface] = {}
    for raw in entries:
        entry = expect_dict(raw, "network interface")
        name = as_str(entry.get("interface"), "interface name")
        if not name or name in found:
            continue  # cannot be labelled, or would repeat a series
        kind = as_str(entry.get("type"), f"{name}.type") or "unknown"
        found[name] = NetworkInterface(
            name=name,
            kind=kind,
            up=as_bool(entry.get("carrier"), f"{name}.carrier"),
            signal_ratio=_signal(entry, name) if kind in _WIRELESS else None,
        )
    return tuple(found.values())


def _signal(entry: dict[str, Any], name: str) -> float | None:
    strength = as_float(entry.get("signal_strength"), f"{name}.signal_strength")
    maximum = as_float(entry.get("signal_strength_max"), f"{name}.signal_strength_max")
    if strength is None or not maximum or maximum < 0:
        return None  # 0 of 0: an interface that is not there
    return min(max(strength / maximum, 0.0), 1.0)
