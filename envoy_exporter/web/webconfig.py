"""``--web.config.file``: TLS and basic auth for the exporter's own server.

The file has the format of the Prometheus exporter-toolkit (node_exporter, Prometheus,
blackbox_exporter, pve-exporter), so one file can serve them all and ``promtool check
web-config`` checks it::

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: clients-ca.crt
      min_version: TLS12
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}
    basic_auth_users:
      prometheus: $2b$12$...          # bcrypt hash, e.g. from `htpasswd -nBC 12 ""`

Relative paths are relative to the file, as in the toolkit. A key the exporter cannot honour is
refused, naming it, rather than ignored: a security setting silently dropped is worse than none.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
from base64 import b64decode
from binascii import Error as BinasciiError
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from envoy_exporter.config.safe_yaml import YAMLRefused, load_yaml

_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# The toolkit's names. RequestClientCert and RequireAnyClientCert ask for a certificate without
# verifying it; Python's ssl module verifies every certificate it asks for, so those two are
# refused rather than turned into something stricter or looser than the user wrote.
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNSUPPORTED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
# Headers the toolkit lets a user set on every answer.
_HEADERS = (
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
)
_TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"}
# Accepted and without effect here: Go's cipher-suite preference is ignored by Go itself since
# 1.18, and this server speaks HTTP/1.1 only.
_IGNORED_TLS_KEYS = {"prefer_server_cipher_suites"}
_IGNORED_HTTP_KEYS = {"http2"}


# Password checks run at most this many at a time: bcrypt is slow by design (~0.1-0.3 s of CPU
# each), so clients guessing passwords could otherwise take every core. A request that finds every
# slot busy for longer than ``_SLOT_WAIT_S`` is turned away (429) without a check; clients whose
# password was verified before are served from memory, without a slot, at full speed.
BCRYPT_SLOTS = 1
_SLOT_WAIT_S = 0.25


class Verdict(Enum):
    ALLOWED = "allowed"
    DENIED = "denied"
    BUSY = "busy"  # no password check could run now: try again later


class WebConfigError(ValueError):
    """A bad web configuration; the message names the key."""


@dataclass
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    headers: tuple[tuple[str, str], ...] = ()
    # Verified (user, sha256 of password) pairs: bcrypt costs ~0.1-0.3 s by design, too much
    # to pay on every scrape. Only successes are kept, so a guesser gains nothing from it.
    _verified: set[tuple[str, bytes]] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(BCRYPT_SLOTS), repr=False
    )

    def check(self, header: str | None) -> Verdict:
        """May the request with this ``Authorization`` header be served?"""
        if not self.users:
            return Verdict.ALLOWED
        credentials = _basic_credentials(header)
        if credentials is None:
            return Verdict.DENIED
        user, password = credentials
        key = (user, hashlib.sha256(password).digest())
        with self._lock:
            if key in self._verified:
                return Verdict.ALLOWED
        if not self._slots.acquire(timeout=_SLOT_WAIT_S):
            return Verdict.BUSY
        try:
            stored = self.users.get(user)
            # An unknown user costs one bcrypt too, so timing does not tell which users exist.
            ok = _checkpw(password, stored or next(iter(self.users.values()))) and stored is not None
        finally:
            self._slots.release()
        if not ok:
            return Verdict.DENIED
        with self._lock:
            self._verified.add(key)
        return Verdict.ALLOWED


def _checkpw(password: bytes, hashed: bytes) -> bool:
    # bcrypt reads 72 bytes at most: bcrypt 4 would accept any longer password that starts
    # with the right 72 bytes, bcrypt 5 raises. Refuse them, whatever the version.
    if len(password) > 72:
        return False
    import bcrypt  # see ``_users``

    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = b64decode(value.strip(), validate=True)
    except (BinasciiError, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    return user.decode("utf-8", "replace"), password


def load_web_config(path: Path) -> WebConfig:
    """Reads and checks the file; raises ``WebConfigError`` naming the key at fault."""
    # The exporter's own bounded loader: no alias bomb, no nesting past the recursion limit.
    try:
        data = load_yaml(path)
    except OSError as e:
        raise WebConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except YAMLRefused as e:
        raise WebConfigError(f"{path}: {e}") from None
    if data is None:
        return WebConfig()
    _mapping(data, "the web configuration")
    _known(data, {"tls_server_config", "http_server_config", "basic_auth_users"}, "")
    base = path.parent
    return WebConfig(
        tls=_tls(data.get("tls_server_config"), base),
        users=_users(data.get("basic_auth_users")),
        headers=_headers(data.get("http_server_config")),
    )


def _tls(section: Any, base: Path) -> ssl.SSLContext | None:
    if section is None:
        return None
    _mapping(section, "tls_server_config")
    unsupported = set(section) - _TLS_KEYS - _IGNORED_TLS_KEYS
    if unsupported:
        key = sorted(unsupported)[0]
        raise WebConfigError(f"tls_server_config.{key}: not supported by envoy-exporter")
    for key in ("cert_file", "key_file"):
        if not section.get(key):
            raise WebConfigError(f"tls_server_config.{key}: required when tls_server_config is set")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _version(section, "min_version", "TLS12")
    context.maximum_version = _version(section, "max_version", "TLS13")
    cert, key = _path(section, "cert_file", base), _path(section, "key_file", base)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise WebConfigError(f"tls_server_config.cert_file: cannot load {cert} with {key}: {e}") from None
    _client_auth(context, section, base)
    return context


def _client_auth(context: ssl.SSLContext, section: dict[str, Any], base: Path) -> None:
    mode = section.get("client_auth_type") or "NoClientCert"
    if mode in _UNSUPPORTED_CLIENT_AUTH:
        raise WebConfigError(
            f"tls_server_config.client_auth_type: {mode} (a certificate asked for but not verified) is "
            "not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
        )
    if mode not in _CLIENT_AUTH:
        known = ", ".join([*_CLIENT_AUTH, *_UNSUPPORTED_CLIENT_AUTH])
        raise WebConfigError(f"tls_server_config.client_auth_type: {mode!r} is not one of {known}")
    ca = section.get("client_ca_file")
    if _CLIENT_AUTH[mode] == ssl.CERT_NONE:
        if ca:
            raise WebConfigError(
                "tls_server_config.client_ca_file: set, but client_auth_type does not verify client "
                "certificates"
            )
        return
    if not ca:
        raise WebConfigError(f"tls_server_config.client_ca_file: required for client_auth_type {mode}")
    path = _path(section, "client_ca_file", base)
    try:
        context.load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError) as e:
        raise WebConfigError(f"tls_server_config.client_ca_file: cannot load {path}: {e}") from None
    context.verify_mode = _CLIENT_AUTH[mode]


def _version(section: dict[str, Any], key: str, default: str) -> ssl.TLSVersion:
    name = section.get(key) or default
    if name not in _VERSIONS:
        raise WebConfigError(f"tls_server_config.{key}: {name!r} is not one of {', '.join(_VERSIONS)}")
    return _VERSIONS[name]


def _path(section: dict[str, Any], key: str, base: Path) -> Path:
    value = section[key]
    if not isinstance(value, str):
        raise WebConfigError(f"tls_server_config.{key}: must be a file path")
    return base / value


def _users(section: Any) -> dict[str, bytes]:
    if section is None:
        return {}
    _mapping(section, "basic_auth_users")
    import bcrypt  # here and in ``_checkpw``: a web configuration without users needs none of it

    users: dict[str, bytes] = {}
    for user, hashed in section.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise WebConfigError(f"basic_auth_users.{user}: must be a bcrypt hash ($2b$..., $2y$...)")
        try:
            bcrypt.checkpw(b"", hashed.encode())
        except ValueError:
            raise WebConfigError(f"basic_auth_users.{user}: not a valid bcrypt hash") from None
        users[str(user)] = hashed.encode()
    return users


def _headers(section: Any) -> tuple[tuple[str, str], ...]:
    if section is None:
        return ()
    _mapping(section, "http_server_config")
    _known(section, {"headers", *_IGNORED_HTTP_KEYS}, "http_server_config.")
    headers = section.get("headers") or {}
    _mapping(headers, "http_server_config.headers")
    allowed = {name.lower(): name for name in _HEADERS}
    out = []
    for name, value in headers.items():
        if str(name).lower() not in allowed:
            raise WebConfigError(f"http_server_config.headers.{name}: not one of {', '.join(_HEADERS)}")
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise WebConfigError(f"http_server_config.headers.{name}: must be a one-line string")
        out.append((allowed[str(name).lower()], value))
    return tuple(out)


def _mapping(value: Any, key: str) -> None:
    if not isinstance(value, dict):
        raise WebConfigError(f"{key}: must be a mapping")


def _known(section: dict[str, Any], keys: set[str], prefix: str) -> None:
    unknown = set(map(str, section)) - keys
    if unknown:
        raise WebConfigError(f"{prefix}{sorted(unknown)[0]}: unknown key")
