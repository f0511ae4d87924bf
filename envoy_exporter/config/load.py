"""Reads ``exporter.yml`` into ``settings.Settings``.

The only module that parses YAML. Every mistake raises ``ConfigError`` naming the exact key path
(``gateways[1].cache_ttl.readings``), so the operator can fix it without reading code. Secrets come
inline, from ``${ENV}`` references, or from ``*_file`` (read and stripped); whatever their origin
they end up wrapped in ``settings.Secret``. Relative paths are taken relative to the config file,
as Prometheus does, so the file means the same whatever the working directory.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envoy_exporter.config.safe_yaml import YAMLRefused, load_yaml
from envoy_exporter.config.settings import (
    DEFAULT_CACHE_TTL,
    DEFAULT_MAX_DISCOVERED,
    DiscoverySettings,
    GatewaySettings,
    Secret,
    Settings,
    TLSSettings,
)
from envoy_exporter.snapshot.model import DayType, RatePeriod, Rates, Season, Tariff
from envoy_exporter.snapshot.pricing import zone
from envoy_exporter.state import read_regular_file

_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SERIAL = re.compile(r"[0-9]{6,20}")  # what discovery accepts as an announced serial

_TOP_KEYS = frozenset({"state_dir", "cache_ttl", "discovery", "defaults", "gateways"})
_DISCOVERY_KEYS = frozenset({"zeroconf", "interfaces", "max_gateways", "serials"})
_GATEWAY_KEYS = frozenset(
    {
        "name",
        "host",
        "serial",
        "username",
        "password",
        "password_file",
        "token",
        "token_file",
        "enlighten_username",
        "enlighten_password",
        "enlighten_password_file",
        "enlighten_url",
        "entrez_url",
        "tls",
        "cache_ttl",
        "timeout",
        "max_power_w",
        "timezone",
        "tariff",
    }
)
_TARIFF_KEYS = frozenset({"currency", "import", "export", "periods"})
_PERIOD_KEYS = frozenset({"start", "name", "import", "export"})
_TLS_KEYS = frozenset({"verify", "ca_file", "server_name"})


class ConfigError(Exception):
    """The configuration is unusable; ``key`` is the path of the offending key, and ``gateway`` the
    name of the gateway entry it is in, where that entry has one: "gateways[7]" alone is hard to
    find in a long file."""

    def __init__(self, key: str, message: str, gateway: str | None = None):
        where = f' (gateway "{gateway}")' if gateway else ""
        super().__init__(f"{key}: {message}{where}")
        self.key = key
        self.message = message
        self.gateway = gateway


def load_config(path: Path | str, env: Mapping[str, str] = os.environ) -> Settings:
    path = Path(path)
    try:
        raw = load_yaml(path)
    except OSError as e:
        raise ConfigError(str(path), f"cannot read the config file: {e.strerror or e}") from None
    except YAMLRefused as e:
        raise ConfigError(str(path), str(e)) from None
    return parse_config(raw, base_dir=path.resolve().parent, env=env)


def parse_config(raw: Any, base_dir: Path, env: Mapping[str, str] = os.environ) -> Settings:
    """Validates an already-loaded YAML document; ``base_dir`` anchors relative paths."""
    if raw is None:
        raw = {}
    notices: list[str] = []
    top = _Reader(_expand(raw, "", env), "", base_dir, notices)
    top.require_mapping(_TOP_KEYS)
    # The top-level cache_ttl is the default of every gateway's own; it lives on in them only.
    cache_ttl = _cache_ttl(top, "cache_ttl", DEFAULT_CACHE_TTL)
    discovery = _discovery(top.child("discovery"))
    defaults = _defaults(top.child("defaults"), cache_ttl)
    gateways = _gateways(top, defaults, required=not discovery.zeroconf)
    return Settings(
        gateways=gateways,
        state_dir=top.path("state_dir"),
        discovery=discovery,
        defaults=defaults,
        notices=tuple(notices),
    )


# --------------------------------------------------------------------------------------------
# ${ENV} expansion: done once over the whole document so every string value gets it


def _expand(value: Any, key: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: _lookup(m.group(1), key, env), value)
    if isinstance(value, dict):
        return {k: _expand(v, _join(key, k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{key}[{i}]", env) for i, v in enumerate(value)]
    return value


def _lookup(name: str, key: str, env: Mapping[str, str]) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise ConfigError(key, f"${{{name}}} is not a valid environment variable reference")
    if name not in env:
        raise ConfigError(key, f"environment variable {name} is not set")
    return env[name]


def _join(prefix: str, key: object) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _unknown_key(name: str, allowed: frozenset[str]) -> str:
    close = difflib.get_close_matches(name, sorted(allowed), n=1, cutoff=0.6)
    guess = f'; did you mean "{close[0]}"?' if close else ""
    return f"unknown key{guess} (allowed: {', '.join(sorted(allowed))})"


# --------------------------------------------------------------------------------------------
# Typed access to one mapping, with the key path kept for the error messages


class _Reader:
    def __init__(self, value: Any, key: str, base_dir: Path, notices: list[str]):
        self.value = value
        self.key = key
        self.base_dir = base_dir
        self.notices = notices  # warnings for the operator, shared by every reader of one file

    def at(self, name: str) -> str:
        return _join(self.key, name)

    def require_mapping(self, allowed: frozenset[str]) -> None:
        if not isinstance(self.value, dict):
            raise ConfigError(self.key or "(top level)", "must be a mapping of keys to values")
        for name in self.value:
            if name not in allowed:
                raise ConfigError(self.at(str(name)), _unknown_key(str(name), allowed))

    def has(self, name: str) -> bool:
        return self.value.get(name) is not None

    def get(self, name: str) -> Any:
        return self.value.get(name)

    def string(self, name: str) -> str | None:
        value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            # Quoting matters: YAML reads 012345 as an octal number, which would silently
            # change a password or serial.
            raise ConfigError(self.at(name), "must be a string (quote it)")
        if not value.strip():
            raise ConfigError(self.at(name), "must not be empty")
        return value

    def url(self, name: str) -> str | None:
        value = self.string(name)
        if value is not None and not value.startswith(("http://", "https://")):
            raise ConfigError(self.at(name), "must be a URL starting with http:// or https://")
        return value

    def number(self, name: str, minimum: float, inclusive: bool) -> float | None:
        value = self.get(name)
        if value is None:
            return None
        return _number(value, self.at(name), minimum, inclusive)

    def boolean(self, name: str) -> bool | None:
        value = self.get(name)
        if value is not None and not isinstance(value, bool):
            raise ConfigError(self.at(name), "must be true or false")
        return value

    def path(self, name: str) -> Path | None:
        value = self.string(name)
        if value is None:
            return None
        return self.base_dir / Path(value).expanduser()

    def file_content(self, name: str) -> str | None:
        path = self.path(name)
        if path is None:
            return None
        try:
            content = read_regular_file(path).decode("utf-8").strip()
        except OSError as e:
            raise ConfigError(self.at(name), f"cannot read {path}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise ConfigError(self.at(name), f"{path} is not UTF-8 text") from None
        if not content:
            raise ConfigError(self.at(name), f"{path} is empty")
        return content

    def secret(self, name: str) -> Secret | None:
        """``name`` given inline or as ``name_file``, never both."""
        file_key = f"{name}_file"
        if self.has(name) and self.has(file_key):
            raise ConfigError(self.at(file_key), f"give either {name} or {file_key}, not both")
        value = self.string(name) if self.has(name) else self.file_content(file_key)
        return Secret(value) if value is not None else None

    def child(self, name: str) -> _Reader:
        return _Reader(self.get(name), self.at(name), self.base_dir, self.notices)


def _number(value: Any, key: str, minimum: float, inclusive: bool) -> float:
    # bool is an int in Python; "cache_ttl: yes" is a mistake, not 1 second. .nan and .inf are
    # YAML floats, and no setting means them (an infinite price would make a cost counter +Inf).
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value >= minimum if inclusive else value > minimum
    if not ok:
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise ConfigError(key, f"must be a number {bound}")
    return float(value)


# --------------------------------------------------------------------------------------------
# Sections


def _cache_ttl(reader: _Reader, name: str, base: Mapping[str, float]) -> dict[str, float]:
    """A number sets every family; a mapping overrides the families it names."""
    ttl = dict(base)
    value = reader.get(name)
    key = reader.at(name)
    if value is None:
        return ttl
    if isinstance(value, dict):
        for family, seconds in value.items():
            if family not in DEFAULT_CACHE_TTL:
                known = ", ".join(DEFAULT_CACHE_TTL)
                raise ConfigError(_join(key, family), f"unknown cache family (known: {known})")
            ttl[family] = _number(seconds, _join(key, family), 0, inclusive=True)
        return ttl
    seconds = _number(value, key, 0, inclusive=True)
    return dict.fromkeys(ttl, seconds)


def _discovery(reader: _Reader) -> DiscoverySettings:
    if reader.value is None:
        return DiscoverySettings()
    reader.require_mapping(_DISCOVERY_KEYS)
    interfaces = reader.get("interfaces")
    if interfaces is None:
        interfaces = []
    if not isinstance(interfaces, list):
        raise ConfigError(reader.at("interfaces"), "must be a list of IP addresses")
    for index, address in enumerate(interfaces):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ConfigError(f"{reader.at('interfaces')}[{index}]", "must be an IP address") from None
    return DiscoverySettings(
        zeroconf=bool(reader.boolean("zeroconf")),
        interfaces=tuple(interfaces),
        max_gateways=_max_gateways(reader),
        serials=_serials(reader),
    )


def _max_gateways(reader: _Reader) -> int:
    value = reader.get("max_gateways")
    if value is None:
        return DEFAULT_MAX_DISCOVERED
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(reader.at("max_gateways"), "must be a whole number >= 0")
    return value


def _serials(reader: _Reader) -> tuple[str, ...]:
    value = reader.get("serials")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(reader.at("serials"), "must be a list of gateway serials (quoted)")
    for index, serial in enumerate(value):
        if not isinstance(serial, str) or not _SERIAL.fullmatch(serial):
            raise ConfigError(f"{reader.at('serials')}[{index}]", "must be a gateway serial, quoted")
    return tuple(value)


def _defaults(reader: _Reader, cache_ttl: dict[str, float]) -> dict[str, Any]:
    """The ``defaults:`` block: settings every gateway, configured or discovered, takes unless its
    own entry gives them (one Enlighten account for all, say). Returned as ``GatewaySettings``
    field values, ``cache_ttl`` always resolved."""
    if reader.value is None:
        return {"cache_ttl": cache_ttl}
    reader.require_mapping(_GATEWAY_KEYS)
    for name in sorted(_OWN_KEYS):
        if reader.has(name):
            why = "a token is issued for one gateway's serial" if "token" in name else "it names one gateway"
            raise ConfigError(
                reader.at(name), f"not allowed in defaults: {why}; give it in that gateway's entry"
            )
    return _fields(reader, cache_ttl)


def _gateways(top: _Reader, defaults: dict[str, Any], required: bool) -> tuple[GatewaySettings, ...]:
    value = top.get("gateways")
    if value is None and not required:
        return ()
    if not isinstance(value, list) or (required and not value):
        need = "a list of gateways" if not required else "a non-empty list of gateways"
        raise ConfigError("gateways", f"must be {need} (or set discovery.zeroconf)")
    gateways = [
        _named_entry(
            _Reader(entry, f"gateways[{i}]", top.base_dir, top.notices), defaults, discovery=not required
        )
        for i, entry in enumerate(value)
    ]
    _refuse_duplicates(gateways)
    return tuple(gateways)


def _named_entry(reader: _Reader, defaults: dict[str, Any], discovery: bool) -> GatewaySettings:
    """``_gateway``, whose errors also name the entry by its ``name`` where it has one."""
    try:
        return _gateway(reader, defaults, discovery)
    except ConfigError as e:
        name = reader.value.get("name") if isinstance(reader.value, dict) else None
        if not isinstance(name, str) or not name or e.gateway:
            raise
        raise ConfigError(e.key, e.message, gateway=name) from None


def _refuse_duplicates(gateways: list[GatewaySettings]) -> None:
    """Two entries for one gateway would serve every series twice under one label, or load the
    gateway twice under two: whatever the label, one gateway gets one entry."""
    seen: dict[tuple[str, str], int] = {}
    for index, gateway in enumerate(gateways):
        identities = (
            ("serial", "serial", gateway.serial),
            ("name", "gateway name", gateway.name),
            ("host", "host", _host_identity(gateway.host) if gateway.host else None),
        )
        for key, what, identity in identities:
            if identity is None:
                continue
            first = seen.setdefault((key, identity), index)
            if first != index:
                other = gateways[first]
                raise ConfigError(
                    f"gateways[{index}].{key}",
                    f"duplicate {what} {getattr(gateway, key)!r}: gateways[{first}] (host {other.host}) "
                    f"and gateways[{index}] (host {gateway.host}) would be the same gateway twice",
                    gateway=gateway.name,
                )


def _host_identity(host: str) -> str:
    """``https://Envoy.local/`` and ``envoy.local`` are one device."""
    host = host.strip().lower().rstrip("/")
    return host.split("://", 1)[1] if "://" in host else host


