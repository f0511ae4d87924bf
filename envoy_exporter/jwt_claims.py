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


def token_serial(claims: dict[str, Any]) -> str | None:
    """The serial the token was issued for: Entrez puts it in ``aud``."""
    audience = claims.get("aud")
    if isinstance(audience, list) and len(audience) == 1:
        audience = audience[0]
    return audience if isinstance(audience, str) and audience else None


def _epoch(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
