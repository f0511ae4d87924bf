"""The certificates discovered gateways showed, kept under ``state_dir/pins/`` as SSH keeps
host keys in ``known_hosts``: one file per serial, mode 0600, holding the SHA-256 fingerprint of
the certificate the gateway presented when the exporter first found it.

An announcement says "serial X is now at address B"; anyone on the LAN can send one. The pin is
what lets a gateway's token and credentials follow it to B: B must present the same certificate.
The pin is also what every connection to the gateway is held to (``TLSSettings.fingerprint``).
After a legitimate change (a replaced gateway, a certificate the firmware renewed), delete
``state_dir/pins/<serial>.json`` and restart: the next announcement pins the certificate it then
finds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import ssl
from pathlib import Path

from envoy_exporter.logs import Condition
from envoy_exporter.state import read_state, safe_name, write_atomic

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0
HTTPS_PORT = 443


def fingerprint(address: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """The SHA-256 fingerprint of the certificate ``address``:``port`` presents over TLS, or None
    when it speaks no TLS there (firmware before 7 has none) or does not answer in time. Not
    verified: gateways' certificates are self-signed; the fingerprint is what is compared."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((address, port), timeout=timeout) as raw,
            context.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ValueError):
        return None
    return hashlib.sha256(der).hexdigest() if der else None


class Pins:
    """Serial -> the fingerprint pinned for it, in ``state_dir/pins/`` (in memory without one)."""

    def __init__(self, state_dir: Path | None) -> None:
        self._dir = None if state_dir is None else state_dir / "pins"
        self._memory: dict[str, str] = {}
        self._trouble = Condition(log)  # a full or read-only state_dir: said once, not per pin

    def path(self, serial: str) -> Path | None:
        return None if self._dir is None else self._dir / f"{safe_name(serial)}.json"

    def get(self, serial: str) -> str | None:
        if serial in self._memory:
            return self._memory[serial]
        path = self.path(serial)
        pinned = read_state(path, _parse) if path is not None else None
        if pinned is not None:
            self._memory[serial] = pinned
        return pinned

    def put(self, serial: str, print_: str, address: str) -> None:
        """Never raises: a pin that cannot be written still holds in memory until a restart."""
        self._memory[serial] = print_
        path = self.path(serial)
        if path is None:
            return
        body = json.dumps({"serial": serial, "sha256": print_, "first_seen_at": address}).encode()
        try:
            write_atomic(path, body)
        except OSError as exc:
            self._trouble.failed(
                "cannot save certificate pins in %s: %s; they hold in memory until a restart",
                path.parent,
                exc.strerror or type(exc).__name__,
            )
            return
        self._trouble.recovered("certificate pins are saved in %s again", path.parent)


def _parse(body: bytes) -> str | None:
    data = json.loads(body)
    value = data.get("sha256") if isinstance(data, dict) else None
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value
    return None
