"""The life of one gateway's token (firmware >= 7): where it comes from, whether it may be sent,
whether the gateway accepts it, when it is renewed, and what happens after a rejection.

Sources, in order: the settings (``token``), a token file the user pastes into (re-read when it
changes; the way for accounts with multi-factor login), our own cache under ``state_dir``
(``token_cache``), Enlighten with the owner's cloud credentials (``enlighten``).

A token is sent only to the gateway whose serial it was issued for (``Token.issued_for``), and
one from a shared source (Enlighten, the cache) only while no other gateway of this process
claims the serial too (``serial_claims``).

A token is not checked on ``/auth/check_jwt`` before its first use: the first answer to a
request that carries it proves it, and a 401 has it checked. After a rejection nothing is sent
until the back-off window ends or the token changes; then one request per window. Enlighten is
asked at most once per recovery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

import requests

from envoy_exporter.config.settings import GatewaySettings
from envoy_exporter.gateway.auth.accounts import EnlightenAccounts
from envoy_exporter.gateway.auth.backoff import BACKOFF_FIRST_S, Backoff
from envoy_exporter.gateway.auth.enlighten import Enlighten, EnlightenError
from envoy_exporter.gateway.auth.serial_claims import CONFIGURED, DISCOVERED, SERIAL_CONFIGURED, SerialClaims
from envoy_exporter.gateway.auth.token import Token
from envoy_exporter.gateway.auth.token_cache import TokenCache
from envoy_exporter.gateway.net.errors import failure_code, failure_reason
from envoy_exporter.state import read_regular_file

log = logging.getLogger("envoy_exporter.gateway.auth")

CHECK_JWT_PATH = "/auth/check_jwt"

Record = Callable[[str, str], None]


class _Check(Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # the gateway answered, and not with 200
    FAILED = "failed"  # no answer: says nothing about the token


class TokenKeeper:
    """One gateway's token, for one serial. Made anew when ``/info`` shows another gateway."""

    def __init__(
        self,
        settings: GatewaySettings,
        serial: str | None,
        state_dir: Path | None,
        record: Record,
        claims: SerialClaims,
        accounts: EnlightenAccounts,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._serial = serial
        self._record = record
        self._claims = claims
        self._clock = clock
        self._wall = wall
        # A discovered gateway's cached token belongs to its serial and pinned certificate, so it
        # follows the gateway to a new address that showed that certificate; else to its host.
        self._cache = TokenCache(state_dir, settings.label, settings.identity or settings.host)
        self._enlighten = Enlighten(settings, record, clock) if _has_credentials(settings) else None
        self._account = accounts.account(settings) if self._enlighten is not None else None
        self.last_error: str | None = None
        self._login_refused = False  # Enlighten turned the account down at the last try
        self._token: Token | None = None
        self._rejected = False  # ... and the gateway rejected it
        self._accepted_at: float | None = None  # when the gateway first accepted it (clock)
        self._file_stamp: tuple[int, int, int] | None = None
        self._file_error: str | None = None  # why the token file gave no token
        self._backoff = Backoff(settings.label, clock)
        self._said: set[str] = set()
        if serial:
            claims.claim(serial, self, settings.host, rank=_rank(settings, serial))
        if settings.token:
            self._take(Token.of(str(settings.token).strip(), "token", wall()))
        else:
            self._check_token_file()
        if self._token is None:
            cached = self._cache.load(serial, wall())
            if cached is not None:
                log.debug("%s: reusing the cached token, %s", settings.label, _expiry_text(cached))
                self._take(cached)

    @property
    def has_source(self) -> bool:
        """A token is at hand, or may come (a token file, Enlighten credentials)."""
        return self._token is not None or self._settings.token_file is not None or self._enlighten is not None

    @property
    def expiry(self) -> float | None:
        return None if self._token is None else self._token.expiry

    def close(self) -> None:
        self._claims.release(self)

    def credentials_rejected(self) -> dict[str, bool]:
        """Per credential in use: is it refused now? The token once the gateway turned it down
        (until another is accepted); the Enlighten login once Enlighten refused it."""
        states = {"token": self._rejected and self._token is not None}
        if self._enlighten is not None:
            states["enlighten"] = self._login_refused
        return states

    # ----------------------------------------------------------------------------------------
    # What Auth asks

    def withheld(self) -> str | None:
        """Why nothing needing the token may go out now, or None."""
        self._check_token_file()
        refusal = self._refusal()
        if refusal is not None:
            return refusal
        if self._backoff.active() and self._trouble():
            return self.last_error
        return None

    def blocked_until(self) -> float | None:
        return self._backoff.until if self._backoff.active() and self._trouble() else None

    def header(self) -> dict[str, str]:
        self._check_token_file()
        token = self._sendable()
        return {} if token is None else {"Authorization": f"Bearer {token.value}"}

    def refresh(self, session: requests.Session, base_url: str) -> str | None:
        """Fetch or renew the token; why the request must not go out, or None.

        A token is not checked on ``/auth/check_jwt`` before its first use: the request carries
        it, and the answer proves it (``accepted``) or, a 401, has it checked then
        (``on_unauthorized``). At a fleet's start that is one request per gateway less."""
        if self.withheld() is None and self._renewal_due():
            self._renew()
        reason = self.withheld()
        if reason is None and self._token is None:
            reason = self.last_error or self._file_error or "no token available yet"
        return reason

    def accepted(self) -> None:
        """A request that carried the token got its answer: the gateway accepts it, as if
        check_jwt had said so (told once per token, or after a rejection)."""
        if self._accepted_at is None or self._rejected:
            self._note_accepted()

    def on_unauthorized(self, session: requests.Session, base_url: str) -> bool:
        if self.withheld() is not None:
            return False
        if self._accepted_at is not None and self._clock() - self._accepted_at < BACKOFF_FIRST_S:
            # The gateway accepted this token a moment ago: the 401 is about the endpoint (some
            # want an installer token), and asking again or fetching another token would not help.
            return False
        # The session cookie may simply have expired while the token is still good. A token
        # the gateway rejected before is not checked again: this 401 says it still does.
        if self._sendable() is not None and not self._rejected:
            check = self._check_jwt(session, base_url)
            if check is not _Check.REJECTED:
                return check is _Check.ACCEPTED
        return self._recover(session, base_url)

    # ----------------------------------------------------------------------------------------
    # May it be sent?

    def _sendable(self) -> Token | None:
        return self._token if self._token is not None and self._refusal() is None else None

    def _refusal(self) -> str | None:
        """Why the token in hand must not go to this gateway (logged once), or None."""
        token = self._token
        if token is None:
            return None
        if token.issued_for(self._serial):
            return self._contest() if token.shared else None
        reason = (
            f"the token ({token.source}) was issued for serial {token.audience_text()}, "
            f"not for this gateway's serial {self._serial}; it is not sent"
        )
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

    def _trouble(self) -> bool:
        """No token to send, or the one in hand was rejected."""
        return self._token is None or self._rejected

    # ----------------------------------------------------------------------------------------
    # Sources

    def _take(self, token: Token) -> None:
        self._token = token
        self._rejected = False
        self._accepted_at = None
        self._said -= {"expiring", "expired", "refused", "contested"}

    def _check_token_file(self) -> None:
        """Adopt the token file's content whenever the file changes on disk."""
        path = self._settings.token_file
        if path is None or self._settings.token:
            return
        try:
            st = path.stat()
        except OSError as exc:
            self._file_failed(f"cannot read the token file {path}: {_why(exc)}")
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._file_stamp:
            return
        self._file_stamp = stamp
        try:
            value = read_regular_file(path).decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            self._file_failed(f"cannot read the token file {path}: {_why(exc)}")
            return
        self._said.discard("token_file")
        if not value:
            self._file_failed(f"the token file {path} is empty")
            return
        self._file_error = None
        if self._token is None or self._token.value != value:
            self._take(Token.of(value, "token_file", self._wall()))
            # Whatever failed before, the user has acted: try the new token right away.
            self._backoff.reset()
            log.info("%s: read a new token from %s", self._settings.label, path)

    def _file_failed(self, reason: str) -> None:
        """The token file gave no token: said once, and the reason kept for the endpoints."""
        self._file_error = reason
        self._warn_once("token_file", "%s", reason)

    def _can_fetch(self) -> bool:
        return self._enlighten is not None and self._contest() is None

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
            self._login_refused = exc.refused
            self._back_off(f"could not get a token from Enlighten: {exc}")
            return False
        self._login_refused = False
        return True

    def _fetch(self) -> Token:
        """Have Enlighten issue a token for this gateway's serial, and cache it."""
        if not self._serial:
            raise EnlightenError("the gateway serial is unknown")
        if self._enlighten is None or self._account is None:
            raise EnlightenError("no Enlighten credentials")
        now = self._wall()
        value = self._account.fetch_token(self._enlighten, self._serial)
        token = Token.of(value, "enlighten", now, self._serial)
        if not token.issued_for(self._serial):
            raise EnlightenError(f"entrez_token: the token names serial {token.audience_text()}")
        self._cache.save(self._serial, token, now)
        log.info("%s: obtained a gateway token from Enlighten, %s", self._settings.label, _expiry_text(token))
        return token

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

    # ----------------------------------------------------------------------------------------
    # Does the gateway accept it?

    def _check_jwt(self, session: requests.Session, base_url: str) -> _Check:
        """Ask the gateway to accept the token; on success it sets the ``sessionId`` cookie,
        which the session keeps and sends from then on."""
        token = self._sendable()
        if token is None:
            return _Check.FAILED
        try:
            response = session.get(
                base_url + CHECK_JWT_PATH,
                headers={"Authorization": f"Bearer {token.value}"},
                timeout=self._settings.timeout,
                allow_redirects=False,
            )
        except (OSError, ValueError) as exc:
            self._record("check_jwt", failure_code(exc))
            log.debug("%s: check_jwt failed: %s", self._settings.label, failure_reason(exc))
            return _Check.FAILED
        self._record("check_jwt", str(response.status_code))
        if response.status_code != 200:
            log.debug("%s: check_jwt answered HTTP %d", self._settings.label, response.status_code)
            self._rejected = True
            return _Check.REJECTED
        self._note_accepted()
        return _Check.ACCEPTED

    def _note_accepted(self) -> None:
        self._rejected = False
        self._accepted_at = self._clock()
        self.last_error = None
        self._backoff.recover("the gateway accepts the token again")

    def _recover(self, session: requests.Session, base_url: str) -> bool:
        """The gateway rejected the token: fetch another once, else back off."""
        self._rejected = self._token is not None
        if not self._can_fetch():
            what = "rejected the token" if self._token else "wants a token and none is available"
            if self._enlighten is None:
                self._back_off(f"the gateway {what}; Enlighten credentials would allow fetching a new one")
            else:
                self._back_off(f"the gateway {what}; {self._contest() or 'no new one can be fetched'}")
            return False
        if not self._renew():
            return False
        if self._check_jwt(session, base_url) is _Check.ACCEPTED:
            return True
        self._back_off(f"the gateway rejected the token Enlighten issued for serial {self._serial}")
        return False

    def _back_off(self, reason: str) -> None:
        self.last_error = reason
        self._backoff.fail(reason)

    # ----------------------------------------------------------------------------------------
    # Saying things once

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning("%s: " + message, self._settings.label, *args)

    def _error_once(self, key: str, reason: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.error("%s: %s", self._settings.label, reason)


def _rank(settings: GatewaySettings, serial: str) -> int:
    if settings.discovered:
        return DISCOVERED
    return SERIAL_CONFIGURED if settings.serial == serial else CONFIGURED


def _has_credentials(settings: GatewaySettings) -> bool:
    return bool(settings.enlighten_username and settings.enlighten_password)


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


def _expiry_text(token: Token) -> str:
    if token.expiry_unknown:
        return "expiry unknown"
    if token.expiry is None:
        return "no expiry stated"
    return "expires " + datetime.fromtimestamp(token.expiry, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
