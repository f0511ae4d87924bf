"""Keeps the garbage collector's full passes short, so that no scrape waits for one.

CPython's cycle collector, in a full pass, walks every container object alive while no thread
runs. At 800 gateways that is some 300,000 objects and a pause of a quarter of a second: a
probe that arrives then waits for it. Nearly all of those objects live long (settings, sessions,
each gateway's snapshot, cache and counter state), and when they are replaced their memory is
freed by reference counting, not by the collector, which only reclaims reference cycles; a
collection makes none.

So the objects alive are frozen (``gc.freeze``: moved where the collector never looks) once the
first collections are over, and again ``every`` seconds after the exporter is asked something
(``busy``: a request, which makes the objects there are to freeze), at most once per ``every``
seconds; an exporter nobody asks anything does not wake up for it. Before each freeze the young
generations are collected (a pass over the objects made since the last one only, cheap), so a
short-lived cycle is freed rather than frozen. A full pass then walks only what was made since
the last freeze. While the start-up's first collections run, the automatic passes wait
(``settle``): what they make is kept or freed by reference counting, and the pass after them
looks at everything. Whole gateway clients dropped by a reload or by discovery do hold cycles (a
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
        self._busy = threading.Event()  # asked something (or to sweep, or to stop) since the last pass
        self._lock = threading.Lock()  # no freeze after close's unfreeze
        self._paused = False  # the collector's automatic passes, paused by ``settle``

    def settle(self) -> None:
        """Called once the fleet is made, before its first collections: freezes what is alive
        now, and pauses the collector's automatic passes until those collections are done
        (``start``). While they run, the objects they make are nearly all kept (snapshots,
        caches, connections) or freed by reference counting: at 800 gateways the passes cost
        0.25 s of a 4 s start-up and found some 5,000 objects of reference cycles. The pass after
        them looks at everything, so a cycle made or frozen meanwhile is freed then, at most
        ``COLLECTION_DEADLINE`` later."""
        with self._lock:
            if self._stop.is_set():
                return
            gc.freeze()
            if gc.isenabled():  # an embedding program that turned it off keeps it off
                gc.disable()
                self._paused = True

    def start(self, first: Sequence[Future]) -> None:
        """Freezes once ``first`` (the first collections) are done, then every ``every`` s."""
        # A list the thread empties once they are done: the thread and its arguments live as
        # long as the process, and each future holds a gateway's first snapshot.
        threading.Thread(target=self._run, args=([*first],), name="freezer", daemon=True).start()

    def busy(self) -> None:
        """The exporter was asked something: a pass follows, ``every`` s after the first request
        since the last pass."""
        if not self._busy.is_set():  # on every request: a lock only once per pass
            self._busy.set()

    def sweep(self) -> None:
        """One full pass over everything, frozen objects included, at the next turn."""
        self._sweep.set()
        self._busy.set()

    def close(self) -> None:
        """Stops, and hands everything frozen back to the collector (the process may go on:
        a server stopped in a test, or embedded)."""
        with self._lock:
            self._stop.set()
            self._busy.set()  # the thread ends now
            gc.unfreeze()
            self._resume()

    def _run(self, first: list[Future]) -> None:
        wait(first, timeout=COLLECTION_DEADLINE)
        first.clear()
        self._pass(full=True)
        # Asleep until asked something, then a pass ``every`` s later: what a request made
        # meanwhile is frozen by that pass, or by the next one if it comes after the pass.
        while self._busy.wait() and not self._stop.wait(self._every):
            self._busy.clear()
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
            self._resume()

    def _resume(self) -> None:
        """The collector's automatic passes again, where ``settle`` paused them (lock held)."""
        if self._paused:
            self._paused = False
            gc.enable()