_MAX_PATH_ECHO = 40  # characters of a refused path quoted in the error
_OWN_KEYS = frozenset({"name", "host", "serial", "token", "token_file"})
# Keys that only make sense together: an entry that gives one of them takes none from defaults.
_CREDENTIAL_UNITS = (("username", "password"), ("enlighten_username", "enlighten_password"))


def _gateway(reader: _Reader, defaults: dict[str, Any], discovery: bool) -> GatewaySettings:
    reader.require_mapping(_GATEWAY_KEYS)
    serial = reader.string("serial")
    # With discovery, an entry may name its gateway by serial alone: found wherever it is.
    host = _host(reader) if reader.has("host") or not (discovery and serial) else ""
    own = _fields(reader, defaults["cache_ttl"])
    inherited = dict(defaults)
    for unit in _CREDENTIAL_UNITS:
        if any(key in own for key in unit):
            for key in unit:
                inherited.pop(key, None)
    return GatewaySettings(
        # The serial is the natural label; without either, the client learns it from /info.
        name=reader.string("name") or serial,
        host=host,
        serial=serial,
        token=_inline_token(reader),
        token_file=_token_file(reader),
        **{**inherited, **own},
    )


def _host(reader: _Reader) -> str:
    host = reader.string("host")
    if host is None:
        raise ConfigError(
            reader.at("host"), "is required (or give serial and set discovery.zeroconf to find it on the LAN)"
        )
    key = reader.at("host")
    if "://" in host and not host.startswith(("http://", "https://")):
        raise ConfigError(key, "a URL must start with http:// or https://")
    address = host.split("://", 1)[1] if "://" in host else host
    if not address.strip("/"):
        raise ConfigError(key, "has no address")
    if "@" in address:
        raise ConfigError(key, "must not carry credentials: use username/password or a token key")
    rest = address.rstrip("/")
    # The exporter appends the API paths itself; a path here would only be ignored or doubled,
    # and the gateway serves its API at the root anyway. A query or fragment is not quoted back:
    # it may carry a token.
    if "?" in rest or "#" in rest:
        raise ConfigError(key, "must be the gateway's address only, without a query or fragment")
    if "/" in rest:
        path = rest[rest.index("/") :]
        shown = path if len(path) <= _MAX_PATH_ECHO else path[:_MAX_PATH_ECHO] + "..."
        raise ConfigError(key, f"must be the gateway's address only, without a path ({shown})")
    if any(c.isspace() for c in host):
        raise ConfigError(key, "must not contain spaces")
    return host


