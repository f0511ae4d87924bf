"""The exporter's gateways: one client each, found by name or host, kept across reloads.

A plain registry. Each client owns its gateway's collections and data (``gateway.client``); the
fleet only knows which clients there are.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from envoy_exporter.config.settings import GatewaySettings

if TYPE_CHECKING:
    from envoy_exporter.gateway.client import GatewayClient


class Fleet:
    """The configured (or discovered) gateways and their clients. Thread-safe."""

    def __init__(
        self, gateways: Sequence[GatewaySettings], make_client: Callable[[GatewaySettings], GatewayClient]
    ) -> None:
        self._make_client = make_client
        self._lock = threading.Lock()
        self._gateways: list[tuple[GatewaySettings, GatewayClient]] = []
        self._waiting: frozenset[str] = frozenset()
        self.apply(gateways)

    def clients(self) -> list[GatewayClient]:
        with self._lock:
            return [client for _, client in self._gateways]

    def settings(self) -> list[GatewaySettings]:
        with self._lock:
            return [settings for settings, _ in self._gateways]

    def gateways(self) -> list[tuple[GatewaySettings, GatewayClient]]:
        """The settings and client of each gateway, from one consistent view (for /sd)."""
        with self._lock:
            return list(self._gateways)

    def find(self, target: str) -> GatewayClient | None:
        """The gateway ``target`` names: its host exactly as configured, else its ``gateway``
        label. The host first: a label may come from what a gateway reports about itself."""
        with self._lock:
            gateways = list(self._gateways)
        for settings, client in gateways:
            if settings.host == target:
                return client
        return next((client for _, client in gateways if client.name == target), None)

    def wait_for(self, names: Sequence[str]) -> None:
        """Configured gateways named by serial that discovery has not found yet."""
        self._waiting = frozenset(names)

    def waiting(self, target: str) -> bool:
        """``target`` names a configured gateway discovery has not found yet."""
        return target in self._waiting

    def apply(self, gateways: Sequence[GatewaySettings]) -> None:
        """Serve ``gateways`` from now on: a gateway whose settings did not change keeps its
        client (its cache, token, counters and data); new ones get a client; the clients of
        removed or changed ones are closed."""
        with self._lock:
            old = list(self._gateways)
            new: list[tuple[GatewaySettings, GatewayClient]] = []
            for settings in gateways:
                kept = next((i for i, (s, _) in enumerate(old) if _same(s, settings)), None)
                new.append(old.pop(kept) if kept is not None else (settings, self._make_client(settings)))
            self._gateways = new
        for _, client in old:
            client.close()


def _same(a: GatewaySettings, b: GatewaySettings) -> bool:
    return a.label == b.label and a == b
