"""What ``--check-config`` looks at beyond the file's shape: the things that would fail later.

Offline only: no gateway, no Enlighten, nothing on the network. A token is read for its claims
(malformed, expired, issued for another serial, times that are no times), Enlighten URLs must be
https as the running exporter demands, and ``state_dir`` must be a directory the exporter can
create and write. The check writes nothing: it looks at the permissions of the directory, or of
the nearest existing parent the exporter would create it in. Each problem is a ``ConfigError``
naming its key.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path

from envoy_exporter.config.load import ConfigError
from envoy_exporter.config.settings import GatewaySettings, Settings
from envoy_exporter.gateway.auth.enlighten import plain_http_refusal
from envoy_exporter.gateway.auth.token import Token, token_claims, unusable_times
from envoy_exporter.state import read_regular_file


def offline_problems(settings: Settings, now: float | None = None) -> list[ConfigError]:
    now = time.time() if now is None else now
    problems = _url_problems(settings.defaults, "defaults")
    for index, gateway in enumerate(settings.gateways):
        problem = _token_problem(gateway, f"gateways[{index}]", now)
        if problem is not None:
            problems.append(ConfigError(problem.key, problem.message, gateway=gateway.name))
        own = {k: v for k, v in vars(gateway).items() if settings.defaults.get(k) != v}
        problems += [
            ConfigError(p.key, p.message, gateway=gateway.name)
            for p in _url_problems(own, f"gateways[{index}]")
        ]
    if settings.state_dir is not None:
        problem = _state_dir_problem(settings.state_dir)
        if problem is not None:
            problems.append(problem)
    return problems


def _token_problem(gateway: GatewaySettings, prefix: str, now: float) -> ConfigError | None:
    if gateway.token is not None:
        key, value = f"{prefix}.token", str(gateway.token)
    elif gateway.token_file is not None:
        key = f"{prefix}.token_file"
        try:
            value = read_regular_file(gateway.token_file).decode("utf-8").strip()
        except (OSError, ValueError) as e:
            return ConfigError(key, f"cannot read {gateway.token_file}: {getattr(e, 'strerror', None) or e}")
    else:
        return None
    claims = token_claims(value)
    if claims is None:
        # Never quote the value: even a malformed token may be most of a real one.
        return ConfigError(key, "is not a JWT (three base64url parts separated by dots)")
    unusable = unusable_times(claims)
    if unusable:
        names = " and ".join(unusable)
        return ConfigError(key, f"its {names} claim is not a usable time; paste a token Enphase issued")
    # Read as auth reads it, so the check and the running exporter agree on exp and aud.
    token = Token.of(value, key.rsplit(".", 1)[1], now, claims=claims)
    if token.expiry is not None and token.expiry <= now:
        when = datetime.fromtimestamp(token.expiry, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return ConfigError(key, f"expired at {when}; paste a new one or give Enlighten credentials")
    if gateway.serial is not None and not token.issued_for(gateway.serial):
        return ConfigError(
            key,
            f"was issued for serial {token.audience_text()}, not for this gateway's serial {gateway.serial}",
        )
    return None


def state_dir_to_create(settings: Settings) -> Path | None:
    """``state_dir`` when it does not exist yet: the exporter creates it on its first write."""
    path = settings.state_dir
    return path if path is not None and not path.exists() else None


def _url_problems(fields: dict[str, object], prefix: str) -> list[ConfigError]:
    """The Enlighten URLs the running exporter would refuse to send the cloud password to. A URL
    the defaults give is named there, once, not in every gateway that takes it."""
    problems = []
    for name in ("enlighten_url", "entrez_url"):
        url = fields.get(name)
        refusal = plain_http_refusal(name, url) if isinstance(url, str) else None
        if refusal is not None:
            problems.append(ConfigError(f"{prefix}.{name}", refusal.removeprefix(f"{name} ")))
    return problems


def _state_dir_problem(path: Path) -> ConfigError | None:
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    reason = None
    if not existing.is_dir():
        reason = "Not a directory"
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = "Permission denied"
    elif os.statvfs(existing).f_flag & os.ST_RDONLY:
        # os.access says yes to root on a read-only file system.
        reason = "Read-only file system"
    if reason is None:
        return None
    return ConfigError("state_dir", f"{path} cannot be created or written: {reason}")
