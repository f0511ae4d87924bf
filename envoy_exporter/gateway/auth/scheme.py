"""Credentials for one gateway, and nothing else knows them.

Before firmware 7 the gateway protects some endpoints with HTTP digest: user ``envoy`` with the
last 6 digits of the serial, or ``installer`` with a password derived from the serial. From
firmware 7 on every endpoint but ``/info`` wants a bearer JWT, whose whole life (sources,
binding to the gateway, validation, renewal, recovery) is ``token_keeper``'s.

This module chooses the scheme from ``/info`` and answers the client and the transport: which
credentials a request carries, and whether it may go out at all. A configured serial that
``/info`` contradicts stops everything but ``/info``. After a rejection (token or digest
password) nothing that needs the credentials is sent until the back-off window ends (60 s,
doubling to an hour) or the credentials change; each change of state is logged once. On token
firmware with no token source at all nothing but ``/info`` is sent.

No password and no token, not even a part of one, ever reaches a log line or an exception message.
"""

from __future__ import annotations

import hashlib
import logging
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from requests.auth import HTTPDigestAuth

from envoy_exporter.config.settings import GatewaySettings
from envoy_exporter.gateway.auth.accounts import EnlightenAccounts
from envoy_exporter.gateway.auth.backoff import Backoff
from envoy_exporter.gateway.auth.serial_claims import SerialClaims
from envoy_exporter.gateway.auth.token_keeper import TokenKeeper
from envoy_exporter.gateway.endpoints import BY_KEY, INFO, METER_READINGS, METERS, Endpoint
from envoy_exporter.gateway.net.errors import TransportError
from envoy_exporter.snapshot.model import GatewayInfo
from envoy_exporter.snapshot.outcome import Outcome

log = logging.getLogger(__name__)

REALM = "enphaseenergy.com"
# Before firmware 4 the CT meter endpoints answer the installer user only.
INSTALLER_ONLY = frozenset({METERS.key, METER_READINGS.key})
INSTALLER_ONLY_BEFORE = (4,)

Record = Callable[[str, str], None]


