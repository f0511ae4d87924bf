"""Credentials for one gateway, and nothing else knows them.

Before firmware 7 the gateway protects some endpoints with HTTP digest: user ``envoy`` with the
last 6 digits of the serial, or ``installer`` with a password derived from the serial. From
firmware 7 on every endpoint but ``/info`` wants a bearer JWT, which comes (in this order) from the
settings, from a token file the user pastes into (accounts with MFA), from our own cache under
``state_dir`` (``token_cache``), or from Enlighten with the owner's cloud credentials
(``enlighten``).

This module chooses the scheme and runs the token's life: validation with the gateway
(``/auth/check_jwt``), renewal, recovery from a rejection, and the back-off that follows one.
A token goes only to the gateway whose serial it was issued for (``token``, ``serial_claims``);
a configured serial that ``/info`` contradicts stops everything but ``/info``.

After a rejection (token or digest password) nothing that needs the credentials is sent until
the back-off window ends (60 s, doubling to an hour) or the credentials change; the client asks
``withheld`` before each request. Each change of state is logged once, not every scrape.

No password and no token, not even a part of one, ever reaches a log line or an exception message.
"""

from __future__ import annotations

import hashlib
import logging
import time
import types
from collections.abc import Callable
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import requests
from requests.auth import HTTPDigestAuth

from envoy_exporter.gateway.endpoints import BY_KEY, INFO, METER_READINGS, METERS
from envoy_exporter.gateway.enlighten import Enlighten, EnlightenError
from envoy_exporter.gateway.errors import TransportError, failure_code
from envoy_exporter.gateway.serial_claims import CLAIMS, SerialClaims
from envoy_exporter.gateway.token import Token
from envoy_exporter.gateway.token_cache import TokenCache
from envoy_exporter.model import GatewayInfo
from envoy_exporter.settings import GatewaySettings

log = logging.getLogger(__name__)

REALM = "enphaseenergy.com"
CHECK_JWT_PATH = "/auth/check_jwt"
BACKOFF_FIRST_S = 60.0
BACKOFF_MAX_S = 3600.0
# Before firmware 4 the CT meter endpoints answer the installer user only.
INSTALLER_ONLY = frozenset({METERS.key, METER_READINGS.key})
INSTALLER_ONLY_BEFORE = (4,)

Record = Callable[[str, str], None]
Verify = bool | str


class CredentialsWithheld(TransportError):
    """No request that needs credentials may go out now; the message says why (safe to log)."""

    def __init__(self, reason: str) -> None:
        super().__init__("auth", reason)