def _fields(reader: _Reader, cache_ttl: dict[str, float]) -> dict[str, Any]:
    """The ``GatewaySettings`` fields a gateway entry or the defaults block gives, and only those."""
    fields: dict[str, Any] = {
        "username": reader.string("username"),
        "password": reader.secret("password"),
        "enlighten_username": reader.string("enlighten_username"),
        "enlighten_password": reader.secret("enlighten_password"),
        "enlighten_url": reader.url("enlighten_url"),
        "entrez_url": reader.url("entrez_url"),
        "tls": _tls(reader.child("tls")) if reader.has("tls") else None,
        "timeout": reader.number("timeout", 0, inclusive=False),
        "max_power_w": reader.number("max_power_w", 0, inclusive=False),
        "timezone": _timezone(reader),
        "tariff": _tariff(reader.child("tariff")) if reader.has("tariff") else None,
    }
    _enlighten_account_as_username(reader, fields)
    fields = {name: value for name, value in fields.items() if value is not None}
    fields["cache_ttl"] = _cache_ttl(reader, "cache_ttl", cache_ttl)
    return fields


def _enlighten_account_as_username(reader: _Reader, fields: dict[str, Any]) -> None:
    """Home Assistant asks for one ``username``/``password`` pair: the gateway's digest login
    before firmware 7, the Enlighten account after. An Enlighten login is an e-mail address and
    a digest user (``envoy``, ``installer``) never is, so an e-mail here means the Enlighten
    account: taken as such, with a notice, rather than sent to the gateway as a digest user."""
    username = fields["username"]
    if username is None or "@" not in username:
        return
    key = reader.at("username")
    if fields["enlighten_username"] is not None:
        raise ConfigError(
            key,
            "looks like an Enlighten account (an e-mail address) but enlighten_username is set too; "
            "username/password are the gateway's own login (firmware < 7)",
        )
    reader.notices.append(
        f"{key}: {username!r} is an e-mail address, taken as the Enlighten account; "
        "write enlighten_username and enlighten_password to say so"
    )
    fields["enlighten_username"], fields["username"] = username, None
    fields["enlighten_password"], fields["password"] = fields["password"], None


