"""Gateways found on the LAN by zeroconf (mDNS/DNS-SD), merged with the configured ones.

Enphase gateways announce ``_enphase-envoy._tcp`` with their serial in the ``serialnum`` TXT
record (Home Assistant finds them the same way, with the same library, ``python-zeroconf``). A
gateway found so is served under its serial, with the settings of the ``defaults:`` block, until
a configured entry claims it (same serial, or same address). It is known by its serial, not its
address: when DHCP gives it a new address, the next announcement moves it there, under the same
label, with its counters and token kept in ``state_dir``. A gateway that goes off the air keeps
its last address and is reported down, rather than disappearing from Prometheus.

``merge`` and ``parse_announcement`` are pure; ``ZeroconfBrowser`` is the thin part that listens;
``Discovery`` applies configured + found to the fleet whenever either changes.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from envoy_exporter.config.settings import GatewaySettings, Settings

log = logging.getLogger(__name__)

SERVICE_TYPE = "_enphase-envoy._tcp.local."
_SERIAL = re.compile(r"[0-9]{6,20}")  # real serials are 12 digits
_RESOLVE_TIMEOUT_MS = 3000


@dataclass(frozen=True)
class Found:
    """One gateway as announced: its serial, and where it answers."""

    serial: str
    address: str  # an IP address
    port: int

    @property
    def host(self) -> str:
        """The ``host`` a configured entry would have. Port 80 is the gateway's usual
        announcement: no scheme, so the client tries https first and falls back to http for
        firmware before 7, exactly as for a bare configured address."""
        address = f"[{self.address}]" if ":" in self.address else self.address
        if self.port == 80:
            return address
        if self.port == 443:
            return f"https://{address}"
        return f"{address}:{self.port}"


def parse_announcement(
    properties: Mapping[bytes, bytes | None], addresses: Sequence[str], port: int
) -> Found | None:
    """The gateway an mDNS answer describes, or None when it is not one we can use."""
    raw = properties.get(b"serialnum")
    serial = raw.decode("ascii", "replace") if raw else ""
    if not _SERIAL.fullmatch(serial):
        return None
    address = _best_address(addresses)
    if address is None or not 0 < port < 65536:
        return None
    return Found(serial=serial, address=address, port=port)


def _best_address(addresses: Sequence[str]) -> str | None:
    """IPv4 first (what the gateway's LAN side is configured with); an IPv6 link-local address
    needs a zone the URL cannot carry, so it is never chosen."""
    usable = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if address.is_link_local or address.is_multicast or address.is_unspecified:
            continue
        usable.append(address)
    usable.sort(key=lambda a: a.version)
    return str(usable[0]) if usable else None


def merge(
    configured: Sequence[GatewaySettings], found: Iterable[Found], defaults: Mapping[str, Any]
) -> list[GatewaySettings]:
    """The configured gateways, then every found one no configured entry claims, by serial."""
    claimed_serials = {g.serial for g in configured if g.serial}
    claimed_hosts = {_address_of(g.host) for g in configured}
    labels = {g.label for g in configured}
    gateways = list(configured)
    for gateway in sorted(found, key=lambda f: f.serial):
        if (
            gateway.serial in claimed_serials
            or gateway.serial in labels
            or _address_of(gateway.host) in claimed_hosts
        ):
            continue
        gateways.append(
            GatewaySettings(name=gateway.serial, host=gateway.host, serial=gateway.serial, **defaults)
        )
    return gateways


def _address_of(host: str) -> str:
    """The address part of a ``host`` value: no scheme, no port, no brackets, lower case."""
    host = host.strip().lower().rstrip("/")
    if "://" in host:
        host = host.split("://", 1)[1]
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def start_discovery(
    settings: Settings, apply: Callable[[Sequence[GatewaySettings]], None]
) -> Discovery | None:
    """Discovery as ``settings`` ask for it, applying configured + found through ``apply``
    (``Fleet.apply``); None when discovery is off. Reloads go through ``Discovery.configure``."""
    if not settings.discovery.zeroconf:
        return None
    discovery = Discovery(apply, settings.gateways, settings.defaults)
    discovery.listen(ZeroconfBrowser(discovery.announce, settings.discovery.interfaces))
    log.info("zeroconf discovery of %s started", SERVICE_TYPE)
    return discovery


class Discovery:
    """Keeps the fleet equal to the configured gateways plus the found ones."""

    def __init__(
        self,
        apply: Callable[[Sequence[GatewaySettings]], None],
        configured: Sequence[GatewaySettings],
        defaults: Mapping[str, Any],
    ):
        self._apply = apply
        self._lock = threading.Lock()
        self._configured = tuple(configured)
        self._defaults = dict(defaults)
        self._found: dict[str, Found] = {}
        self._browser: ZeroconfBrowser | None = None

    def listen(self, browser: ZeroconfBrowser) -> None:
        self._browser = browser

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()

    def configure(self, configured: Sequence[GatewaySettings], defaults: Mapping[str, Any]) -> None:
        """A new configuration (reload): the found gateways stay found."""
        with self._lock:
            self._configured, self._defaults = tuple(configured), dict(defaults)
            self._apply_locked()

    def announce(self, gateway: Found) -> None:
        with self._lock:
            known = self._found.get(gateway.serial)
            if known == gateway:
                return
            if known is None:
                log.info("discovered gateway %s at %s", gateway.serial, gateway.host)
            else:
                log.info("gateway %s moved from %s to %s", gateway.serial, known.host, gateway.host)
            self._found[gateway.serial] = gateway
            self._apply_locked()

    def _apply_locked(self) -> None:
        # Under the lock, so two announcements cannot apply their merges out of order.
        self._apply(merge(self._configured, self._found.values(), self._defaults))


class ZeroconfBrowser:
    """Listens for ``_enphase-envoy._tcp`` and hands each usable announcement to ``announce``."""

    def __init__(self, announce: Callable[[Found], None], interfaces: Sequence[str] = ()):
        # Imported here: only a configuration with discovery needs the mDNS stack.
        from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, Zeroconf

        self._announce = announce
        self._zeroconf = Zeroconf(
            interfaces=list(interfaces) or InterfaceChoice.All,
            ip_version=_ip_version(interfaces, IPVersion),
        )
        self._browser = ServiceBrowser(self._zeroconf, SERVICE_TYPE, handlers=[self._on_change])

    def _on_change(self, zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        from zeroconf import ServiceStateChange

        if state_change is ServiceStateChange.Removed:
            # Kept at its last address: a gateway that reboots or drops off Wi-Fi is down, not gone.
            log.info("gateway announcement %s withdrawn; keeping it at its last address", name)
            return
        info = zeroconf.get_service_info(service_type, name, timeout=_RESOLVE_TIMEOUT_MS)
        if info is None:
            log.debug("no answer resolving %s", name)
            return
        found = parse_announcement(info.properties, info.parsed_addresses(), info.port or 0)
        if found is None:
            log.debug("ignoring announcement %s: no usable serial or address", name)
            return
        self._announce(found)

    def close(self) -> None:
        self._browser.cancel()
        self._zeroconf.close()


def _ip_version(interfaces: Sequence[str], versions: Any) -> Any:
    # IPv4 unless an IPv6 interface is asked for: gateways announce their IPv4 address anyway.
    if any(ipaddress.ip_address(a).version == 6 for a in interfaces):
        return versions.All
    return versions.V4Only
