"""Validated configuration, as the rest of the program sees it.

``envoy_exporter.config.load`` reads ``exporter.yml`` into these; nothing else parses YAML. Secrets
(``password``, ``token``, Enlighten password) are held here already resolved from ``${ENV}`` or
``*_file``; their ``repr`` is redacted so they never reach a log line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envoy_exporter.snapshot.model import Tariff

# Cache lifetimes in seconds, per endpoint family, matched to how often the gateway refreshes
# the data behind it, so that a 60 s scrape interval asks each slow family once in several
# scrapes instead of on every one. ``readings`` are the CT meters (the gateway samples them every
# second or so) and ``production`` the production figures where no CT carries them; ``energy`` is
# production.json where it adds only energy figures (lifetime, today, seven days: on CT systems,
# where the readings carry every power, and where /api/v1/production is the source; see
# ``gateway.plan``); microinverters report every 5 minutes; ``ensemble`` are the battery powers and
# aggregate; inventory (devices, the Ensemble inventory) changes on installation and with device
# flags; the meter configuration changes when an installer changes it; /info with new firmware.
# ``settings`` are the tariff and battery profile, the dry contacts, the generator and the gateway's
# network status: minutes-scale state, read every fifteen minutes. production.json's lifetimes move
# with the CT readings between its reads (``assemble``), so its ``energy`` reads only refresh the
# gateway's own today / seven-day figures, also every fifteen minutes; on a system controller or
# Meter Collar the Ensemble inventory is read on every scrape instead (the grid relay's state).
DEFAULT_CACHE_TTL: dict[str, float] = {
    "readings": 5.0,
    "production": 10.0,
    "energy": 900.0,
    "inverters": 300.0,
    "ensemble": 30.0,
    "inventory": 300.0,
    "meters": 3600.0,
    "settings": 900.0,
    "info": 3600.0,
}

# A collection of one gateway asks nothing more once it has run this long (each request's timeout
# is cut to the time left), and no scrape waits longer for it. The first collection (detection, a
# token from Enlighten) may take longer than a scrape allows; none may hold a gateway for ever.
COLLECTION_DEADLINE = 60.0


class Secret(str):
    """A string that shows itself as ``***`` in ``repr`` and f-string debugging."""

    def __repr__(self) -> str:
        return "'***'"


# ``TLSSettings.fingerprint`` of a discovered gateway that moved while no certificate could be
# compared: no certificate has it, so the gateway is asked over plain http only, where no token
# is ever sent (``gateway.net.transport``).
UNPROVEN = "0" * 64


@dataclass(frozen=True)
class TLSSettings:
    # The gateway serves a self-signed certificate: verification is off for the gateway by
    # default, and only for it. ``ca_file`` pins a CA (or the gateway's own cert) instead.
    verify: bool = False
    ca_file: Path | None = None
    # The name the certificate is checked against (and sent as SNI) instead of the host: a
    # gateway reached by IP address shows a certificate naming only its common name.
    server_name: str | None = None
    # The SHA-256 fingerprint the certificate must have, on every connection: discovery sets it
    # for a gateway whose certificate it pinned (``fleet.pins``), so the token goes to that
    # certificate only, wherever the address leads later. Not a configuration key.
    fingerprint: str | None = None


@dataclass(frozen=True)
class GatewaySettings:
    name: str | None  # the ``gateway`` label; None until /info tells the serial
    host: str  # IPv4, [IPv6], host name, or base URL with scheme
    serial: str | None = None
    username: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    token_file: Path | None = None
    enlighten_username: str | None = None
    enlighten_password: Secret | None = None
    enlighten_url: str = "https://enlighten.enphaseenergy.com"
    entrez_url: str = "https://entrez.enphaseenergy.com"
    tls: TLSSettings = field(default_factory=TLSSettings)
    cache_ttl: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CACHE_TTL))
    timeout: float = 10.0  # seconds for one gateway request
    max_power_w: float | None = None  # plausibility bound for counter jumps (None: derived)
    # Found by discovery and not configured: its identity is only what the network announced,
    # so it never outranks a configured gateway for a serial, a label or a token.
    discovered: bool = False
    # Who a token cached under ``state_dir`` belongs to, where the host does not say it: a
    # gateway found by discovery is known by its serial and the certificate it showed first,
    # so its cached token follows it to a new address only when the certificate does too.
    identity: str | None = None
    timezone: str | None = None  # IANA name of the gateway's local time (None: as the gateway reports)
    tariff: Tariff | None = None  # prices where the gateway holds no tariff of its own

    @property
    def label(self) -> str:
        """The ``gateway`` label as far as the configuration tells it (see ``display_name``)."""
        return self.display_name()

    @property
    def found_by_serial(self) -> bool:
        """A configured entry naming its gateway by ``serial`` only: discovery finds its host."""
        return not self.host

    def display_name(self, reported_serial: str | None = None) -> str:
        """The ``gateway`` label: the configured name, else the serial (configured, or as /info
        reports it), else the host. The one place this rule lives."""
        return self.name or self.serial or reported_serial or self.host

    @property
    def label_configured(self) -> bool:
        """The label is the configuration's (a name or serial), not one ``/info`` will decide."""
        return bool(self.name or self.serial)


# At most this many gateways are served from announcements alone (configured entries named by
# serial do not count): what the network announces costs requests, series and files.
DEFAULT_MAX_DISCOVERED = 16


@dataclass(frozen=True)
class DiscoverySettings:
    zeroconf: bool = False  # browse _enphase-envoy._tcp (mDNS) for gateways
    interfaces: tuple[str, ...] = ()  # addresses to browse on; empty: every interface
    max_gateways: int = DEFAULT_MAX_DISCOVERED  # discovered (not configured) gateways served at most
    serials: tuple[str, ...] = ()  # only these serials are served when discovered; empty: any


@dataclass(frozen=True)
class Settings:
    gateways: tuple[GatewaySettings, ...]  # the configured ones; discovery may add more
    state_dir: Path | None = None
    discovery: DiscoverySettings = field(default_factory=DiscoverySettings)
    # ``GatewaySettings`` field values from the ``defaults:`` block, for discovered gateways
    # (configured ones already carry them); ``cache_ttl`` is always there.
    defaults: dict[str, Any] = field(default_factory=lambda: {"cache_ttl": dict(DEFAULT_CACHE_TTL)})
    notices: tuple[str, ...] = ()  # warnings for the operator, each naming its key
