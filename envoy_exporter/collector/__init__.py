"""Prometheus collectors: the only code that knows metric names.

``scrape``: one scrape of some gateways (``GatewayCollector``, made per request and registered
in a registry of its own, never the global default); ``health``: each gateway's health series;
``data`` and ``system``: a snapshot's data series; ``families``: the families one scrape fills;
``exporter``: the exporter's own series.
"""

from envoy_exporter.collector.exporter import ExporterCollector
from envoy_exporter.collector.scrape import (
    DEFAULT_TIMEOUT,
    Client,
    GatewayCollector,
    GatewayResult,
    Lateness,
    scrape_timeout,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Client",
    "ExporterCollector",
    "GatewayCollector",
    "GatewayResult",
    "Lateness",
    "scrape_timeout",
]
