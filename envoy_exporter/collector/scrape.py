"""One scrape: collects the gateways it asks for, within its deadline, into metric families.

Each gateway's client owns its collections: ``start`` hands back the one in flight or a new one,
running on the client's worker within the client's own deadline. The scrape starts every
gateway, waits once for all of them until its own deadline, then takes what each client's
``latest`` has. A gateway that did not finish in time is reported with the last data it gave,
``enphase_up`` 0; its collection goes on, for whichever scrape comes next.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, wait

from prometheus_client.core import Metric

from ..model import Snapshot
from ..settings import COLLECTION_DEADLINE
from .data import add_snapshot
from .families import Families
from .health import Client, GatewayResult, add_health

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0  # seconds, when the scraper does not say (curl, a browser)
# Prometheus aborts the scrape at its timeout; answer before it with what we have.
_SHARE_OF_SCRAPE_TIMEOUT = 0.9
_MARGIN = 0.5  # seconds kept for rendering and the network
_MIN_TIMEOUT = 0.5


def scrape_timeout(header: str | None) -> float:
    """The collection budget for a scrape, from ``X-Prometheus-Scrape-Timeout-Seconds``. Never
    more than a collection may run: waiting longer could bring nothing, and a huge value would
    overflow the thread library's wait (``threading.TIMEOUT_MAX``)."""
    try:
        seconds = float(header) if header else DEFAULT_TIMEOUT
    except ValueError:
        seconds = DEFAULT_TIMEOUT
    if not (seconds > 0 and math.isfinite(seconds)):
        seconds = DEFAULT_TIMEOUT
    budget = max(_MIN_TIMEOUT, seconds * _SHARE_OF_SCRAPE_TIMEOUT - _MARGIN)
    return min(budget, COLLECTION_DEADLINE)


class GatewayCollector:
    """One scrape of some gateways, made per request; ``describe`` touches no gateway, so
    registering never triggers a collection."""

    def __init__(
        self,
        clients: Sequence[Client],
        timeout: float = DEFAULT_TIMEOUT,
        wall: Callable[[], float] = time.time,
    ):
        self._clients = tuple(clients)
        self._timeout = timeout
        self._wall = wall

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        families = Families()
        now = self._wall()
        for result in self.results():
            add_health(families, result, now)
            add_snapshot(families, result.client.name, result.snapshot)
        return iter(families)

    def results(self) -> list[GatewayResult]:
        """Starts every gateway, waits once for all until the deadline, then reads each one's latest."""
        started = [(client, _start(client)) for client in self._clients]
        wait([future for _, future in started if future is not None], timeout=self._timeout)
        return [_result(client, future) for client, future in started]


def _start(client: Client) -> Future[Snapshot] | None:
    try:
        return client.start()
    except Exception:  # a bug, or no thread to be had: it must cost this gateway only
        log.exception("gateway %s: the collection could not start", client.name)
        return None


def _result(client: Client, future: Future[Snapshot] | None) -> GatewayResult:
    answered = future is not None and future.done() and future.exception() is None
    if future is not None and not future.done():
        log.warning("gateway %s did not answer within the scrape deadline", client.name)
    return GatewayResult(client, client.latest(), answered)
