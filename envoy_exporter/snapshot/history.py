"""The last hour of a gateway's production and consumption power, for the status page's chart.

Fed with each new snapshot the client makes, so it costs the gateway nothing. Bounded: one point
per 30 s bucket (the newest reading in it), at most an hour's worth, held in arrays of numbers
rather than objects: the time in whole seconds, the powers in single precision (a chart drawn a
few hundred pixels high needs no more), 12 bytes a point, so an hour is under 1.5 kB a gateway.
"""

from __future__ import annotations

import math
import threading
from array import array
from dataclasses import dataclass

BUCKET_S = 30.0
SPAN_S = 3600.0
_POINTS = int(SPAN_S / BUCKET_S)
_SECONDS_MAX = 2**32


@dataclass(frozen=True, slots=True)
class Point:
    at: float  # wall clock, seconds
    production_w: float | None
    consumption_w: float | None


class PowerHistory:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # written by a collection, read by the status page
        self._at = array("I")  # wall-clock seconds, whole: up to the year 2106
        self._production = array("f")
        self._consumption = array("f")

    def add(self, at: float, production_w: float | None, consumption_w: float | None) -> None:
        """A reading at ``at``; it replaces the newest point when both fall in one bucket."""
        if not 0 <= at < _SECONDS_MAX:
            return  # a clock no chart of the last hour can show
        with self._lock:
            if self._at and int(at) < self._at[-1]:
                return  # an older snapshot shown again (a gateway that stopped answering)
            values = (int(at), _nan(production_w), _nan(consumption_w))
            if self._at and _bucket(self._at[-1]) == _bucket(at):
                for column, value in zip(self._columns(), values, strict=True):
                    column[-1] = value
                return
            for column, value in zip(self._columns(), values, strict=True):
                column.append(value)
                if len(column) > _POINTS:
                    del column[0]

    def points(self, now: float) -> list[Point]:
        """The points of the hour before ``now``, oldest first."""
        with self._lock:
            rows = zip(self._at, self._production, self._consumption, strict=True)
            return [Point(at, _none(p), _none(c)) for at, p, c in rows if now - at <= SPAN_S]

    def _columns(self) -> tuple[array, array, array]:
        return self._at, self._production, self._consumption


def _bucket(at: float) -> int:
    return int(at // BUCKET_S)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _none(value: float) -> float | None:
    return None if math.isnan(value) else value
