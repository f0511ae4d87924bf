"""How one endpoint fared in one collection: a closed set of outcomes, each knowing what it means.

Every reader (the health series, the status page, the assembler, the client) asks the outcome,
never compares strings or HTTP codes:

``ok``
    The collection has the endpoint's data: ``OK`` (answered now) or ``CACHED``.
``is_error``
    Something went wrong that the user should hear about: ``enphase_endpoint_up`` is 0 and the
    status page lists it. ``UNSUPPORTED`` (the firmware lacks the endpoint: a 404, HTML where
    JSON belongs, a page only the installer may read) is never an error: the endpoint was not
    asked and has no series at all.
``is_transient``
    A passing trouble (a timeout, no connection, a server error, a garbled answer): the same
    request may well succeed next time, so nothing is learnt about the endpoint. The assembler
    waits for a production source whose endpoint failed so, rather than choose a lesser one.

``snapshot.model.EndpointResult`` pairs an outcome with a short detail that is safe to show.
"""

from __future__ import annotations

from enum import Enum


class Outcome(Enum):
    OK = "ok"  # a usable answer, read in this collection
    CACHED = "cached"  # a usable answer from the cache
    UNSUPPORTED = "unsupported"  # the gateway does not have it, or it does not apply: not asked
    UNAUTHORIZED = "unauthorized"  # 401: the gateway refused the credentials sent
    WITHHELD = "withheld"  # no usable credentials, or backing off after a rejection: nothing sent
    TIMEOUT = "timeout"  # no whole answer within the time allowed
    UNREACHABLE = "unreachable"  # no connection (refused, reset, no route, name unknown)
    TLS = "tls"  # the TLS handshake failed (certificate not trusted, protocol)
    HTTP_ERROR = "http_error"  # an HTTP status other than 2xx, 401 and 404
    BAD_DATA = "bad_data"  # an answer the parser could not make sense of
    TOO_LARGE = "too_large"  # an answer over the size bound
    CONFLICT = "conflict"  # another gateway of the exporter already goes by the serial it reports
    INTERNAL = "internal"  # a fault of the exporter's own

    # Asked dozens of times per collection: compared by identity, as a set lookup would hash
    # the member in Python (``Enum.__hash__``).
    @property
    def ok(self) -> bool:
        return self is Outcome.OK or self is Outcome.CACHED

    @property
    def is_error(self) -> bool:
        return not (self.ok or self is Outcome.UNSUPPORTED)

    @property
    def is_transient(self) -> bool:
        return self in _TRANSIENT

    @property
    def words(self) -> str:
        """What it means for a person, where no detail says more."""
        return _WORDS[self]


_TRANSIENT = frozenset(
    {Outcome.TIMEOUT, Outcome.UNREACHABLE, Outcome.HTTP_ERROR, Outcome.BAD_DATA, Outcome.TOO_LARGE}
)


_WORDS = {
    Outcome.OK: "answered",
    Outcome.CACHED: "answered earlier (cached)",
    Outcome.UNSUPPORTED: "not on this gateway",
    Outcome.UNAUTHORIZED: "credentials rejected",
    Outcome.WITHHELD: "no usable credentials",
    Outcome.TIMEOUT: "timed out",
    Outcome.UNREACHABLE: "no connection",
    Outcome.TLS: "TLS handshake failed",
    Outcome.HTTP_ERROR: "the gateway answered with an error",
    Outcome.BAD_DATA: "an answer that cannot be read",
    Outcome.TOO_LARGE: "an answer over its size bound",
    Outcome.CONFLICT: "its serial is already served by another gateway",
    Outcome.INTERNAL: "an internal error of the exporter",
}


def http_outcome(status: int) -> Outcome:
    """The outcome of an HTTP answer, before its body is parsed."""
    if 200 <= status < 300:
        return Outcome.OK
    if status == 404:
        return Outcome.UNSUPPORTED
    if status == 401:
        return Outcome.UNAUTHORIZED
    return Outcome.HTTP_ERROR