class CredentialsWithheld(TransportError):
    """No request that needs credentials may go out now; the message says why (safe to log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(Outcome.WITHHELD, reason)


def installer_password(serial: str, username: str = "installer", realm: str = REALM) -> str:
    """The password Enphase's installer tooling derives from the gateway serial.

    The algorithm is public (sarnau/EnphaseEnergy ``passwordCalc.py``): an MD5 hex digest of a
    salted string; its last 8 digits, read backwards, form the password, except that every '0'
    and '1' becomes a letter chosen by running counts of the zeros and ones in the whole digest.
    """
    salted = f"[e]{username}@{realm}#{serial} EnPhAsE eNeRgY "
    digest = hashlib.md5(salted.encode(), usedforsecurity=False).hexdigest()
    zeros, ones = digest.count("0"), digest.count("1")
    chars = []
    for char in reversed(digest[-8:]):
        zeros = min(max(zeros - (zeros in (3, 6, 9)), 0), 20)
        ones = min(max(ones - (ones in (9, 15)), 0), 26)
        if char == "0":
            chars.append(chr(ord("f") + zeros))
            zeros -= 1
        elif char == "1":
            chars.append(chr(ord("@") + ones))
            ones -= 1
        else:
            chars.append(char)
    return "".join(chars)


class Auth:
    """Picks the scheme from ``/info`` and supplies the credentials each request needs.

    One owner: only the gateway's worker calls it (through the client and its ``Transport``), so
    one gateway's auth work never runs twice at once; see "Threads" in docs/ARCHITECTURE.md.
    ``last_error`` says in plain words why the gateway cannot be authenticated, or is None.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        state_dir: Path | None,
        record: Record,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        claims: SerialClaims | None = None,
        accounts: EnlightenAccounts | None = None,
    ) -> None:
        self._settings = settings
        # Shared by every gateway of the exporter when given; a client on its own has its own.
        self._accounts = accounts if accounts is not None else EnlightenAccounts(clock)
        self._state_dir = state_dir
        self._record = record
        self._clock = clock
        self._wall = wall
        self._claims = claims if claims is not None else SerialClaims()
        self.scheme = "none"
        self._error: str | None = None  # why no scheme could be chosen
        self._configured: tuple[str | None, bool, str] | None = None
        self._serial = settings.serial
        self._version: tuple[int, ...] = (0,)
        self._identity_error: str | None = None  # the configured serial is not the gateway's
        self._digest: HTTPDigestAuth | None = None
        self._digest_backoff = Backoff(settings.label, clock)
        self._tokens: TokenKeeper | None = None
        self._said: set[str] = set()

    @property
    def last_error(self) -> str | None:
        if self._tokens is not None and self.scheme == "token":
            return self._tokens.last_error
        if self.scheme == "digest":
            return self._digest_backoff.failing
        return self._error

    def credentials_rejected(self) -> dict[str, bool]:
        """Per credential this gateway uses ("password", "token", "enlighten"): refused now?"""
        if self.scheme == "digest":
            return {"password": self._digest_backoff.failing is not None}
        if self.scheme == "token" and self._tokens is not None:
            return self._tokens.credentials_rejected()
        return {}

    @property
    def token_expiry(self) -> float | None:
        if self.scheme != "token" or self._tokens is None:
            return None
        return self._tokens.expiry

    @property
    def bearer(self) -> bool:
        """Requests carry a bearer token (firmware 7 on), which never goes over a plain-http
        fallback the user did not ask for."""
        return self.scheme == "token"

    def protects(self, endpoint: Endpoint) -> bool:
        """Does ``endpoint`` need this gateway's credentials? Every one but ``/info`` from
        firmware 7, the digest-protected ones before."""
        return self.bearer or endpoint.digest

    # ----------------------------------------------------------------------------------------
    # The interface Transport and the client use

    def configure(self, info: GatewayInfo) -> None:
        """Choose digest or token from the firmware; a repeat with the same gateway keeps state."""
        configured = self._settings.serial
        serial = info.serial or configured
        if self._configured == (serial, info.needs_token, info.serial):
            return
        self._configured = (serial, info.needs_token, info.serial)
        self._serial = serial
        self._version = info.version
        self._said.clear()
        self._digest_backoff = Backoff(self._settings.label, self._clock)
        self.close()
        self._tokens = None
        self._digest = None
        self._identity_error = None
        self._error = None
        if configured and info.serial and info.serial != configured:
            # Never silently overridden: either the configuration or the device is wrong, and
            # the credentials of the configured serial must not go to another gateway.
            self.scheme = "none"
            self._identity_error = self._error = (
                f"the gateway reports serial {info.serial}, but serial {configured} is configured "
                "for it; nothing but /info is asked until they agree"
            )
            log.error("%s: %s", self._settings.label, self._identity_error)
            return
        if info.needs_token:
            self._configure_token(info.firmware)
        else:
            self._configure_digest()
        log.debug("%s: firmware %s, auth scheme %s", self._settings.label, info.firmware, self.scheme)

    def withheld(self, endpoint_key: str) -> str | None:
        """Why a request to ``endpoint_key`` must not go out now, or None. Asked by the client
        before every request: the gateway is not asked while there is no token to send, nor
        again with the same credentials after a rejection before the back-off window has passed."""
        if endpoint_key == INFO.key:
            return None
        if self._identity_error is not None:
            return self._identity_error
        if self.scheme == "digest":
            endpoint = BY_KEY.get(endpoint_key)
            if endpoint is not None and endpoint.digest and self._digest_backoff.active():
                return self._digest_backoff.failing
            return None
        if self._tokens is not None:
            # Token firmware. With no token source at all, every request would only earn a 401:
            # none goes out, for the reason set at ``configure`` (logged there, once).
            return self._error if self.scheme == "none" else self._tokens.withheld()
        return None

    def blocked_until(self) -> float | None:
        """The time (of ``clock``) until which requests needing the credentials are withheld
        after a rejection, or None."""
        if self.scheme == "digest" and self._digest_backoff.active():
            return self._digest_backoff.until
        if self.scheme == "token" and self._tokens is not None:
            return self._tokens.blocked_until()
        return None

    def prepare(self, endpoint_key: str) -> dict[str, Any]:
        """Keyword arguments for ``session.get``: the credentials this endpoint needs, if any."""
        if endpoint_key == INFO.key:
            return {}
        if self.scheme == "digest":
            # HTTPDigestAuth only answers a challenge, so open endpoints cost nothing extra.
            return {"auth": self._digest}
        if self.scheme == "token" and self._tokens is not None:
            header = self._tokens.header()
            if header:
                return {"headers": header}
        return {}

    def refresh(self, session: requests.Session, base_url: str) -> None:
        """Housekeeping before a protected request: fetch or renew the token, validate a new one.

        Raises ``CredentialsWithheld`` when the request must not go out (no usable token, or a
        rejected one inside its back-off window). Added to the interface for Transport: it needs
        the gateway's base URL, which ``prepare`` does not get.
        """
        if self.scheme != "token" or self._tokens is None:
            return
        reason = self._tokens.refresh(session, base_url)
        if reason is not None:
            raise CredentialsWithheld(reason)

    def on_unauthorized(self, session: requests.Session, base_url: str) -> bool:
        """The gateway said 401: True when the credentials were repaired and a retry makes sense.

        Digest credentials cannot be repaired; the client decides what the 401 means
        (``installer_only``, ``digest_rejected``)."""
        if self.scheme == "digest":
            return False
        if self.scheme == "token" and self._tokens is not None:
            return self._tokens.on_unauthorized(session, base_url)
        if "none" not in self._said:
            self._said.add("none")
            log.error("%s: the gateway asks for credentials, but %s", self._settings.label, self._error)
        return False

    def installer_only(self, endpoint_key: str) -> bool:
        """Does ``endpoint_key`` answer only the installer user here, while another is in use?"""
        return (
            self.scheme == "digest"
            and (self._settings.username or "envoy") != "installer"
            and endpoint_key in INSTALLER_ONLY
            and self._version < INSTALLER_ONLY_BEFORE
        )

    def digest_rejected(self) -> str:
        """The gateway answered 401 to the digest credentials on an endpoint they should open:
        back off, and say which user was rejected."""
        reason = f"password rejected for user {self._settings.username or 'envoy'}"
        self._digest_backoff.fail(reason, logging.ERROR)
        return reason

    def accepted(self) -> None:
        """An endpoint that needs the credentials answered: a digest rejection is over."""
        if self.scheme == "digest":
            self._digest_backoff.recover("the gateway accepts the digest credentials again")

    def close(self) -> None:
        if self._tokens is not None:
            self._tokens.close()

    # ----------------------------------------------------------------------------------------
    # Choosing the scheme

    def _configure_digest(self) -> None:
        s = self._settings
        username = s.username or "envoy"
        password = str(s.password) if s.password else self._default_password(username)
        if password is None:
            self.scheme = "none"
            if not self._serial:
                self._error = (
                    "the gateway serial is unknown, so no default digest password can be formed; "
                    "set serial, or username and password"
                )
            else:
                self._error = f"no password for user {username!r}: only envoy and installer have defaults"
            return
        self._digest = _SharedDigestAuth(username, password)
        self.scheme = "digest"

    def _default_password(self, username: str) -> str | None:
        if not self._serial:
            return None
        if username == "installer":
            return installer_password(self._serial)
        if username == "envoy":
            return self._serial[-6:]
        return None

    def _configure_token(self, firmware: str) -> None:
        self._tokens = TokenKeeper(
            self._settings,
            self._serial,
            self._state_dir,
            self._record,
            self._claims,
            self._accounts,
            clock=self._clock,
            wall=self._wall,
        )
        self.scheme = "token"
        if not self._tokens.has_source:
            self.scheme = "none"
            self._error = (
                f"firmware {firmware} needs a token: set token, token_file, or enlighten_username and "
                "enlighten_password"
            )
            if self._settings.username or self._settings.password:
                self._error += (
                    " (username and password are the gateway's own login before firmware 7, unused here)"
                )
            log.error(
                "%s: %s; nothing but /info is asked until one is given", self._settings.label, self._error
            )


class _SharedDigestAuth(HTTPDigestAuth):
    """Digest auth whose nonce outlives the thread that learnt it.

    ``HTTPDigestAuth`` keeps the server's nonce per thread; every collection runs on a thread of
    its own, so each would pay a 401 challenge before its first protected request. One state
    for all threads is safe here: the transport sends one request at a time per gateway.
    """

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username, password)
        self._thread_local = types.SimpleNamespace()
