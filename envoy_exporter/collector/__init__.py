"""Prometheus collectors: the only code that knows metric names.

``GatewayCollector`` is made per scrape, for the gateways that scrape asks for and with its
deadline; the web server registers it in a registry of its own, never the global default. Neither
collector's ``describe`` touches a gateway, so registering never triggers a collection.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import Metric

from .exporter import ExporterCollector, add_health
from .families import Families
from .gateway import add_snapshot
from .scrape import DEFAULT_TIMEOUT, Client, Fleet, GatewayResult, scrape_timeout


class GatewayCollector:
    """One scrape of some gateways: collected concurrently within ``timeout`` seconds."""

    def __init__(self, fleet: Fleet, clients: Sequence[Client], timeout: float = DEFAULT_TIMEOUT):
        self._fleet = fleet
        self._clients = tuple(clients)
        self._timeout = timeout

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        results = self._fleet.collect(self._clients, self._timeout)
        families = Families()
        now = self._fleet.wall()
        for result in results:
            add_health(families, result, now)
            if result.snapshot is not None:
                add_snapshot(families, result.client.name, result.snapshot)
        return iter(families)


__all__ = [
    "DEFAULT_TIMEOUT",
    "Client",
    "ExporterCollector",
    "Fleet",
    "GatewayCollector",
    "GatewayResult",
    "scrape_timeout",
]
