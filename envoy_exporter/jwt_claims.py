"""What a gateway token says about itself, read without checking its signature.

Only Enphase holds the key, so nobody outside can verify a token; its claims still tell which
gateway it was issued for (``aud``: the gateway's serial) and until when (``exp``). Shared by the
offline configuration check and by auth, so both read the same claims the same way.
"""

from __future__ import annotations

from typing import Any

import jwt


def token_claims(value: str) -> dict[str, Any] | None:
    """The claims of a JWT, or None when ``value`` is not one."""
    try:
        claims = jwt.decode(value, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None


def token_expiry(claims: dict[str, Any]) -> float | None:
    return _epoch(claims.get("exp"))


def token_audience(claims: dict[str, Any]) -> frozenset[str] | None:
    """The serials the token was issued for: Entrez puts the one serial in ``aud`` (RFC 7519
    allows a list too); None when the claim is missing or not serials."""
    value = claims.get("aud")
    if isinstance(value, str):
        return frozenset((value,))
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    return None


def _epoch(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
