"""The health series of each gateway: whether its data series can be trusted.

``enphase_up`` is 0 while the exporter serves the last good data of a gateway that stopped
answering (or did not answer within the scrape's deadline), and ``enphase_data_age_seconds``
tells how old that data is; for a gateway that has never answered, the age counts from the
exporter's start.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from envoy_exporter.collector.exposition import escaped, with_label, with_labels
from envoy_exporter.collector.families import Families
from envoy_exporter.snapshot.model import GatewayInfo, Latest, Snapshot


class Client(Protocol):
    """What a scrape needs of ``gateway.client.GatewayClient``."""

    name: str
    last_duration: float | None
    token_expiry: float | None
    auth_scheme: str | None  # "token", "digest" or "none"; None until /info was read

    def start(self, here: bool = False) -> Future[Snapshot]: ...

    def latest(self) -> Latest: ...

    def reusable_for(self) -> float: ...

    def requests(self) -> dict[tuple[str, str], int]: ...

    def counter_corrections(self) -> dict[str, int]: ...

    def credentials_rejected(self) -> dict[str, bool]: ...


@dataclass(frozen=True)
class GatewayResult:
    client: Client
    latest: Latest
    answered: bool  # a collection finished within the scrape's deadline

    @property
    def snapshot(self) -> Snapshot:
        return self.latest.snapshot

    @property
    def up(self) -> bool:
        """Production data from a collection that finished for this scrape; stale data is not up."""
        return self.answered and self.latest.fresh


def add_health(f: Families, base: str, result: GatewayResult, now: float) -> None:
    """The health series of ``result``'s gateway; ``base`` are its labels (``gateway``)."""
    client = result.client
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
    for credential, rejected in sorted(client.credentials_rejected().items()):
        f.gauge(
            "enphase_credentials_rejected",
            "1 while the gateway (or Enlighten) refuses this credential of the configuration",
            with_label(base, "credential", credential),
            rejected,
        )
    for (endpoint, code), count in sorted(client.requests().items()):
        f.counter(
            "enphase_gateway_requests",
            "Requests sent to the gateway, by endpoint and HTTP status (or timeout / error)",
            # ``with_labels``' string, without its keywords: a dozen of these on every scrape.
            f'{base},endpoint="{escaped(endpoint)}",code="{escaped(code)}"',
            count,
        )
    for kind, count in sorted(client.counter_corrections().items()):
        f.counter(
            "enphase_energy_corrections",
            "Corrections made to the gateway's lifetime counters (wrap, bogus, reset, jump)",
            with_label(base, "kind", kind),
            count,
        )
    _snapshot_health(f, base, result, now)


def _snapshot_health(f: Families, base: str, result: GatewayResult, now: float) -> None:
    snapshot = result.snapshot
    f.gauge(
        "enphase_data_age_seconds",
        "Age of the data served for the gateway",
        base,
        max(0.0, now - snapshot.collected_at),
    )
    if snapshot.info is not None:
        _info(f, base, snapshot.info, result.client.auth_scheme)
    for endpoint, answer in sorted(snapshot.endpoints.items()):
        # Endpoints this firmware does not have were not asked: no series rather than a
        # permanent 0 that would fire alerts. A collection still running when the scrape's
        # deadline passed says nothing about the endpoints: they keep the verdict of the last
        # finished collection (``enphase_up`` 0 says the data is not fresh).
        if answer.ok or answer.outcome.is_error:
            f.gauge(
                "enphase_endpoint_up",
                "1 if the endpoint answered usable data in the last finished collection, else 0",
                with_label(base, "endpoint", endpoint),
                answer.ok,
            )


def _info(f: Families, base: str, info: GatewayInfo, auth: str | None) -> None:
    labels = with_labels(
        base,
        serial=info.serial,
        firmware=info.firmware,
        part_number=info.part_number or "",
        metered="" if info.metered is None else str(info.metered).lower(),
        auth=auth or "",
    )
    f.one("enphase_gateway_info", "The gateway as /info describes it", labels)
