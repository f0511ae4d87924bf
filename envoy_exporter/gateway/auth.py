"""Credentials for one gateway, and nothing else knows them.

Before firmware 7 the gateway protects some endpoints with HTTP digest: user ``envoy`` with the
last 6 digits of the serial, or ``installer`` with a password derived from the serial. From
firmware 7 on every endpoint but ``/info`` wants a bearer JWT, which comes (in this order) from the
settings, from a token file the user pastes into (accounts with MFA), from our own cache under
``state_dir``, or from Enlighten with the owner's cloud credentials.

Enlighten is slow and rate-limits, so it is asked at most once per recovery and, after a failure,
not again before an exponential back-off has passed; scrapes never wait on it during back-off.

No password and no token, not even a part of one, ever reaches a log line or an exception message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jwt
import requests
from requests.auth import HTTPDigestAuth

from envoy_exporter.gateway.endpoints import INFO
from envoy_exporter.gateway.errors import failure_code
from envoy_exporter.model import GatewayInfo
from envoy_exporter.settings import GatewaySettings

log = logging.getLogger(__name__)

REALM = "enphaseenergy.com"
CHECK_JWT_PATH = "/auth/check_jwt"
# Enlighten's login takes a few seconds on a good day; a scrape that has to fetch a token waits
# for it, so the bound is the same order as a gateway request.
ENLIGHTEN_TIMEOUT_S = 15.0
# Owner tokens last a year, installer tokens 12 hours: renew with 7 days or a tenth of the
# lifetime left, whichever is shorter, so short tokens are not renewed on every scrape.
RENEW_BEFORE_S = 7 * 86400.0
RENEW_FRACTION = 0.1
BACKOFF_FIRST_S = 60.0
BACKOFF_MAX_S = 3600.0

Record = Callable[[str, str], None]
Verify = bool | str


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


def token_claims(value: str) -> dict[str, Any] | None:
    """The claims of a JWT, read without checking the signature (only Enphase holds the key)."""
    try:
        claims = jwt.decode(value, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None


def _epoch(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    source: str  # "token", "token_file", "cache" or "enlighten"
    expiry: float | None  # the ``exp`` claim
    issued: float | None  # ``iat``, or when we obtained it: the start of its lifetime

    @classmethod
    def of(cls, value: str, source: str, obtained_at: float | None) -> _Token:
        claims = token_claims(value) or {}
        return cls(value, source, _epoch(claims.get("exp")), _epoch(claims.get("iat")) or obtained_at)

    def renew_at(self) -> float | None:
        if self.expiry is None:
            return None
        margin = RENEW_BEFORE_S
        if self.issued is not None and self.expiry > self.issued:
            margin = min(margin, RENEW_FRACTION * (self.expiry - self.issued))
        return self.expiry - margin


class _EnlightenError(Exception):
    """Enlighten or Entrez gave no token. The message names the step and is safe to log."""


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
    ) -> None:
        self._settings = settings
        self._state_dir = state_dir
        self._record = record
        self._clock = clock
        self._wall = wall
        self.scheme = "none"
        self.last_error: str | None = None
        self._configured: tuple[str | None, bool] | None = None
        self._serial = settings.serial
        self._digest: HTTPDigestAuth | None = None
        self._token: _Token | None = None
        self._checked = False  # check_jwt was tried for the current token
        self._accepted_at: float | None = None  # when check_jwt last accepted it (monotonic)
        self._file_stamp: tuple[int, int, int] | None = None
        self._backoff_s = 0.0
        self._backoff_until = 0.0
        self._said: set[str] = set()

    @property
    def token_expiry(self) -> float | None:
        if self.scheme != "token" or self._token is None:
            return None
        return self._token.expiry

    # ----------------------------------------------------------------------------------------
    # The interface Transport uses

    def configure(self, info: GatewayInfo) -> None:
        """Choose digest or token from the firmware; a repeat with the same gateway keeps state."""
        serial = info.serial or self._settings.serial
        if self._configured == (serial, info.needs_token):
            return
        self._configured = (serial, info.needs_token)
        self._serial = serial
        self._said.clear()
        if info.needs_token:
            self._configure_token(info.firmware)
        else:
            self._configure_digest()
        log.debug("%s: firmware %s, auth scheme %s", self._settings.label, info.firmware, self.scheme)

    def prepare(self, session: requests.Session, endpoint_key: str) -> dict[str, Any]:
        """Keyword arguments for ``session.get``: the credentials this endpoint needs, if any."""
        if endpoint_key == INFO.key:
            return {}
        if self.scheme == "digest":
            # HTTPDigestAuth only answers a challenge, so open endpoints cost nothing extra.
            return {"auth": self._digest}
        if self.scheme == "token":
            self._check_token_file()
            if self._token is not None:
                return {"headers": {"Authorization": f"Bearer {self._token.value}"}}
        return {}

    def refresh(self, session: requests.Session, base_url: str, verify: Verify) -> None:
        """Housekeeping before a protected request: fetch or renew the token, validate a new one.

        Added to the interface for Transport: it needs the gateway's base URL, which ``prepare``
        does not get.
        """
        if self.scheme != "token":
            return
        self._check_token_file()
        if self._renewal_due():
            try:
                self._take(self._fetch())
            except _EnlightenError as exc:
                self._back_off(f"could not get a token from Enlighten: {exc}")
        if self._token is not None and not self._checked:
            self._check_jwt(session, base_url, verify)

    def on_unauthorized(self, session: requests.Session, base_url: str, verify: Verify) -> bool:
        """The gateway said 401: True when the credentials were repaired and a retry makes sense."""
        if self.scheme == "digest":
            user = self._settings.username or "envoy"
            self.last_error = f"the gateway rejected the digest credentials of user {user!r}"
            self._error_once("digest", self.last_error)
            return False
        if self.scheme != "token":
            self._error_once("none", f"the gateway asks for credentials, but {self.last_error}")
            return False
        self._check_token_file()
        if self._backing_off():
            return False
        if self._accepted_at is not None and self._clock() - self._accepted_at < BACKOFF_FIRST_S:
            # The gateway accepted this token a moment ago: the 401 is about the endpoint (some
            # want an installer token), and asking again or fetching another token would not help.
            return False
        # The session cookie may simply have expired while the token is still good.
        if self._token is not None and self._check_jwt(session, base_url, verify):
            return True
        if not self._has_credentials():
            what = "rejected the token" if self._token else "wants a token and none is available"
            self._back_off(f"the gateway {what}; Enlighten credentials would allow fetching a new one")
            return False
        try:
            self._take(self._fetch())
        except _EnlightenError as exc:
            self._back_off(f"could not get a token from Enlighten: {exc}")
            return False
        if self._check_jwt(session, base_url, verify):
            return True
        self._back_off(f"the gateway rejected the token Enlighten issued for serial {self._serial}")
        return False

    # ----------------------------------------------------------------------------------------
    # Digest (firmware < 7)

    def _configure_digest(self) -> None:
        s = self._settings
        username = s.username or "envoy"
        password = str(s.password) if s.password else self._default_password(username)
        self._token = None
        if password is None:
            self._digest = None
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
        self._digest = None
        self._token = None
        self._file_stamp = None
        self.scheme = "token"
        self.last_error = None
        if s.token:
            self._take(_Token.of(str(s.token).strip(), "token", self._wall()))
        else:
            self._check_token_file()
        if self._token is None:
            cached = self._load_cache()
            if cached is not None:
                self._take(cached)
        if self._token is None and s.token_file is None and not self._has_credentials():
            self.scheme = "none"
            self.last_error = (
                f"firmware {firmware} needs a token: set token, token_file or Enlighten credentials"
            )

    def _has_credentials(self) -> bool:
        return bool(self._settings.enlighten_username and self._settings.enlighten_password)

    def _take(self, token: _Token) -> None:
        self._token = token
        self._checked = False
        self._accepted_at = None
        self._said -= {"expiring", "expired"}

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
            self._take(_Token.of(value, "token_file", self._wall()))
            # Whatever failed before, the user has acted: try the new token right away.
            self._backoff_s = self._backoff_until = 0.0
            log.info("%s: read a new token from %s", self._settings.label, path)

    def _renewal_due(self) -> bool:
        if self._backing_off():
            return False
        if self._token is None:
            return self._has_credentials()
        renew_at = self._token.renew_at()
        if renew_at is None or self._wall() < renew_at:
            return False
        if self._has_credentials():
            return True
        self._warn_expiry(self._token.expiry)
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

    def _check_jwt(self, session: requests.Session, base_url: str, verify: Verify) -> bool:
        """Ask the gateway to accept the token; on success it sets the ``sessionId`` cookie,
        which the session keeps and sends from then on."""
        token = self._token
        if token is None:
            return False
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
            return False
        self._record("check_jwt", str(response.status_code))
        if response.status_code != 200:
            log.debug("%s: check_jwt answered HTTP %d", self._settings.label, response.status_code)
            return False
        self._backoff_s = self._backoff_until = 0.0
        self._accepted_at = self._clock()
        self.last_error = None
        return True

    # ----------------------------------------------------------------------------------------
    # Enlighten

    def _fetch(self) -> _Token:
        """Log in to Enlighten and have Entrez issue a token for this gateway's serial."""
        s = self._settings
        if not self._serial:
            raise _EnlightenError("the gateway serial is unknown")
        with requests.Session() as web:
            login = self._post(
                web,
                "enlighten_login",
                f"{s.enlighten_url.rstrip('/')}/login/login.json",
                data={"user[email]": s.enlighten_username, "user[password]": str(s.enlighten_password)},
            )
            session_id = _session_id(login)
            answer = self._post(
                web,
                "entrez_token",
                f"{s.entrez_url.rstrip('/')}/tokens",
                json={
                    "session_id": session_id,
                    "serial_num": self._serial,
                    "username": s.enlighten_username,
                },
            )
        value = answer.text.strip()
        if token_claims(value) is None:
            raise _EnlightenError("entrez_token: the answer is not a JWT")
        token = _Token.of(value, "enlighten", self._wall())
        self._save_cache(token)
        log.info("%s: obtained a gateway token from Enlighten, %s", self._settings.label, _expiry_text(token))
        return token

    def _post(self, web: requests.Session, key: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            # verify=True explicitly: Enlighten is always verified (REQUESTS_CA_BUNDLE still applies).
            response = web.post(
                url, timeout=ENLIGHTEN_TIMEOUT_S, verify=True, allow_redirects=False, **kwargs
            )
        except (OSError, ValueError) as exc:
            code = failure_code(exc)
            self._record(key, code)
            raise _EnlightenError(f"{key}: {code} ({type(exc).__name__})") from None
        self._record(key, str(response.status_code))
        if response.status_code != 200:
            raise _EnlightenError(f"{key}: HTTP {response.status_code}")
        return response

    def _backing_off(self) -> bool:
        return self._clock() < self._backoff_until

    def _back_off(self, reason: str) -> None:
        self._backoff_s = min(BACKOFF_MAX_S, self._backoff_s * 2 or BACKOFF_FIRST_S)
        self._backoff_until = self._clock() + self._backoff_s
        self.last_error = reason
        log.warning("%s: %s; next attempt in %d s", self._settings.label, reason, self._backoff_s)

    # ----------------------------------------------------------------------------------------
    # The token cache under state_dir

    def _cache_path(self) -> Path | None:
        if self._state_dir is None or not self._serial:
            return None
        return self._state_dir / "tokens" / f"{re.sub(r'[^A-Za-z0-9_-]', '_', self._serial)}.json"

    def _load_cache(self) -> _Token | None:
        path = self._cache_path()
        if path is None:
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("%s: ignoring the token cache %s: %s", self._settings.label, path, _why(exc))
            return None
        value = data.get("token") if isinstance(data, dict) else None
        if not isinstance(value, str) or token_claims(value) is None:
            log.warning("%s: ignoring the token cache %s: no token in it", self._settings.label, path)
            return None
        token = _Token.of(value, "cache", _epoch(data.get("obtained_at")))
        if token.expiry is not None and token.expiry <= self._wall():
            log.info("%s: the cached token has expired", self._settings.label)
            return None
        log.debug("%s: reusing the cached token, %s", self._settings.label, _expiry_text(token))
        return token

    def _save_cache(self, token: _Token) -> None:
        """Write the token readable by us only, atomically: a crash leaves the old file or the new."""
        path = self._cache_path()
        if path is None:
            return
        payload = json.dumps({"token": token.value, "obtained_at": self._wall()}).encode()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError as exc:
            self._cache_failed(path, exc)
            return
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o600)  # a stale temp file may have had other permissions
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self._cache_failed(path, exc)

    def _cache_failed(self, path: Path, exc: OSError) -> None:
        # The token still works from memory; it is only fetched again after a restart.
        log.warning("%s: could not cache the token in %s: %s", self._settings.label, path.parent, _why(exc))

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


def _session_id(login: requests.Response) -> str:
    try:
        answer = login.json()
    except ValueError:
        raise _EnlightenError("enlighten_login: the answer is not JSON") from None
    session_id = answer.get("session_id") if isinstance(answer, dict) else None
    if not isinstance(session_id, str | int) or isinstance(session_id, bool) or not str(session_id):
        raise _EnlightenError("enlighten_login: the answer has no session_id")
    return str(session_id)


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


def _expiry_text(token: _Token) -> str:
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
