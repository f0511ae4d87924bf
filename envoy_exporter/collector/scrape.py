"""One scrape: collects the gateways it asks for, within its deadline, and renders them.

Each gateway's client owns its collections: ``start`` hands back the one in flight or a new one,
running on the client's worker within the client's own deadline. The scrape starts every
gateway, waits once for all of them until its own deadline, then takes what each client's
``latest`` has. A gateway that did not finish in time is reported with the last data it gave,
``enphase_up`` 0; its collection goes on, for whichever scrape comes next.

``expose`` is what the web server serves, and the only way a scrape is rendered: a gateway's
health series on every scrape, its data series once per snapshot, served as the same bytes until
the next one (``exposition.SnapshotCache``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import CancelledError, Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import suppress
from functools import partial

from prometheus_client.registry import Collector

from envoy_exporter.collector.data import add_snapshot
from envoy_exporter.collector.exposition import Group, SnapshotCache, gateway_labels, join
from envoy_exporter.collector.families import Families, from_library
from envoy_exporter.collector.health import Client, GatewayResult, add_health
from envoy_exporter.config.settings import COLLECTION_DEADLINE
from envoy_exporter.logs import Condition
from envoy_exporter.snapshot.model import Snapshot

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
    """One scrape of some gateways, made per request."""

    def __init__(
        self,
        clients: Sequence[Client],
        timeout: float = DEFAULT_TIMEOUT,
        wall: Callable[[], float] = time.time,
        late: Lateness | None = None,
    ):
        self._clients = tuple(clients)
        self._timeout = timeout
        self._wall = wall
        self._late = late if late is not None else Lateness()

    def expose(self, content_type: str, rendered: SnapshotCache, own: Iterable[Collector] = ()) -> bytes:
        """This scrape as served in ``content_type``, with the series of the exporter's ``own``
        collectors (prometheus-client's) after the gateways'."""
        parts = self.exposition(rendered)
        parts += [from_library(collector.collect()).groups() for collector in own]
        return join(parts, content_type)

    def exposition(self, rendered: SnapshotCache) -> list[list[Group]]:
        """This scrape rendered gateway by gateway: the health series now, the data series once
        per snapshot (``rendered`` keeps them)."""
        now = self._wall()
        parts = []
        for result in self.results():
            client, snapshot = result.client, result.snapshot
            labels = gateway_labels(client.name)
            health = Families()
            add_health(health, labels, result, now)
            parts.append(health.groups())
            render = partial(render_data, snapshot=snapshot)
            parts.append(rendered.groups(client, snapshot, labels, render, client.reusable_for()))
        return parts

    def results(self) -> list[GatewayResult]:
        """Starts every gateway, waits once for all until the deadline, then reads each one's latest."""
        # One gateway (a /probe): its collection starts on this thread, and goes to a worker
        # only when it has to ask the gateway. With several, each starts on a worker at once.
        here = len(self._clients) == 1
        started = [(client, _start(client, here)) for client in self._clients]
        _wait([future for _, future in started if future is not None], self._timeout)
        return [self._result(client, future) for client, future in started]

    def _result(self, client: Client, future: Future[Snapshot] | None) -> GatewayResult:
        answered = future is not None and future.done() and future.exception() is None
        self._late.note(client, late=future is not None and not future.done(), answered=answered)
        return GatewayResult(client, client.latest(), answered)


def render_data(labels: str, snapshot: Snapshot) -> list[Group]:
    """The data series of ``snapshot`` for the gateway of ``labels`` (``gateway_labels``), rendered."""
    families = Families()
    add_snapshot(families, labels, snapshot)
    return families.groups()


def _wait(futures: list[Future[Snapshot]], timeout: float) -> None:
    """Until every one of ``futures`` is done, or ``timeout`` passed. A /probe's one future is
    waited for on its own lock: ``wait`` would make and hook a waiter object into it first."""
    if len(futures) != 1:
        wait(futures, timeout=timeout)
        return
    with suppress(FutureTimeout, CancelledError):
        futures[0].exception(timeout=timeout)


def _start(client: Client, here: bool) -> Future[Snapshot] | None:
    try:
        return client.start(here)
    except Exception:  # a bug, or no thread to be had: it must cost this gateway only
        log.exception("gateway %s: the collection could not start", client.name)
        return None


class Lateness:
    """Per gateway, whether its collections take longer than the scrapes allow: told when it
    starts and when it ends, not on every scrape. The web server keeps one for all its scrapes;
    a gateway a reload drops takes its entry along (weakly keyed)."""

    def __init__(self) -> None:
        self._conditions: weakref.WeakKeyDictionary[Client, Condition] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._conditions)

    def note(self, client: Client, late: bool, answered: bool) -> None:
        with self._lock:
            condition = self._conditions.get(client)
            if condition is None:
                condition = self._conditions[client] = Condition(log, clock=time.monotonic)
        if late:
            condition.failed(
                "%s: the collection takes longer than the scrape allows; the last data is served", client.name
            )
        elif answered:
            condition.recovered("%s: collections finish within the scrape's time again", client.name)
