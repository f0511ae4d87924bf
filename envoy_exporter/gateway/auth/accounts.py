"""Enlighten accounts shared by the gateways of one exporter: one login serves every gateway of
an account, and Enlighten is asked at most once per ``ASK_INTERVAL_S`` per account for a login
and per serial for a token, whatever the gateways (or announcements on the network) do.

A token Entrez issued in the last ``ASK_INTERVAL_S`` is handed out again instead of asking for
another: a gateway client made anew (a reload, a gateway that moved) costs Enlighten nothing.
A failure is remembered for as long and given again with the time left, so a gateway that keeps
wanting a token cannot make the exporter hammer the account (accounts can be rate-limited or
locked). One ``EnlightenAccounts`` is made by the process and given to every client.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from envoy_exporter.config.settings import GatewaySettings
from envoy_exporter.gateway.auth.enlighten import Enlighten, EnlightenError

ASK_INTERVAL_S = 300.0


@dataclass
class _Asked:
    at: float
    value: str | None = None  # the session id or token it gave
    error: str | None = None  # or why it gave none
    refused: bool = False  # ... Enlighten turned the credentials down (not an outage)


class Account:
    """One Enlighten account: its login session and the tokens it was issued lately."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._login: _Asked | None = None
        self._tokens: dict[str, _Asked] = {}

    def fetch_token(self, enlighten: Enlighten, serial: str) -> str:
        """A token for ``serial``: issued lately, or asked for now; raises ``EnlightenError``."""
        with self._lock:
            now = self._clock()
            asked = self._tokens.get(serial)
            if asked is not None and now - asked.at < ASK_INTERVAL_S:
                return _answer(asked, now)
            session = self._session(enlighten, now)
            try:
                token = enlighten.issue_token(session, serial)
            except EnlightenError as exc:
                self._tokens[serial] = _Asked(now, error=str(exc), refused=exc.refused)
                if "HTTP 401" in str(exc):
                    self._login = None  # the session may have ended: the next attempt logs in
                raise
            self._tokens[serial] = _Asked(now, value=token)
            return token

    def _session(self, enlighten: Enlighten, now: float) -> str:
        if self._login is None or now - self._login.at >= ASK_INTERVAL_S:
            try:
                self._login = _Asked(now, value=enlighten.login())
            except EnlightenError as exc:
                self._login = _Asked(now, error=str(exc), refused=exc.refused)
        return _answer(self._login, now)


def _answer(asked: _Asked, now: float) -> str:
    if asked.value is not None:
        return asked.value
    left = ASK_INTERVAL_S - (now - asked.at)
    raise EnlightenError(f"{asked.error} (Enlighten is asked again in {max(left, 0):.0f} s)", asked.refused)


class EnlightenAccounts:
    """The accounts of one process, by Enlighten URL, Entrez URL, user and password."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[tuple[str, ...], Account] = {}

    def account(self, settings: GatewaySettings) -> Account:
        password = hashlib.sha256(str(settings.enlighten_password).encode()).hexdigest()
        key = (settings.enlighten_url, settings.entrez_url, str(settings.enlighten_username), password)
        with self._lock:
            account = self._accounts.get(key)
            if account is None:
                account = self._accounts[key] = Account(self._clock)
            return account
