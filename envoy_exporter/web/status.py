"""What the landing page shows of each gateway, read from what the exporter already holds.

Reading the status never asks a gateway anything: it is each client's latest collection.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy_exporter.fleet.registry import Fleet

# Endpoint outcomes that are not errors: served from cache, or not on this firmware.
_NOT_ERRORS = frozenset({"cached", "unsupported"})


@dataclass(frozen=True)
class GatewayStatus:
    name: str
    serial: str | None
    firmware: str | None
    up: bool | None  # None: no collection finished yet
    data_age: float | None  # seconds; None: never had data
    token_expiry: float | None  # epoch seconds
    last_error: str | None


def fleet_status(fleet: Fleet, now: float) -> list[GatewayStatus]:
    return [_status(client, now) for client in fleet.clients()]


def _status(client, now: float) -> GatewayStatus:
    latest = client.latest()
    snapshot = latest.snapshot
    if not snapshot.endpoints:  # the empty snapshot a client starts with
        return GatewayStatus(client.name, None, None, None, None, client.token_expiry, None)
    info = snapshot.info
    # Endpoints that failed alike are one entry: a missing token costs every protected one.
    failures: dict[str, list[str]] = {}
    for key, result in sorted(snapshot.endpoints.items()):
        if not result.ok and result.status not in _NOT_ERRORS:
            what = result.status + (f" ({result.detail})" if result.detail else "")
            failures.setdefault(what, []).append(key)
    errors = [f"{', '.join(keys)}: {what}" for what, keys in failures.items()]
    return GatewayStatus(
        name=client.name,
        serial=info.serial if info else None,
        firmware=info.firmware if info else None,
        up=latest.fresh,
        data_age=None if snapshot.production is None else max(0.0, now - snapshot.collected_at),
        token_expiry=client.token_expiry,
        last_error="; ".join(errors) or None,
    )
