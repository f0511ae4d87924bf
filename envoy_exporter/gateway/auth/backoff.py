"""The wait after a rejected credential or a failed Enlighten login, and saying so once.

60 s after the first failure, doubling with each failure in a row, at most an hour. A failure
is logged when it is new (the first, or another reason than the last); the same failure again
goes to the debug log only, and the recovery is logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("envoy_exporter.gateway.auth")

BACKOFF_FIRST_S = 60.0
BACKOFF_MAX_S = 3600.0


class Backoff:
    def __init__(self, label: str, clock: Callable[[], float]) -> None:
        self._label = label
        self._clock = clock
        self.seconds = 0.0
        self.until = 0.0
        self.failing: str | None = None  # the failure last logged; None while all is well

    def active(self) -> bool:
        return self._clock() < self.until

    def fail(self, reason: str, level: int = logging.WARNING) -> None:
        self.seconds = min(BACKOFF_MAX_S, self.seconds * 2 or BACKOFF_FIRST_S)
        self.until = self._clock() + self.seconds
        changed = reason != self.failing
        self.failing = reason
        log.log(
            level if changed else logging.DEBUG,
            "%s: %s; next attempt in %d s",
            self._label,
            reason,
            self.seconds,
        )

    def recover(self, message: str) -> None:
        """The credentials work (again): the wait is over, and a failure logged is undone."""
        self.seconds = self.until = 0.0
        if self.failing is not None:
            self.failing = None
            log.info("%s: %s", self._label, message)

    def reset(self) -> None:
        """The credentials changed: try them at once (a recovery is still logged)."""
        self.seconds = self.until = 0.0
