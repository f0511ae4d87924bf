"""The three ways a gateway's requests carry credentials, behind one protocol.

``Auth`` (``scheme.py``) picks one from ``/info`` and delegates to it; nothing else asks which
one it is. Each strategy answers the same questions: which endpoints need credentials, whether
a request may go out now, what it carries, and what a 401 means: ``on_unauthorized`` (asked by
the transport: repaired, worth one retry?) and ``rejected`` (asked by the client when no
endpoint of the collection accepted the credentials: the cause to show, once).

- ``Digest``: HTTP digest before firmware 7, for the endpoints the catalogue marks ``digest``;
  a rejection backs off (60 s doubling to an hour) and is logged by the back-off.
- ``Token``: a bearer JWT from firmware 7 for every endpoint but ``/info``; its whole life is
  the ``TokenKeeper``'s.
- ``NoCredentials``: none can be formed (no token source, no password, a serial the gateway
  contradicts); with ``withhold`` nothing that needs them is sent at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from requests.auth import HTTPDigestAuth

from envoy_exporter.gateway.auth.backoff import Backoff
from envoy_exporter.gateway.auth.token_keeper import TokenKeeper
from envoy_exporter.gateway.endpoints import INFO, METER_READINGS, METERS, Endpoint

log = logging.getLogger("envoy_exporter.gateway.auth")

# Before firmware 4 the CT meter endpoints answer the installer user only.
INSTALLER_ONLY = frozenset({METERS.key, METER_READINGS.key})
INSTALLER_ONLY_BEFORE = (4,)


@dataclass(frozen=True)
class Rejection:
    """Why the gateway refused the credentials, and whether the client still has to say so."""

    reason: str
    warn: bool


class Strategy(Protocol):
    name: str  # "digest", "token" or "none": the ``auth`` label of ``enphase_gateway_info``
    bearer: bool  # requests carry a bearer token: never over a plain-http fallback

    @property
    def last_error(self) -> str | None: ...

    @property
    def token_expiry(self) -> float | None: ...

    def protects(self, endpoint: Endpoint) -> bool: ...

    def withheld(self, endpoint: Endpoint) -> str | None: ...

    def blocked_until(self) -> float | None: ...

    def prepare(self) -> dict[str, Any]: ...

    def refresh(self, session: requests.Session, base_url: str) -> str | None: ...

    def on_unauthorized(self, session: requests.Session, base_url: str) -> bool: ...

    def rejected(self) -> Rejection | None: ...

    def installer_only(self, endpoint: Endpoint) -> bool: ...

    def accepted(self) -> None: ...

    def credentials_rejected(self) -> dict[str, bool]: ...

    def close(self) -> None: ...


class _Plain:
    """What every strategy answers alike unless it says otherwise."""

    bearer = False
    token_expiry: float | None = None

    def protects(self, endpoint: Endpoint) -> bool:
        return endpoint.digest

    def blocked_until(self) -> float | None:
        return None

    def refresh(self, session: requests.Session, base_url: str) -> str | None:
        return None

    def on_unauthorized(self, session: requests.Session, base_url: str) -> bool:
        return False

    def installer_only(self, endpoint: Endpoint) -> bool:
        return False

    def accepted(self) -> None:
        """Nothing was held against the credentials."""

    def credentials_rejected(self) -> dict[str, bool]:
        return {}

    def close(self) -> None:
        """Nothing to let go of."""


class NoCredentials(_Plain):
    name = "none"

    def __init__(self, reason: str, label: str, *, withhold: bool) -> None:
        self._reason = reason
        self._label = label
        self._withhold = withhold  # nothing but /info goes out
        self._said = False

    @property
    def last_error(self) -> str | None:
        return self._reason

    def withheld(self, endpoint: Endpoint) -> str | None:
        return self._reason if self._withhold and endpoint is not INFO else None

    def prepare(self) -> dict[str, Any]:
        return {}

    def on_unauthorized(self, session: requests.Session, base_url: str) -> bool:
        if not self._said:
            self._said = True
            log.error("%s: the gateway asks for credentials, but %s", self._label, self._reason)
        return False

    def rejected(self) -> Rejection | None:
        return Rejection(self._reason, warn=True)


class Digest(_Plain):
    name = "digest"

    def __init__(self, auth: HTTPDigestAuth, username: str, label: str, clock: Any, version: tuple[int, ...]):
        self._auth = auth
        self._username = username
        self._backoff = Backoff(label, clock)
        self._version = version

    @property
    def last_error(self) -> str | None:
        return self._backoff.failing

    def withheld(self, endpoint: Endpoint) -> str | None:
        return self._backoff.failing if endpoint.digest and self._backoff.active() else None

    def blocked_until(self) -> float | None:
        return self._backoff.until if self._backoff.active() else None

    def prepare(self) -> dict[str, Any]:
        # HTTPDigestAuth only answers a challenge, so open endpoints cost nothing extra.
        return {"auth": self._auth}

    def rejected(self) -> Rejection | None:
        """Back off, and say which user was rejected (the back-off logs it, once per change)."""
        reason = f"password rejected for user {self._username}"
        self._backoff.fail(reason, logging.ERROR)
        return Rejection(reason, warn=False)

    def installer_only(self, endpoint: Endpoint) -> bool:
        return (
            self._username != "installer"
            and endpoint.key in INSTALLER_ONLY
            and self._version < INSTALLER_ONLY_BEFORE
        )

    def accepted(self) -> None:
        self._backoff.recover("the gateway accepts the digest credentials again")

    def credentials_rejected(self) -> dict[str, bool]:
        return {"password": self._backoff.failing is not None}


class Token:
    name = "token"
    bearer = True

    def __init__(self, keeper: TokenKeeper) -> None:
        self._keeper = keeper

    @property
    def last_error(self) -> str | None:
        return self._keeper.last_error

    @property
    def token_expiry(self) -> float | None:
        return self._keeper.expiry

    def protects(self, endpoint: Endpoint) -> bool:
        return endpoint is not INFO

    def withheld(self, endpoint: Endpoint) -> str | None:
        return None if endpoint is INFO else self._keeper.withheld()

    def blocked_until(self) -> float | None:
        return self._keeper.blocked_until()

    def prepare(self) -> dict[str, Any]:
        header = self._keeper.header()
        return {"headers": header} if header else {}

    def refresh(self, session: requests.Session, base_url: str) -> str | None:
        return self._keeper.refresh(session, base_url)

    def on_unauthorized(self, session: requests.Session, base_url: str) -> bool:
        return self._keeper.on_unauthorized(session, base_url)

    def rejected(self) -> Rejection | None:
        """The cause, unless the token keeper is backing off: then it said why, once."""
        if self._keeper.blocked_until() is not None:
            return None
        return Rejection(self._keeper.last_error or "token rejected", warn=True)

    def installer_only(self, endpoint: Endpoint) -> bool:
        return False

    def accepted(self) -> None:
        self._keeper.accepted()

    def credentials_rejected(self) -> dict[str, bool]:
        return self._keeper.credentials_rejected()

    def close(self) -> None:
        self._keeper.close()
