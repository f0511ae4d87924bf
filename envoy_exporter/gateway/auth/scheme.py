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
from envoy_exporter.gateway.auth.serial_claims import SerialClaims
from envoy_exporter.gateway.auth.strategies import Digest, NoCredentials, Rejection, Strategy, Token
from envoy_exporter.gateway.auth.token_keeper import TokenKeeper
from envoy_exporter.gateway.endpoints import BY_KEY, INFO, Endpoint
from envoy_exporter.gateway.net.errors import TransportError
from envoy_exporter.snapshot.model import GatewayInfo
from envoy_exporter.snapshot.outcome import Outcome

log = logging.getLogger(__name__)

REALM = "enphaseenergy.com"
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
    """Picks the strategy (``strategies.py``: digest, token or none) from ``/info`` and answers,
    through it, what each request may carry and whether it may go.

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
        self._configured: tuple[str | None, bool, str] | None = None
        self._serial = settings.serial
        self._strategy: Strategy = NoCredentials("/info has not answered yet", settings.label, withhold=False)

    @property
    def scheme(self) -> str:
        """ "token", "digest" or "none": for the ``auth`` label of ``enphase_gateway_info``."""
        return self._strategy.name

    @property
    def bearer(self) -> bool:
        """Requests carry a bearer token (firmware 7 on), which never goes over a plain-http
        fallback the user did not ask for."""
        return self._strategy.bearer

    @property
    def last_error(self) -> str | None:
        return self._strategy.last_error

    @property
    def token_expiry(self) -> float | None:
        return self._strategy.token_expiry

    def credentials_rejected(self) -> dict[str, bool]:
        """Per credential this gateway uses ("password", "token", "enlighten"): refused now?"""
        return self._strategy.credentials_rejected()

    def protects(self, endpoint: Endpoint) -> bool:
        """Does ``endpoint`` need this gateway's credentials?"""
        return self._strategy.protects(endpoint)

    # ----------------------------------------------------------------------------------------
    # The interface Transport and the client use

    def configure(self, info: GatewayInfo) -> None:
        """Choose the strategy from the firmware; a repeat with the same gateway keeps state."""
        configured = self._settings.serial
        serial = info.serial or configured
        if self._configured == (serial, info.needs_token, info.serial):
            return
        self._configured = (serial, info.needs_token, info.serial)
        self._serial = serial
        self.close()
        if configured and info.serial and info.serial != configured:
            # Never silently overridden: either the configuration or the device is wrong, and
            # the credentials of the configured serial must not go to another gateway.
            reason = (
                f"the gateway reports serial {info.serial}, but serial {configured} is configured "
                "for it; nothing but /info is asked until they agree"
            )
            log.error("%s: %s", self._settings.label, reason)
            self._strategy = NoCredentials(reason, self._settings.label, withhold=True)
            return
        self._strategy = self._token(info.firmware) if info.needs_token else self._digest(info.version)
        log.debug("%s: firmware %s, auth scheme %s", self._settings.label, info.firmware, self.scheme)

    def withheld(self, endpoint_key: str) -> str | None:
        """Why a request to ``endpoint_key`` must not go out now, or None. Asked by the client
        before every request: the gateway is not asked while there is no token to send, nor
        again with the same credentials after a rejection before the back-off window has passed."""
        endpoint = BY_KEY.get(endpoint_key)
        return None if endpoint is None else self._strategy.withheld(endpoint)

    def blocked_until(self) -> float | None:
        """The time (of ``clock``) until which requests needing the credentials are withheld
        after a rejection, or None."""
        return self._strategy.blocked_until()

    def prepare(self, endpoint_key: str) -> dict[str, Any]:
        """Keyword arguments for ``session.get``: the credentials this endpoint needs, if any."""
        return {} if endpoint_key == INFO.key else self._strategy.prepare()

    def refresh(self, session: requests.Session, base_url: str) -> None:
        """Housekeeping before a protected request: fetch or renew the token, validate a new one.

        Raises ``CredentialsWithheld`` when the request must not go out (no usable token, or a
        rejected one inside its back-off window). Added to the interface for Transport: it needs
        the gateway's base URL, which ``prepare`` does not get.
        """
        reason = self._strategy.refresh(session, base_url)
        if reason is not None:
            raise CredentialsWithheld(reason)

    def on_unauthorized(self, session: requests.Session, base_url: str) -> bool:
        """The gateway said 401: True when the credentials were repaired and a retry makes sense."""
        return self._strategy.on_unauthorized(session, base_url)

    def installer_only(self, endpoint_key: str) -> bool:
        """Does ``endpoint_key`` answer only the installer user here, while another is in use?"""
        endpoint = BY_KEY.get(endpoint_key)
        return endpoint is not None and self._strategy.installer_only(endpoint)

    def rejected(self) -> Rejection | None:
        """A 401 on an endpoint the credentials should open, with no endpoint accepting them in
        the collection: the cause to show (backing off where the scheme does), or None when it
        was said already."""
        return self._strategy.rejected()

    def accepted(self) -> None:
        """An endpoint that needs the credentials answered: a rejection is over."""
        self._strategy.accepted()

    def close(self) -> None:
        self._strategy.close()

    # ----------------------------------------------------------------------------------------
    # Choosing the strategy

    def _digest(self, version: tuple[int, ...]) -> Strategy:
        s = self._settings
        username = s.username or "envoy"
        password = str(s.password) if s.password else self._default_password(username)
        if password is not None:
            return Digest(_SharedDigestAuth(username, password), username, s.label, self._clock, version)
        if not self._serial:
            reason = (
                "the gateway serial is unknown, so no default digest password can be formed; "
                "set serial, or username and password"
            )
        else:
            reason = f"no password for user {username!r}: only envoy and installer have defaults"
        return NoCredentials(reason, s.label, withhold=False)

    def _default_password(self, username: str) -> str | None:
        if not self._serial:
            return None
        if username == "installer":
            return installer_password(self._serial)
        if username == "envoy":
            return self._serial[-6:]
        return None

    def _token(self, firmware: str) -> Strategy:
        keeper = TokenKeeper(
            self._settings,
            self._serial,
            self._state_dir,
            self._record,
            self._claims,
            self._accounts,
            clock=self._clock,
            wall=self._wall,
        )
        if keeper.has_source:
            return Token(keeper)
        keeper.close()  # lets go of the serial's claim: it will hold no token
        reason = (
            f"firmware {firmware} needs a token: set token, token_file, or enlighten_username and "
            "enlighten_password"
        )
        if self._settings.username or self._settings.password:
            reason += " (username and password are the gateway's own login before firmware 7, unused here)"
        log.error("%s: %s; nothing but /info is asked until one is given", self._settings.label, reason)
        return NoCredentials(reason, self._settings.label, withhold=True)


class _SharedDigestAuth(HTTPDigestAuth):
    """Digest auth whose nonce outlives the thread that learnt it.

    ``HTTPDigestAuth`` keeps the server's nonce per thread; every collection runs on a thread of
    its own, so each would pay a 401 challenge before its first protected request. One state
    for all threads is safe here: the transport sends one request at a time per gateway.
    """

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username, password)
        self._thread_local = types.SimpleNamespace()