def _inline_token(reader: _Reader) -> Secret | None:
    if reader.has("token") and reader.has("token_file"):
        raise ConfigError(reader.at("token_file"), "give either token or token_file, not both")
    token = reader.string("token")
    return Secret(token) if token is not None else None


def _token_file(reader: _Reader) -> Path | None:
    """Checked now (readable, not empty) but passed on as a path, not as a token: auth reads it
    itself, and again whenever the file changes, so a renewed token is picked up live."""
    reader.file_content("token_file")
    return reader.path("token_file")


def _tls(reader: _Reader) -> TLSSettings:
    if reader.value is None:
        return TLSSettings()
    reader.require_mapping(_TLS_KEYS)
    ca_file = reader.path("ca_file")
    verify = reader.boolean("verify")
    if ca_file is not None:
        if verify is False:
            raise ConfigError(reader.at("verify"), "must not be false when ca_file is given")
        if not ca_file.is_file():
            raise ConfigError(reader.at("ca_file"), f"{ca_file} is not a readable file")
        verify = True
    server_name = reader.string("server_name")
    if server_name is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,253}", server_name.strip()):
        raise ConfigError(reader.at("server_name"), "must be a host name, as in the certificate")
    return TLSSettings(verify=bool(verify), ca_file=ca_file, server_name=server_name and server_name.strip())


