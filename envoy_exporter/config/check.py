"""What ``--check-config`` looks at beyond the file's shape: the things that would fail later.

Offline only: no gateway, no Enlighten, nothing on the network. A token is read for its claims
(malformed, expired, issued for another serial) and ``state_dir`` must be a directory the
exporter can create and write. Each problem is a ``ConfigError`` naming its key.
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from envoy_exporter.config.load import ConfigError
from envoy_exporter.config.settings import GatewaySettings, Settings
from envoy_exporter.gateway.auth.token import Token, token_claims


def offline_problems(settings: Settings, now: float | None = None) -> list[ConfigError]:
    now = time.time() if now is None else now
    problems = []
    for index, gateway in enumerate(settings.gateways):
        problem = _token_problem(gateway, f"gateways[{index}]", now)
        if problem is not None:
            problems.append(problem)
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
            value = gateway.token_file.read_text(encoding="utf-8").strip()
        except (OSError, ValueError) as e:
            return ConfigError(key, f"cannot read {gateway.token_file}: {getattr(e, 'strerror', None) or e}")
    else:
        return None
    if token_claims(value) is None:
        # Never quote the value: even a malformed token may be most of a real one.
        return ConfigError(key, "is not a JWT (three base64url parts separated by dots)")
    # Read as auth reads it, so the check and the running exporter agree on exp and aud.
    token = Token.of(value, key.rsplit(".", 1)[1], now)
    if token.expiry is not None and token.expiry <= now:
        when = datetime.fromtimestamp(token.expiry, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return ConfigError(key, f"expired at {when}; paste a new one or give Enlighten credentials")
    if gateway.serial is not None and not token.issued_for(gateway.serial):
        return ConfigError(
            key,
            f"was issued for serial {token.audience_text()}, not for this gateway's serial {gateway.serial}",
        )
    return None


def _state_dir_problem(path: Path) -> ConfigError | None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # A real write, not os.access: that says yes to root on a read-only file system.
        with tempfile.NamedTemporaryFile(dir=path, prefix=".check-config-"):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        return ConfigError("state_dir", f"{path} cannot be created or written: {reason}")
    return None
