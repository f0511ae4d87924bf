"""A per-endpoint TTL cache, and single-flight for collections.

The gateway is slow and fragile, and several Prometheus servers (or a /metrics and a /probe
scrape) may ask at once: each endpoint is fetched at most once per its family's lifetime, and
concurrent scrapes of one gateway share one collection instead of starting their own. The HTTP
server is threaded, so both are thread-based.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Generic, Protocol, TypeVar

from envoy_exporter.gateway.workers import WorkerPool

T = TypeVar("T")

# An entry counts as expired this much before its TTL runs out (at most 1 s): scrapes come at a
# steady interval give or take a few milliseconds, so an entry fetched 300 s ago by one scrape
# expires for the scrape 300 s later, not one scrape after it.
JITTER_SHARE = 0.01


@dataclass(frozen=True)
class Entry:
    value: object
    fetched_at: float
    ttl: float

    def fresh(self, now: float) -> bool:
        return now < self.expires_at

    @property
    def expires_at(self) -> float:
        return self.fetched_at + self.ttl - min(self.ttl * JITTER_SHARE, 1.0)


class TTLCache:
    """Parsed endpoint results by endpoint key; the lifetime comes from the endpoint's family.

    A family missing from ``ttls``, or with ttl 0, is not cached at all. ``at``, where given,
    is the start of the collection that asks: an entry is stamped with it and judged by it, so
    its age is a whole number of scrape intervals however long the collection took.
    """

    def __init__(self, ttls: Mapping[str, float], clock: Callable[[], float] = time.monotonic) -> None:
        self._ttls = dict(ttls)
        self._clock = clock
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def get(self, key: str, at: float | None = None) -> Entry | None:
        """The entry while it is fresh, else None."""
        with self._lock:
            entry = self._entries.get(key)
        now = self._clock() if at is None else at
        return entry if entry is not None and entry.fresh(now) else None

    def expires_at(self, key: str) -> float:
        """When the entry of ``key`` stops being fresh; -inf without one."""
        with self._lock:
            entry = self._entries.get(key)
        return -math.inf if entry is None else entry.expires_at

    def put(self, key: str, family: str, value: object, at: float | None = None) -> None:
        ttl = self._ttls.get(family, 0.0)
        with self._lock:
            if ttl > 0:
                self._entries[key] = Entry(value, self._clock() if at is None else at, ttl)
            else:
                self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class Pool(Protocol):
    def submit(self, task: Callable[[], None]) -> None: ...


@dataclass(eq=False)
class _Run(Generic[T]):
    future: Future[T]
    light: bool = False  # may leave out what only a whole run reads (``SingleFlight.light``)
    left_out: bool = False  # ... and has: a caller who wants it all waits for the next run


class SingleFlight(Generic[T]):
    """Runs one function at a time on a worker of ``pool``; callers that arrive while it runs
    get the same ``Future`` instead of starting another run.

    A run may be light (``submit(light=True)``, the start-up's): it leaves out what ``light``
    allows it to. A caller who wants a whole run and finds a light one in flight shares it if
    it has not left anything out yet (it runs whole then), else gets the whole run that follows
    it. So no caller who wants it all is handed a light run's result.

    The worker outlives a caller that stops waiting (its deadline passed): the run completes in
    the background and its result is there for whoever asks next. Without a ``pool``, a pool of
    one worker of its own.
    """

    def __init__(self, fn: Callable[[], T], name: str = "single-flight", pool: Pool | None = None) -> None:
        self._fn = fn
        self._pool = pool if pool is not None else WorkerPool(size=1, name=name)
        self._lock = threading.Lock()
        self._running: _Run[T] | None = None
        self._next: _Run[T] | None = None  # the whole run a caller waits for after a light one

    def submit(self, light: bool = False) -> Future[T]:
        """The run in flight, or a new one (``light``: see the class docstring)."""
        with self._lock:
            joined = self._join(light)
            if joined is not None:
                return joined
            run = self._running = _Run(Future(), light)
        self._pool.submit(partial(self._run, run.future))
        return run.future

    def light(self) -> bool:
        """Asked by the run at each thing only a whole run needs: True when it may leave it out
        (a light run that no caller wanted whole so far); from then on callers who want it all
        wait for the next run."""
        with self._lock:
            run = self._running
            if run is None or not run.light:
                return False
            run.left_out = True
            return True

    def try_here(self, attempt: Callable[[], T | None]) -> Future[T]:
        """The run in flight; else ``attempt`` on the caller's thread, as the run: its result
        when it gives one, and when it gives None (it would have to wait for something), the
        run on a worker instead. Callers that arrive meanwhile share it either way."""
        with self._lock:
            joined = self._join(light=False)
            if joined is not None:
                return joined
            future: Future[T] = Future()
            self._running = _Run(future)
        future.set_running_or_notify_cancel()
        try:
            result = attempt()
        except BaseException as exc:
            self._done()
            future.set_exception(exc)
            return future
        if result is None:
            self._pool.submit(partial(self._finish, future))
        else:
            self._done()
            future.set_result(result)
        return future

    def _join(self, light: bool) -> Future[T] | None:
        """The future a caller shares, or None when it starts a run; with the lock held."""
        run = self._running
        if run is None:
            return None
        if light or not run.light:
            return run.future
        if not run.left_out:
            run.light = False  # wanted whole before it left anything out: it runs whole
            return run.future
        if self._next is None:
            self._next = _Run(Future())
        return self._next.future

    def _run(self, future: Future[T]) -> None:
        future.set_running_or_notify_cancel()
        self._finish(future)

    def _finish(self, future: Future[T]) -> None:
        try:
            result = self._fn()
        except BaseException as exc:  # handed to the callers: the worker must not die silently
            self._done()
            future.set_exception(exc)
        else:
            self._done()
            future.set_result(result)

    def _done(self) -> None:
        # Before the result is set: a caller woken by it may submit again and must start afresh
        # (or share the whole run that follows a light one, started here).
        with self._lock:
            self._running, self._next = self._next, None
            follow = self._running
        if follow is not None:
            self._pool.submit(partial(self._run, follow.future))
