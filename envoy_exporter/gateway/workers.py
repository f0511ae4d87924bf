"""A bounded pool of worker threads for the gateways' collections.

A thread per collection made a fleet of 800 gateways start 800 threads at once (each with its
stack, and all of them in the interpreter's way) and made every probe pay for a thread's start.
The pool keeps at most ``size`` threads; one that had nothing to do for ``idle_s`` ends, so an
exporter whose scrapes collect on their own threads holds no workers it does not use. A task
waits in line while every worker is busy: each runs one gateway's collection, which the client
bounds by its own deadline.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

# Enough for a fleet of slow gateways (a real one takes seconds per collection), few enough that
# the threads of the exporter stay countable.
DEFAULT_SIZE = 24
IDLE_S = 30.0


class WorkerPool:
    """Runs submitted callables on at most ``size`` threads, in the order submitted."""

    def __init__(self, size: int = DEFAULT_SIZE, idle_s: float = IDLE_S, name: str = "collect") -> None:
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        self._size = size
        self._idle_s = idle_s
        self._name = name
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._tasks: deque[Callable[[], None]] = deque()
        self._threads = 0
        self._busy = 0

    def submit(self, task: Callable[[], None]) -> None:
        """Runs ``task`` on a worker; it must not raise (an exception is logged and dropped)."""
        with self._lock:
            self._tasks.append(task)
            # A thread of its own for each waiting task, as long as the bound allows.
            if self._threads - self._busy < len(self._tasks) and self._threads < self._size:
                self._threads += 1
                threading.Thread(target=self._work, name=f"{self._name}-{self._threads}", daemon=True).start()
            self._ready.notify()

    @property
    def threads(self) -> int:
        """Worker threads alive now."""
        with self._lock:
            return self._threads

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._tasks:
                    if not self._ready.wait(self._idle_s) and not self._tasks:
                        self._threads -= 1
                        return
                task = self._tasks.popleft()
                self._busy += 1
            try:
                task()
            except Exception:  # a bug in the task: the worker must live on for the others
                log.exception("a task of the %s pool failed", self._name)
            finally:
                # An idle worker must not keep the last task's objects (a whole client) alive.
                del task
                with self._lock:
                    self._busy -= 1
