"""Collects several gateways at once within a deadline.

Each gateway is collected on its own daemon thread, so one slow or dead gateway delays nobody
else, and a hung gateway never holds up the exit of the process. At most one collection per
gateway is in flight: a scrape that arrives while the previous one is still waiting on the gateway
joins it instead of stacking another thread on the same gateway. A gateway that does not answer
within the deadline is reported with the last snapshot it gave, marked as not fresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Protocol

from ..gateway.endpoints import BY_KEY
from ..model import Snapshot
from ..settings import GatewaySettings

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0  # seconds, when the scraper does not say (curl, a browser)
# Prometheus aborts the scrape at its timeout; answer before it with what we have.
_SHARE_OF_SCRAPE_TIMEOUT = 0.9
_MARGIN = 0.5  # seconds kept for rendering and the network
_MIN_TIMEOUT = 0.5
# The first collection of a gateway (detection, token) may take longer than a scrape allows.
WARM_UP_TIMEOUT = 60.0
# Extra wait after the client's own deadline, for a client that returns right at it.
_GRACE = 0.25

# Endpoint families that carry production data: one of them answering makes the data fresh.
_PRODUCTION_FAMILIES = frozenset({"production", "readings"})


class Client(Protocol):
    """What the collector needs of ``gateway.client.GatewayClient``."""

    name: str
    last_duration: float | None
    token_expiry: float | None
    auth_scheme: str | None  # "token", "digest" or "none"; None until /info was read

    def collect(self, timeout: float | None = None) -> Snapshot: ...

    def requests(self) -> dict[tuple[str, str], int]: ...

    def counter_corrections(self) -> dict[str, int]: ...

    def close(self) -> None: ...


def scrape_timeout(header: str | None) -> float:
    """The collection budget for a scrape, from ``X-Prometheus-Scrape-Timeout-Seconds``."""
    try:
        seconds = float(header) if header else DEFAULT_TIMEOUT
    except ValueError:
        seconds = DEFAULT_TIMEOUT
    if not seconds > 0 or seconds == float("inf"):
        seconds = DEFAULT_TIMEOUT
    return max(_MIN_TIMEOUT, seconds * _SHARE_OF_SCRAPE_TIMEOUT - _MARGIN)


@dataclass(frozen=True)
class GatewayResult:
    client: Client
    snapshot: Snapshot | None  # None: the gateway never answered yet
    answered: bool  # the collection finished within the deadline

    @property
    def up(self) -> bool:
        """Production data from a collection that just succeeded; stale data is not up."""
        return self.answered and self.snapshot is not None and self.snapshot.up and _fresh(self.snapshot)


def _fresh(snapshot: Snapshot) -> bool:
    # The client hands back its last good snapshot when the gateway fails, with the endpoints
    # of the failed collection marked; fresh means a production endpoint answered this time.
    production = [
        result
        for key, result in snapshot.endpoints.items()
        if key in BY_KEY and BY_KEY[key].family in _PRODUCTION_FAMILIES
    ]
    return not production or any(result.ok for result in production)


class Fleet:
    """The configured gateways and their clients, shared by every request of the web server."""

    def __init__(
        self,
        gateways: Sequence[tuple[GatewaySettings, Client]],
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        factory: Callable[[GatewaySettings], Client] | None = None,
    ):
        self.gateways = tuple(gateways)
        self.wall = wall
        self._factory = factory
        self._clock = clock
        self._lock = threading.Lock()
        self._inflight: dict[int, Future[Snapshot]] = {}
        self._last: dict[int, Snapshot] = {}

    @property
    def clients(self) -> list[Client]:
        return [client for _, client in self.gateways]

    def settings(self) -> list[GatewaySettings]:
        return [settings for settings, _ in self.gateways]

    def apply(self, gateways: Sequence[GatewaySettings]) -> None:
        """Reload: keeps the client, with its counters, token and cache, of every gateway whose
        settings did not change; makes clients for new or changed ones; closes removed ones."""
        if self._factory is None:
            raise RuntimeError("this fleet was made without a client factory")
        with self._lock:
            old = list(self.gateways)
            kept: list[tuple[GatewaySettings, Client]] = []
            for settings in gateways:
                match = next((pair for pair in old if pair[0] == settings), None)
                if match is not None:
                    old.remove(match)
                kept.append(match or (settings, self._factory(settings)))
            self.gateways = tuple(kept)
            for _, client in old:
                self._last.pop(id(client), None)
        for _, client in old:
            client.close()

    def latest(self, client: Client) -> Snapshot | None:
        """The last snapshot a collection of ``client`` gave, without asking the gateway."""
        with self._lock:
            return self._last.get(id(client))

    def find(self, target: str) -> Client | None:
        """The gateway ``target`` names: its label, or its host exactly as configured."""
        for settings, client in self.gateways:
            if target in (client.name, settings.name, settings.host):
                return client
        return None

    def warm_up(self, timeout: float = WARM_UP_TIMEOUT) -> None:
        """Starts a collection of every gateway without waiting, so that the first scrape after
        a start finds data, or a collection well under way, instead of cold gateways."""
        for client in self.clients:
            self._start(client, timeout)

    def collect(self, clients: Sequence[Client], timeout: float) -> list[GatewayResult]:
        deadline = self._clock() + timeout + _GRACE
        futures = [(client, self._start(client, timeout)) for client in clients]
        return [self._result(client, future, deadline) for client, future in futures]

    def _start(self, client: Client, timeout: float) -> Future[Snapshot]:
        with self._lock:
            future = self._inflight.get(id(client))
            if future is not None:
                return future
            future = Future()
            self._inflight[id(client)] = future
        name = f"collect-{client.name}"
        threading.Thread(target=self._run, args=(client, timeout, future), name=name, daemon=True).start()
        return future

    def _run(self, client: Client, timeout: float, future: Future[Snapshot]) -> None:
        try:
            snapshot = client.collect(timeout=timeout)
        except Exception as e:  # collect must not raise; a bug there must not kill the scrape
            log.exception("collection of gateway %s failed", client.name)
            with self._lock:
                del self._inflight[id(client)]
            future.set_exception(e)
            return
        with self._lock:
            if any(kept is client for _, kept in self.gateways):  # not removed by a reload meanwhile
                self._last[id(client)] = snapshot
            del self._inflight[id(client)]
        future.set_result(snapshot)

    def _result(self, client: Client, future: Future[Snapshot], deadline: float) -> GatewayResult:
        try:
            return GatewayResult(client, future.result(timeout=max(0.0, deadline - self._clock())), True)
        except FutureTimeout:
            log.warning("gateway %s did not answer within the scrape deadline", client.name)
        except Exception:
            log.debug("gateway %s: serving its last snapshot after a failed collection", client.name)
        with self._lock:
            return GatewayResult(client, self._last.get(id(client)), False)