class _Check(Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # the gateway answered, and not with 200
    FAILED = "failed"  # no answer: says nothing about the token


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


class _Backoff:
    """60 s after the first failure, doubling with each failure in a row, at most an hour."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.seconds = 0.0
        self.until = 0.0

    def active(self) -> bool:
        return self._clock() < self.until

    def extend(self) -> float:
        self.seconds = min(BACKOFF_MAX_S, self.seconds * 2 or BACKOFF_FIRST_S)
        self.until = self._clock() + self.seconds
        return self.seconds

    def reset(self) -> None:
        self.seconds = self.until = 0.0


class Auth:
    """Picks the scheme from ``/info`` and supplies, checks and renews the credentials.

    Called by ``Transport`` with its lock held, so one gateway's auth work never runs twice at once.
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
        claims: SerialClaims = CLAIMS,
    ) -> None:
        self._settings = settings
        self._record = record
        self._clock = clock
        self._wall = wall
        self._claims = claims
        self._cache = TokenCache(state_dir, settings.label, settings.host)
        self._enlighten = Enlighten(settings, record) if self._has_credentials() else None
        self.scheme = "none"
        self.last_error: str | None = None
        self._configured: tuple[str | None, bool, str] | None = None
        self._serial = settings.serial
        self._version: tuple[int, ...] = (0,)
        self._identity_error: str | None = None  # the configured serial is not the gateway's
        self._digest: HTTPDigestAuth | None = None
        self._token: Token | None = None
        self._checked = False  # check_jwt was tried for the current token
        self._rejected = False  # ... and the gateway rejected it
        self._accepted_at: float | None = None  # when check_jwt last accepted it (monotonic)
        self._file_stamp: tuple[int, int, int] | None = None
        self._backoff = _Backoff(clock)
        self._failing: str | None = None  # the failure last logged; None while all is well
        self._said: set[str] = set()

    @property
    def token_expiry(self) -> float | None:
        if self.scheme != "token" or self._token is None:
            return None
        return self._token.expiry

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
        self._failing = None
        self._backoff.reset()
        self._claims.release(self)
        self._digest = None
        self._token = None
        self._identity_error = None
        if configured and info.serial and info.serial != configured:
            # Never silently overridden: either the configuration or the device is wrong, and
            # the credentials of the configured serial must not go to another gateway.
            self.scheme = "none"
            self._identity_error = self.last_error = (
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
        before every request: after a rejection the gateway is not asked again with the same
        credentials before the back-off window has passed."""
        if endpoint_key == INFO.key:
            return None
        if self._identity_error is not None:
            return self._identity_error
        if self.scheme == "digest":
            endpoint = BY_KEY.get(endpoint_key)
            if endpoint is not None and endpoint.digest and self._backoff.active():
                return self.last_error
            return None
        if self.scheme == "token":
            self._check_token_file()
            return self._token_withheld()
        return None

    def blocked_until(self) -> float | None:
        """The time (of ``clock``) until which requests needing the credentials are withheld
        after a rejection, or None."""
        if self._identity_error is None and self._backoff.active() and self._trouble():
            return self._backoff.until
        return None

    def prepare(self, session: requests.Session, endpoint_key: str) -> dict[str, Any]:
        """Keyword arguments for ``session.get``: the credentials this endpoint needs, if any."""
        if endpoint_key == INFO.key:
            return {}
        if self.scheme == "digest":
            # HTTPDigestAuth only answers a challenge, so open endpoints cost nothing extra.
            return {"auth": self._digest}
        if self.scheme == "token":
            self._check_token_file()
            token = self._sendable()
            if token is not None:
                return {"headers": {"Authorization": f"Bearer {token.value}"}}
        return {}

    def refresh(self, session: requests.Session, base_url: str, verify: Verify) -> None:
        """Housekeeping before a protected request: fetch or renew the token, validate a new one.

        Raises ``CredentialsWithheld`` when the request must not go out (no usable token, or a
        rejected one inside its back-off window). Added to the interface for Transport: it needs
        the gateway's base URL, which ``prepare`` does not get.
        """
        if self.scheme != "token":
            return
        self._check_token_file()
        if self._token_withheld() is None:
            if self._renewal_due():
                self._renew()
            fresh = self._sendable() is not None and not self._checked
            if fresh and self._check_jwt(session, base_url, verify) is _Check.REJECTED:
                self._recover(session, base_url, verify)
        reason = self._token_withheld() or self._missing_token()
        if reason is not None:
            raise CredentialsWithheld(reason)

    def on_unauthorized(self, session: requests.Session, base_url: str, verify: Verify) -> bool:
        """The gateway said 401: True when the credentials were repaired and a retry makes sense.

        Digest credentials cannot be repaired; the client decides what the 401 means
        (``installer_only``, ``digest_rejected``)."""
        if self.scheme == "digest":
            return False
        if self.scheme != "token":
            self._error_once("none", f"the gateway asks for credentials, but {self.last_error}")
            return False
        self._check_token_file()
        if self._token_withheld() is not None:
            return False
        if self._accepted_at is not None and self._clock() - self._accepted_at < BACKOFF_FIRST_S:
            # The gateway accepted this token a moment ago: the 401 is about the endpoint (some
            # want an installer token), and asking again or fetching another token would not help.
            return False
        # The session cookie may simply have expired while the token is still good.
        if self._sendable() is not None and not (self._rejected and self._can_fetch()):
            check = self._check_jwt(session, base_url, verify)
            if check is not _Check.REJECTED:
                return check is _Check.ACCEPTED
        return self._recover(session, base_url, verify)

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
        user = self._settings.username or "envoy"
        self._back_off(f"the gateway rejected the digest credentials of user {user!r}", logging.ERROR)
        return self.last_error or ""

    def accepted(self) -> None:
        """An endpoint that needs the credentials answered: a digest rejection is over."""
        if self.scheme == "digest" and self._failing is not None:
            self._recovered("the gateway accepts the digest credentials again")

    def close(self) -> None:
        self._claims.release(self)

    # ----------------------------------------------------------------------------------------
    # Digest (firmware < 7)

    def _configure_digest(self) -> None:
        s = self._settings
        username = s.username or "envoy"
        password = str(s.password) if s.password else self._default_password(username)
        if password is None:
            self.scheme = "none"
            if not self._serial:
                self.last_error = (
                    "the gateway serial is unknown, so no default digest password can be formed; "
                    "set serial, or username and password"
                )
            else:
                self.last_error = f"no password for user {username!r}: only envoy and installer have defaults"
            return
        self._digest = _SharedDigestAuth(username, password)
        self.scheme = "digest"
        self.last_error = None

    def _default_password(self, username: str) -> str | None:
        if not self._serial:
            return None
        if username == "installer":
            return installer_password(self._serial)
        if username == "envoy":
            return self._serial[-6:]
        return None

    # ----------------------------------------------------------------------------------------
    # Token (firmware >= 7)

    def _configure_token(self, firmware: str) -> None:
        s = self._settings
        self._file_stamp = None
        self.scheme = "token"
        self.last_error = None
        if self._serial:
            self._claims.claim(self._serial, self, s.host, configured=s.serial == self._serial)
        if s.token:
            self._take(Token.of(str(s.token).strip(), "token", self._wall()))
        else:
            self._check_token_file()
        if self._token is None:
            cached = self._cache.load(self._serial, self._wall())
            if cached is not None:
                log.debug("%s: reusing the cached token, %s", s.label, _expiry_text(cached))
                self._take(cached)
        if self._token is None and s.token_file is None and not self._has_credentials():
            self.scheme = "none"
            self.last_error = (
                f"firmware {firmware} needs a token: set token, token_file or Enlighten credentials"
            )

    def _has_credentials(self) -> bool:
        return bool(self._settings.enlighten_username and self._settings.enlighten_password)

    def _can_fetch(self) -> bool:
        return self._enlighten is not None and self._contest() is None

    def _take(self, token: Token) -> None:
        self._token = token
        self._checked = False
        self._rejected = False
        self._accepted_at = None
        self._said -= {"expiring", "expired", "refused", "contested"}

    def _sendable(self) -> Token | None:
        """The token, if it may be sent to this gateway."""
        return self._token if self._token is not None and self._refusal() is None else None

    def _refusal(self) -> str | None:
        """Why the token in hand must not go to this gateway (logged once), or None."""
        token = self._token
        if token is None:
            return None
        if not token.issued_for(self._serial):
            reason = (
                f"the token ({token.source}) was issued for serial {token.audience_text()}, "
                f"not for this gateway's serial {self._serial}; it is not sent"
            )
        elif token.shared:
            return self._contest()
        else:
            return None
        self.last_error = reason
        self._error_once("refused", reason)
        return reason

    def _contest(self) -> str | None:
        """Why no shared token (Enlighten, cache) may be used for this serial here: another
        gateway claims it too (logged once), or None."""
        rival = self._claims.rival(self._serial, self) if self._serial else None
        if rival is None:
            return None
        reason = (
            f"the gateway at {rival} claims serial {self._serial} too; no token for it is fetched "
            "or sent to either until serial is configured for the right one"
        )
        self.last_error = reason
        self._error_once("contested", reason)
        return reason

    def _token_withheld(self) -> str | None:
        refusal = self._refusal()
        if refusal is not None:
            return refusal
        if self._backoff.active() and self._trouble():
            return self.last_error
        return None

    def _trouble(self) -> bool:
        """No token to send, or the one in hand was rejected (digest: the password was)."""
        if self.scheme == "digest":
            return self._failing is not None
        return self._token is None or self._rejected

    def _missing_token(self) -> str | None:
        if self._token is not None:
            return None
        return self.last_error or "no token available yet"

    def _check_token_file(self) -> None:
        """Adopt the token file's content whenever the file changes on disk."""
        path = self._settings.token_file
        if path is None or self._settings.token:
            return
        try:
            st = path.stat()
        except OSError as exc:
            self._warn_once("token_file", "cannot read the token file %s: %s", path, _why(exc))
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._file_stamp:
            return
        self._file_stamp = stamp
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            self._warn_once("token_file", "cannot read the token file %s: %s", path, _why(exc))
            return
        self._said.discard("token_file")
        if not value:
            self._warn_once("token_file", "the token file %s is empty", path)
            return
        if self._token is None or self._token.value != value:
            self._take(Token.of(value, "token_file", self._wall()))
            # Whatever failed before, the user has acted: try the new token right away.
            self._backoff.reset()
            log.info("%s: read a new token from %s", self._settings.label, path)

    def _renewal_due(self) -> bool:
        if self._token is None or self._rejected:
            return self._can_fetch()
        renew_at = self._token.renew_at()
        if renew_at is None or self._wall() < renew_at:
            return False
        if self._can_fetch():
            return True
        self._warn_expiry(self._token.expiry)
        return False

    def _renew(self) -> bool:
        """A new token from Enlighten; on failure the back-off starts (a token in hand stays)."""
        try:
            self._take(self._fetch())
        except EnlightenError as exc:
            self._back_off(f"could not get a token from Enlighten: {exc}")
            return False
        return True

    def _recover(self, session: requests.Session, base_url: str, verify: Verify) -> bool:
        """The gateway rejected the token: fetch another once, else back off."""
        self._rejected = self._token is not None
        if not self._can_fetch():
            what = "rejected the token" if self._token else "wants a token and none is available"
            if self._enlighten is None:
                self._back_off(f"the gateway {what}; Enlighten credentials would allow fetching a new one")
            else:
                self._back_off(f"the gateway {what}; {self._refusal() or 'no new one can be fetched'}")
            return False
        if not self._renew():
            return False
        if self._check_jwt(session, base_url, verify) is _Check.ACCEPTED:
            return True
        self._rejected = True
        self._back_off(f"the gateway rejected the token Enlighten issued for serial {self._serial}")
        return False

    def _warn_expiry(self, expiry: float | None) -> None:
        left = (expiry or 0.0) - self._wall()
        if left <= 0:
            self._warn_once(
                "expired", "the gateway token has expired; give a new one (no Enlighten credentials)"
            )
        else:
            self._warn_once(
                "expiring",
                "the gateway token expires in %.1f days and cannot be renewed without Enlighten "
                "credentials; give a new one",
                left / 86400,
            )

    def _check_jwt(self, session: requests.Session, base_url: str, verify: Verify) -> _Check:
        """Ask the gateway to accept the token; on success it sets the ``sessionId`` cookie,
        which the session keeps and sends from then on."""
        token = self._sendable()
        if token is None:
            return _Check.FAILED
        self._checked = True
        try:
            response = session.get(
                base_url + CHECK_JWT_PATH,
                headers={"Authorization": f"Bearer {token.value}"},
                verify=verify,
                timeout=self._settings.timeout,
                allow_redirects=False,
            )
        except (OSError, ValueError) as exc:
            self._record("check_jwt", failure_code(exc))
            log.debug("%s: check_jwt failed: %s", self._settings.label, type(exc).__name__)
            return _Check.FAILED
        self._record("check_jwt", str(response.status_code))
        if response.status_code != 200:
            log.debug("%s: check_jwt answered HTTP %d", self._settings.label, response.status_code)
            self._rejected = True
            return _Check.REJECTED
        self._rejected = False
        self._accepted_at = self._clock()
        self._recovered("the gateway accepts the token again")
        return _Check.ACCEPTED

    def _fetch(self) -> Token:
        """Have Enlighten issue a token for this gateway's serial, and cache it."""
        if not self._serial:
            raise EnlightenError("the gateway serial is unknown")
        if self._enlighten is None:
            raise EnlightenError("no Enlighten credentials")
        now = self._wall()
        token = Token.of(self._enlighten.fetch_token(self._serial), "enlighten", now, self._serial)
        if not token.issued_for(self._serial):
            raise EnlightenError(f"entrez_token: the token names serial {token.audience_text()}")
        self._cache.save(self._serial, token, now)
        log.info("%s: obtained a gateway token from Enlighten, %s", self._settings.label, _expiry_text(token))
        return token

    # ----------------------------------------------------------------------------------------
    # Back-off, and saying things once per change

    def _back_off(self, reason: str, level: int = logging.WARNING) -> None:
        seconds = self._backoff.extend()
        self._checked = False  # one check_jwt when the window ends
        self.last_error = reason
        changed = reason != self._failing
        self._failing = reason
        # Once per change of state; the same failure again is for the debug log only.
        log.log(
            level if changed else logging.DEBUG,
            "%s: %s; next attempt in %d s",
            self._settings.label,
            reason,
            seconds,
        )

    def _recovered(self, message: str) -> None:
        self._backoff.reset()
        self.last_error = None
        if self._failing is not None:
            self._failing = None
            log.info("%s: %s", self._settings.label, message)

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning("%s: " + message, self._settings.label, *args)

    def _error_once(self, key: str, reason: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.error("%s: %s", self._settings.label, reason)


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


def _expiry_text(token: Token) -> str:
    if token.expiry is None:
        return "no expiry stated"
    return "expires " + datetime.fromtimestamp(token.expiry, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


class _SharedDigestAuth(HTTPDigestAuth):
    """Digest auth whose nonce outlives the thread that learnt it.

    ``HTTPDigestAuth`` keeps the server's nonce per thread; every collection runs on a thread of
    its own, so each would pay a 401 challenge before its first protected request. One state
    for all threads is safe here: the transport sends one request at a time per gateway.
    """

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username, password)
        self._thread_local = types.SimpleNamespace()
