"""``/sd``: every gateway the exporter serves, as Prometheus ``http_sd_configs`` target groups.

Each group is one gateway, already shaped for ``/probe``: the target is this exporter, and the
group's labels set ``__metrics_path__`` and ``__param_target``, so a job of ``http_sd_configs``
alone, with no relabelling, scrapes each gateway once. ``instance`` is the gateway's label:
without it every gateway's ``up`` would carry the exporter's address and collide.
``__meta_enphase_*`` labels are there for relabelling (sharding with ``hashmod``, keeping a site).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_SERIAL = re.compile(r"[0-9]{6,20}")
# What a Host header may hold to be echoed back as a target address: host or [v6], and a port.
_ADDRESS = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class SDGateway:
    name: str  # what /probe?target= finds it by (the ``gateway`` label)
    serial: str | None  # configured, or learned from /info; None until known


def target_groups(gateways: Iterable[SDGateway], exporter_address: str, scheme: str = "http") -> list[dict]:
    """``scheme`` is the exporter's own: with TLS on (--web.config.file), each group says https,
    so the scrape job needs no ``scheme:`` of its own."""
    groups = []
    for gateway in sorted(gateways, key=lambda g: g.name):
        labels = {
            "__metrics_path__": "/probe",
            "__param_target": gateway.name,
            "instance": gateway.name,
            "__meta_enphase_gateway": gateway.name,
        }
        if scheme != "http":
            labels["__scheme__"] = scheme
        serial = gateway.serial or (gateway.name if _SERIAL.fullmatch(gateway.name) else None)
        if serial is not None:
            labels["__meta_enphase_serial"] = serial
        groups.append({"targets": [exporter_address], "labels": labels})
    return groups


def exporter_address(host_header: str | None, fallback: str) -> str:
    """Where Prometheus reached us for ``/sd`` is where it reaches us for ``/probe``: the Host
    header of its request, if it is a plain host[:port]; else the listening address."""
    if host_header and _ADDRESS.fullmatch(host_header):
        return host_header
    return fallback
