"""Whole-request deadlines: while a ``Deadline`` is a thread's current one, every socket that
thread's requests use is shut down once it passes, by one watchdog thread for the process.
requests' timeout bounds each socket read only, so a body trickled at a byte a second, or an
endless stream of interim answers, would hold a request for as long as the peer likes."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time


class Deadline:
    """The time one request may take in all. While it is the current deadline of a thread
    (``with deadline:``), every socket that thread's requests use is shut down once it passes."""

    _local = threading.local()

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._done = False
        self._outer: Deadline | None = None

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    @property
    def over(self) -> bool:
        """The request it bounds is over (answered, failed or cut off)."""
        return self._done

    def __enter__(self) -> Deadline:
        self._outer = getattr(self._local, "current", None)
        self._local.current = self
        _watchdog.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._local.current = self._outer
        with self._lock:
            self._done = True
            self._sockets.clear()

    @classmethod
    def watch(cls, sock: socket.socket) -> None:
        """Put ``sock`` under the current thread's deadline, if any."""
        deadline: Deadline | None = getattr(cls._local, "current", None)
        if deadline is None:
            return
        with deadline._lock:
            if deadline.expired:
                _shut(sock)
            elif not deadline._done:
                deadline._sockets.append(sock)

    def expire(self) -> None:
        """Called by the watchdog: wake the request up wherever it blocks."""
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, not SSLSocket's (which drops its SSL object under the reader).
    # OSError: already closed, or detached into the SSL socket that is watched too.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread for every deadline of the process."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="http-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][2] is deadline:
                # Only an earlier deadline than the one it sleeps for needs to wake the thread
                # (with equal timeouts, almost never: a wake-up per request costs a thread switch).
                self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._heap:
                    self._cond.wait()
                    continue
                at, _, deadline = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                deadline.expire()
                # Nearly every request is over long before its deadline: those next in line are
                # dropped now, so the thread wakes about twice per timeout, not once per request.
                while self._heap and self._heap[0][2].over:
                    heapq.heappop(self._heap)


_watchdog = _Watchdog()
