"""A gateway token (firmware >= 7): what its claims say about its life and about the gateway it
was issued for.

Entrez issues tokens as JWTs whose ``aud`` claim is the serial of the one gateway they open
(``enphaseUser`` says owner or installer; ``exp`` and ``iat`` the lifetime). The claims are read
without checking the signature: only Enphase and the gateway hold the key. That is enough to
decide when to renew a token and to which gateway it may be sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import jwt

# Owner tokens last a year, installer tokens 12 hours: renew with 7 days or a tenth of the
# lifetime left, whichever is shorter, so short tokens are not renewed on every scrape.
RENEW_BEFORE_S = 7 * 86400.0
RENEW_FRACTION = 0.1
# A token whose lifetime its claims do not tell usably is renewed (where Enlighten can) a day after
# it was obtained: never pinned for ever, never fetched on every scrape.
RENEW_UNKNOWN_S = 86400.0
# The times a claim may name: from 1970 to the end of year 9999, what dates can show. A claim
# outside (negative, 1e17, 1e300, NaN, infinite, a string) is not a time: "expiry unknown".
_LATEST = 253402300799.0


def token_claims(value: str) -> dict[str, Any] | None:
    """The claims of a JWT, read without checking the signature (only Enphase holds the key)."""
    try:
        claims = jwt.decode(value, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None


def epoch(value: object) -> float | None:
    """A claim as epoch seconds, or None when it is absent or not a usable time."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return seconds if math.isfinite(seconds) and 0 <= seconds <= _LATEST else None


def unusable_times(claims: dict[str, Any]) -> list[str]:
    """The names of the time claims (``exp``, ``iat``) present but not usable as times."""
    return [name for name in ("exp", "iat") if name in claims and epoch(claims[name]) is None]


def _audience(value: object) -> frozenset[str] | None:
    """The serials named by an ``aud`` claim (a string or a list of them, as RFC 7519 allows)."""
    if isinstance(value, str):
        return frozenset((value,))
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return None


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    source: str  # "token", "token_file", "cache" or "enlighten"
    expiry: float | None  # the ``exp`` claim
    issued: float | None  # ``iat``, or when we obtained it: the start of its lifetime
    # The serials the token was issued for: its ``aud`` claim, else the serial it was asked for;
    # None when neither is known (a pasted token without ``aud``: the user chose the gateway).
    audience: frozenset[str] | None
    # ``exp`` is there but is no usable time: the expiry is unknown, and a shared token is
    # renewed as if it were expiring (``renew_at``) and never reused from the cache.
    expiry_unknown: bool = False

    @classmethod
    def of(
        cls,
        value: str,
        source: str,
        obtained_at: float | None,
        serial: str | None = None,
        claims: dict[str, Any] | None = None,
    ) -> Token:
        """``claims``: ``token_claims(value)`` where the caller has read them already."""
        claims = (claims if claims is not None else token_claims(value)) or {}
        audience = _audience(claims.get("aud"))
        if audience is None and serial:
            audience = frozenset((serial,))
        return cls(
            value,
            source,
            epoch(claims.get("exp")),
            epoch(claims.get("iat")) or obtained_at,
            audience,
            expiry_unknown="exp" in unusable_times(claims),
        )

    @property
    def shared(self) -> bool:
        """Obtained from a source several gateways may share (Enlighten, the cache), not given
        for this gateway by the user."""
        return self.source in ("enlighten", "cache")

    def issued_for(self, serial: str | None) -> bool:
        """May this token be sent to the gateway with ``serial``?"""
        if self.audience is None:
            return True
        return serial is not None and serial in self.audience

    def audience_text(self) -> str:
        return ", ".join(sorted(self.audience or ())) or "no serial"

    def renew_at(self) -> float | None:
        if self.expiry_unknown and self.shared:
            return (self.issued or 0.0) + RENEW_UNKNOWN_S
        if self.expiry is None:
            return None
        margin = RENEW_BEFORE_S
        if self.issued is not None and self.expiry > self.issued:
            margin = min(margin, RENEW_FRACTION * (self.expiry - self.issued))
        return self.expiry - margin
