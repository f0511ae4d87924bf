"""A simulated IQ Gateway for ``envoy-exporter --demo``: no hardware, no configuration.

``start_demo`` runs a gateway on loopback that speaks the real HTTP API (token auth included) on
behalf of a simulated three-phase plant, so the demo exercises the real client, auth, parsers
and collector::

    gateway = start_demo()
    ...  # point a GatewaySettings at gateway.url with token=gateway.token
    gateway.stop()
"""

from __future__ import annotations

from envoy_exporter.demo.server import DemoGateway
from envoy_exporter.demo.simulator import DAY_SECONDS, Plant

__all__ = ["DAY_SECONDS", "DemoGateway", "start_demo"]


def start_demo(host: str = "127.0.0.1", port: int = 0, day_seconds: float = DAY_SECONDS) -> DemoGateway:
    """Start a simulated gateway whose sun runs one day per ``day_seconds`` of real time."""
    return DemoGateway(Plant(day_seconds=day_seconds), host, port).start()
