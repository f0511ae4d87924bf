"""Which gateway of this process may hold the tokens of a serial.

A token from Enlighten (or from the cache of one) opens the gateway whose serial it names. The
only thing that says which gateway is at a host is its own ``/info``, so a second gateway can
claim the serial of the first, and with shared Enlighten credentials it would be handed a
token that opens the first. Every gateway that wants a shared token for a serial claims it
here, with a rank: the serial configured for it (2), a configured gateway reporting it (1), a
gateway found by discovery (0). A claim stands against every claim of a lower rank from another
host, and two of the same rank stand against each other: while they do, neither gets a shared
token. The user's word settles it, and a network announcement never outranks the configuration.

The exporter makes one ``SerialClaims`` and gives it to every gateway client, as it does its
``EnlightenAccounts``; a client made alone has its own. A closed client releases its claim; one
dropped without closing stops counting once it is garbage (a weak reference).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

SERIAL_CONFIGURED = 2  # the user configured this serial for this gateway
CONFIGURED = 1  # a configured gateway reports it
DISCOVERED = 0  # a gateway known from an announcement only


@dataclass
class _Claim:
    owner: weakref.ref[object]
    host: str
    rank: int


class SerialClaims:
    def __init__(self) -> None:
        # The clients of several gateways claim from their own workers.
        self._lock = threading.Lock()
        self._claims: dict[str, dict[int, _Claim]] = {}
        # Owner -> the serial of its claim (one at most), so that a claim does not look through
        # every serial: a fleet of hundreds claims at start-up.
        self._serials: dict[int, str] = {}

    def claim(self, serial: str, owner: object, host: str, *, rank: int) -> None:
        """``owner`` (at ``host``) wants shared tokens for ``serial``; its earlier claim ends."""
        with self._lock:
            self._drop(owner)
            self._claims.setdefault(serial, {})[id(owner)] = _Claim(weakref.ref(owner), host, rank)
            self._serials[id(owner)] = serial

    def release(self, owner: object) -> None:
        with self._lock:
            self._drop(owner)

    def rival(self, serial: str, owner: object) -> str | None:
        """The host of another gateway whose claim on ``serial`` stands against ``owner``'s,
        or None when ``owner`` may use shared tokens for it."""
        with self._lock:
            rivals = self._rivals(serial, owner)
            return rivals[0].host if rivals else None

    def _rivals(self, serial: str, owner: object) -> list[_Claim]:
        claims = self._claims.get(serial, {})
        for key in [k for k, c in claims.items() if c.owner() is None]:
            del claims[key]
            if self._serials.get(key) == serial:
                del self._serials[key]
        mine = claims.get(id(owner))
        if mine is None:
            return []
        return [
            c for k, c in claims.items() if k != id(owner) and c.host != mine.host and c.rank >= mine.rank
        ]

    def _drop(self, owner: object) -> None:
        serial = self._serials.pop(id(owner), None)
        if serial is not None:
            self._claims[serial].pop(id(owner), None)
