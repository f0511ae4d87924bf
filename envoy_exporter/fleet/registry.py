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
        self,
        gateways: Sequence[GatewaySettings],
        make_client: Callable[[GatewaySettings], GatewayClient],
        closed: Callable[[], None] | None = None,
    ) -> None:
        self._make_client = make_client
        self._closed = closed  # told when ``apply`` closed clients
        self._lock = threading.Lock()
        self._gateways: list[tuple[GatewaySettings, GatewayClient]] = []
        # /probe finds its gateway in these: by host as configured, and by label. A label may
        # change (an unnamed gateway goes by its serial once /info told it), so that index is
        # checked at each use and rebuilt when it is out of date.
        self._by_host: dict[str, GatewayClient] = {}
        self._by_name: dict[str, GatewayClient] = {}
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
            client = self._by_host.get(target)
            if client is not None:
                return client
            client = self._by_name.get(target)
            if client is None or client.name != target:
                self._by_name = {client.name: client for _, client in reversed(self._gateways)}
                client = self._by_name.get(target)
            return client

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
            self._by_host = {settings.host: client for settings, client in reversed(new)}
            self._by_name = {}
        for _, client in old:
            client.close()
        if old and self._closed is not None:
            self._closed()


def _same(a: GatewaySettings, b: GatewaySettings) -> bool:
    return a.label == b.label and a == b
