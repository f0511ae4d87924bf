"""Tokens from Enlighten kept under ``state_dir/tokens/``, so a restart does not ask Enlighten.

One file per gateway serial, written by ``state.write_atomic`` (0600, previous generation kept).
A cached token belongs to the gateway it was fetched for: the file names that gateway (its host,
or for a gateway found by discovery its serial and pinned certificate), and another gateway
claiming the same serial does not get it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from envoy_exporter.gateway.auth.token import Token, epoch, token_claims
from envoy_exporter.logs import Condition
from envoy_exporter.state import read_state, safe_name, write_atomic

log = logging.getLogger(__name__)


class TokenCache:
    def __init__(self, state_dir: Path | None, label: str, host: str) -> None:
        """``host``: who the tokens belong to (``GatewaySettings.identity`` or its host)."""
        self._dir = None if state_dir is None else state_dir / "tokens"
        self._label = label
        self._host = host
        self._trouble = Condition(log)

    def path(self, serial: str | None) -> Path | None:
        if self._dir is None or not serial:
            return None
        return self._dir / f"{safe_name(serial)}.json"

    def load(self, serial: str | None, now: float) -> Token | None:
        """The token cached for ``serial`` by this gateway, unless it has expired."""
        path = self.path(serial)
        if path is None:
            return None
        data = read_state(path, _parse)
        if data is None:
            return None
        if data.get("gateway") != self._host:
            log.info(
                "%s: the cached token for serial %s was fetched for another gateway; not used here",
                self._label,
                serial,
            )
            return None
        token = Token.of(data["token"], "cache", epoch(data.get("obtained_at")), serial)
        if token.expiry is not None and token.expiry <= now:
            log.info("%s: the cached token has expired", self._label)
            return None
        if token.expiry_unknown:
            log.info("%s: the cached token's expiry is unknown; a new one is fetched", self._label)
            return None
        return token

    def save(self, serial: str | None, token: Token, now: float) -> None:
        """Never raises: the token still works from memory and is only fetched again after a
        restart."""
        path = self.path(serial)
        if path is None:
            return
        payload = {"token": token.value, "obtained_at": now, "serial": serial, "gateway": self._host}
        try:
            write_atomic(path, json.dumps(payload).encode())
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            self._trouble.failed("%s: could not cache the token in %s: %s", self._label, path.parent, why)
            return
        self._trouble.recovered("%s: the token is cached in %s again", self._label, path.parent)


def _parse(body: bytes) -> dict[str, object] | None:
    """The cache file's fields, or None (the file is moved aside) when it holds no token."""
    data = json.loads(body)
    if not isinstance(data, dict):
        return None
    value = data.get("token")
    if not isinstance(value, str) or token_claims(value) is None:
        return None
    return data
