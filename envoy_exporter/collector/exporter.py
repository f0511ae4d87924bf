"""Health series of each gateway and of the exporter itself.

These say whether the data series can be trusted: ``enphase_up`` is 0 while the exporter serves
the last good data of a gateway that stopped answering, and ``enphase_data_age_seconds`` tells how
old that data is.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from .. import __version__
from ..model import GatewayInfo, Snapshot
from .families import Families
from .scrape import GatewayResult

Labels = dict[str, str]


def add_health(f: Families, result: GatewayResult, now: float) -> None:
    client = result.client
    base = {"gateway": client.name}
    f.gauge("enphase_up", "1 if the last collection got production data, else 0", base, result.up)
    f.gauge(
        "enphase_scrape_duration_seconds",
        "Time the last collection of the gateway took",
        base,
        client.last_duration,
    )
    f.gauge(
        "enphase_token_expiry_timestamp_seconds",
        "Expiry time of the token in use (firmware 7 and later)",
        base,
        client.token_expiry,
    )
    for (endpoint, code), count in sorted(client.requests().items()):
        f.counter(
            "enphase_gateway_requests",
            "Requests sent to the gateway, by endpoint and HTTP status (or timeout / error)",
            {**base, "endpoint": endpoint, "code": code},
            count,
        )
    for kind, count in sorted(client.counter_corrections().items()):
        f.counter(
            "enphase_energy_corrections",
            "Corrections made to the gateway's lifetime counters (wrap, bogus, reset, jump)",
            {**base, "kind": kind},
            count,
        )
    if result.snapshot is not None:
        _snapshot_health(f, base, result, result.snapshot, now)


def _snapshot_health(
    f: Families, base: Labels, result: GatewayResult, snapshot: Snapshot, now: float
) -> None:
    f.gauge(
        "enphase_data_age_seconds",
        "Age of the data served for the gateway",
        base,
        max(0.0, now - snapshot.collected_at),
    )
    if snapshot.info is not None:
        _info(f, base, snapshot.info, result.client.auth_scheme)
    for endpoint, outcome in sorted(snapshot.endpoints.items()):
        # Endpoints this firmware does not have were not asked: no series rather than a
        # permanent 0 that would fire alerts.
        if outcome.status != "unsupported":
            f.gauge(
                "enphase_endpoint_up",
                "1 if the endpoint answered usable data in the last collection, else 0",
                {**base, "endpoint": endpoint},
                outcome.ok and result.answered,
            )


def _info(f: Families, base: Labels, info: GatewayInfo, auth: str | None) -> None:
    labels = {
        **base,
        "serial": info.serial,
        "firmware": info.firmware,
        "part_number": info.part_number or "",
        "metered": "" if info.metered is None else str(info.metered).lower(),
        "auth": auth or "",
    }
    f.gauge("enphase_gateway_info", "The gateway as /info describes it", labels, 1)


def build_info() -> Metric:
    family = GaugeMetricFamily(
        "enphase_exporter_build_info",
        "The exporter's version and the Python running it",
        labels=["version", "python_version"],
    )
    family.add_metric([__version__, platform.python_version()], 1)
    return family


class ExporterCollector:
    """The exporter's own series; registered once, needs no gateway."""

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        yield build_info()
