"""A per-endpoint TTL cache, and single-flight for collections.

The gateway is slow and fragile, and several Prometheus servers (or a /metrics and a /probe
scrape) may ask at once: each endpoint is fetched at most once per its family's lifetime, and
concurrent scrapes of one gateway share one collection instead of starting their own. The HTTP
server is threaded, so both are thread-based.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    value: object
    fetched_at: float
    ttl: float

    def fresh(self, now: float) -> bool:
        return now - self.fetched_at < self.ttl


class TTLCache:
    """Parsed endpoint results by endpoint key; the lifetime comes from the endpoint's family.

    A family missing from ``ttls``, or with ttl 0, is not cached at all.
    """

    def __init__(self, ttls: Mapping[str, float], clock: Callable[[], float] = time.monotonic) -> None:
        self._ttls = dict(ttls)
        self._clock = clock
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Entry | None:
        """The entry while it is fresh, else None."""
        with self._lock:
            entry = self._entries.get(key)
        return entry if entry is not None and entry.fresh(self._clock()) else None

    def put(self, key: str, family: str, value: object) -> None:
        ttl = self._ttls.get(family, 0.0)
        with self._lock:
            if ttl > 0:
                self._entries[key] = Entry(value, self._clock(), ttl)
            else:
                self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class SingleFlight(Generic[T]):
    """Runs one function at a time in a worker thread; callers that arrive while it runs get
    the same ``Future`` instead of starting another run.

    The worker outlives a caller that stops waiting (its deadline passed): the run completes in
    the background and its result is there for whoever asks next.
    """

    def __init__(self, fn: Callable[[], T], name: str = "single-flight") -> None:
        self._fn = fn
        self._name = name
        self._lock = threading.Lock()
        self._running: Future[T] | None = None

    def submit(self) -> Future[T]:
        """The run in flight, or a new one."""
        with self._lock:
            if self._running is not None:
                return self._running
            future: Future[T] = Future()
            self._running = future
        threading.Thread(target=self._run, args=(future,), name=self._name, daemon=True).start()
        return future

    def _run(self, future: Future[T]) -> None:
        future.set_running_or_notify_cancel()
        try:
            result = self._fn()
        except BaseException as exc:  # handed to the callers: the worker must not die silently
            self._done()
            future.set_exception(exc)
        else:
            self._done()
            future.set_result(result)

    def _done(self) -> None:
        # Before the result is set: a caller woken by it may submit again and must start afresh.
        with self._lock:
            self._running = None
