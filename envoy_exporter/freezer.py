"""Keeps the garbage collector's full passes short, so that no scrape waits for one.

CPython's cycle collector, in a full pass, walks every container object alive while no thread
runs. At 800 gateways that is some 300,000 objects and a pause of a quarter of a second: a
probe that arrives then waits for it. Nearly all of those objects live long (settings, sessions,
each gateway's snapshot, cache and counter state), and when they are replaced their memory is
freed by reference counting, not by the collector, which only reclaims reference cycles; a
collection makes none.

So the objects alive are frozen (``gc.freeze``: moved where the collector never looks) once the
first collections are over, and again every ``every`` seconds. Before each freeze the young
generations are collected (a pass over the objects made since the last one only, cheap), so a
short-lived cycle is freed rather than frozen. A full pass then walks only what was made since
the last freeze. Whole gateway clients dropped by a reload or by discovery do hold cycles (a
client and its worker's callable refer to each other): ``sweep`` asks for one full pass of
everything, frozen objects included, then and only then.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence
from concurrent.futures import Future, wait

from envoy_exporter.config.settings import COLLECTION_DEADLINE

EVERY_S = 5.0


class Freezer:
    def __init__(self, every: float = EVERY_S) -> None:
        self._every = every
        self._stop = threading.Event()
        self._sweep = threading.Event()
        self._lock = threading.Lock()  # no freeze after close's unfreeze

    def settle(self) -> None:
        """Freezes what is alive now: called once the fleet is made, before its first
        collections, which would otherwise walk the modules, settings and clients of every
        gateway in each full pass while they run (0.15-0.2 s of a fleet of 800's start-up).
        The first pass after them (``start``) looks at everything again, so a cycle frozen
        here is freed then."""
        with self._lock:
            if not self._stop.is_set():
                gc.freeze()

    def start(self, first: Sequence[Future]) -> None:
        """Freezes once ``first`` (the first collections) are done, then every ``every`` s."""
        # A list the thread empties once they are done: the thread and its arguments live as
        # long as the process, and each future holds a gateway's first snapshot.
        threading.Thread(target=self._run, args=([*first],), name="freezer", daemon=True).start()

    def sweep(self) -> None:
        """One full pass over everything, frozen objects included, at the next turn."""
        self._sweep.set()

    def close(self) -> None:
        """Stops, and hands everything frozen back to the collector (the process may go on:
        a server stopped in a test, or embedded)."""
        with self._lock:
            self._stop.set()
            gc.unfreeze()

    def _run(self, first: list[Future]) -> None:
        wait(first, timeout=COLLECTION_DEADLINE)
        first.clear()
        self._pass(full=True)
        while not self._stop.wait(self._every):
            full = self._sweep.is_set()
            self._sweep.clear()
            self._pass(full)

    def _pass(self, full: bool) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            if full:
                gc.unfreeze()
                gc.collect()
            else:
                gc.collect(1)
            gc.freeze()