def _timezone(reader: _Reader) -> str | None:
    name = reader.string("timezone")
    if name is not None and zone(name) is None:
        raise ConfigError(reader.at("timezone"), f"{name!r} is not a time zone (an IANA name: Europe/Paris)")
    return name


def _tariff(reader: _Reader) -> Tariff:
    """Prices for a gateway that holds no tariff of its own: flat rates per kWh, and optionally
    periods of the day (the same every day), each with its own import rate and, if given, export
    rate (else the flat one)."""
    reader.require_mapping(_TARIFF_KEYS)
    currency = reader.string("currency")
    if currency is None or not re.fullmatch(r"[A-Za-z]{3}", currency.strip()):
        raise ConfigError(reader.at("currency"), "is required: a currency code such as EUR or USD")
    buy = reader.number("import", 0, inclusive=True)
    if buy is None:
        raise ConfigError(reader.at("import"), "is required: the price of 1 kWh bought from the grid")
    periods = _periods(reader)
    return Tariff(
        currency=currency.strip().upper(),
        buy=_rates(buy, [RatePeriod(start, rates[0], name) for start, name, rates in periods]),
        sell=_rates(
            reader.number("export", 0, inclusive=True),
            [RatePeriod(start, rates[1], name) for start, name, rates in periods],
        ),
    )


def _rates(flat: float | None, periods: list[RatePeriod]) -> Rates:
    if not periods:
        return Rates(flat=flat)
    return Rates(flat=flat, seasons=(Season((1, 1), (DayType(frozenset(range(7)), tuple(periods)),), ""),))


def _periods(reader: _Reader) -> list[tuple[int, str, tuple[float | None, float | None]]]:
    """(start minute, name, (import rate, export rate)) in order of the day."""
    value = reader.get("periods")
    if value is None:
        return []
    key = reader.at("periods")
    if not isinstance(value, list):
        raise ConfigError(key, "must be a list of periods (start, name, import, export)")
    periods = []
    for index, entry in enumerate(value):
        item = _Reader(entry, f"{key}[{index}]", reader.base_dir, reader.notices)
        item.require_mapping(_PERIOD_KEYS)
        start = _clock(item)
        buy = item.number("import", 0, inclusive=True)
        if buy is None:
            raise ConfigError(item.at("import"), "is required: the price of 1 kWh in this period")
        name = item.string("name") or f"from {entry['start']}"
        periods.append((start, name, (buy, item.number("export", 0, inclusive=True))))
    starts = [start for start, _, _ in periods]
    if starts != sorted(set(starts)):
        raise ConfigError(key, "periods must be listed in order of their start, each start once")
    return periods


def _clock(item: _Reader) -> int:
    text = item.string("start")
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", (text or "").strip())
    if match is None:
        raise ConfigError(item.at("start"), 'must be a time of day as HH:MM (quote it: "07:30")')
    return int(match.group(1)) * 60 + int(match.group(2))
