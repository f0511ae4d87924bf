"""Gateways found on the LAN by zeroconf (mDNS/DNS-SD), merged with the configured ones.

Enphase gateways announce ``_enphase-envoy._tcp`` with their serial in the ``serialnum`` TXT
record (Home Assistant finds them the same way, with the same library, ``python-zeroconf``).
Anyone on the LAN can send such an announcement, so what one says is weighed against what the
user configured (the trust model, in users' words, is in docs/security.md):

- The configuration settles identity. A configured entry owns its ``serial``, its name, its
  address, and the serial its gateway's ``/info`` reports: an announcement of any of them is
  ignored, from whatever address. Discovered gateways are held back while a configured gateway
  without a configured serial has not yet told its serial, so that no announcement can get in
  first with it.
- A configured entry may name its gateway by ``serial`` alone: discovery finds its address, and
  it keeps its name, credentials and counters wherever it is found.
- A gateway found only by its announcement is served under its serial with the settings of the
  ``defaults:`` block. The certificate it shows is pinned in ``state_dir/pins/`` (``pins``): it
  follows a new announcement to a new address, with its token and counters, only when the new
  address shows the same certificate; otherwise it stays where it was, with a warning.
- At most ``discovery.max_gateways`` are served from announcements alone (and only the serials of
  ``discovery.serials`` when that is given); announced addresses outside the networks of the
  browsing interfaces are ignored.
- The browser thread only reads what is already in the mDNS cache and hands work on: names are
  resolved on worker threads behind a bounded queue, and each serial's announcements are weighed
  (its certificate read) on a thread of that serial's own, so an address that never answers
  delays nothing else; nothing an announcement holds can raise out of a callback and stop
  discovery.

A gateway that goes off the air keeps its last address and is reported down, rather than
disappearing from Prometheus.

``merge`` and ``parse_announcement`` are pure; ``ZeroconfBrowser`` is the thin part that listens;
``Discovery`` applies configured + found to the fleet whenever either changes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import logging
import queue
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from envoy_exporter.config.settings import UNPROVEN, DiscoverySettings, GatewaySettings, Settings
from envoy_exporter.fleet.pins import HTTPS_PORT, Pins, fingerprint
from envoy_exporter.logs import Condition

log = logging.getLogger(__name__)

SERVICE_TYPE = "_enphase-envoy._tcp.local."
_SERIAL = re.compile(r"[0-9]{6,20}")  # real serials are 12 digits
_RESOLVE_TIMEOUT_MS = 3000
# Work waiting for the worker threads; past this, announcements are dropped (and said so once).
_QUEUE_SIZE = 64
_RESOLVERS = 4  # names that never resolve hold one each for 3 s: they cannot hold them all long
# Past its own timeout, a resolution waits this much longer for zeroconf's loop to answer.
_RESOLVE_GRACE_S = 10.0
# How long ``close`` waits for each resolver thread, which has nothing slow left to finish.
_CLOSE_WAIT_S = 1.0
_SAID_MAX = 256  # (serial, address) pairs remembered so a refusal is logged once, not per packet
# Discovered gateways held back this long by a configured gateway that has not told its serial:
# a warning (once), since it is then down or misconfigured rather than starting.
HOLD_WARNING_S = 60.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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

    @property
    def tls_port(self) -> int:
        """Where its certificate is shown: 443 beside the usual port 80, else the port itself."""
        return HTTPS_PORT if self.port == 80 else self.port


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


def local_networks(interfaces: Sequence[str]) -> list[Network]:
    """The networks of the interfaces browsed (``interfaces``: their addresses; empty: all).
    Loopback counts only where a loopback address is browsed explicitly: an announcement from
    the LAN must not point the exporter at its own host."""
    import ifaddr  # python-zeroconf's own dependency

    wanted = {ipaddress.ip_address(a) for a in interfaces}
    networks = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            address = ipaddress.ip_address(text)
            if wanted and address not in wanted:
                continue
            if address.is_loopback and address not in wanted:
                continue
            networks.append(ipaddress.ip_network(f"{text}/{ip.network_prefix}", strict=False))
    return networks


def on_networks(address: str, networks: Iterable[Network]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == n.version and ip in n for n in networks)


def merge(
    configured: Sequence[GatewaySettings],
    found: Iterable[Found],
    defaults: Mapping[str, Any],
    owned: Iterable[str] = (),
    identities: Mapping[str, str] | None = None,
) -> list[GatewaySettings]:
    """The configured gateways (those named by serial alone once found, at the address found),
    then every found one no configured entry claims: by serial, label, address, or the serial
    its gateway reported (``owned``). ``identities``: serial -> the pinned certificate."""
    found_by_serial = {f.serial: f for f in found}
    identities = identities or {}
    claimed_serials = {g.serial for g in configured if g.serial} | set(owned)
    claimed_hosts = {_address_of(g.host) for g in configured if g.host}
    labels = {g.label for g in configured}
    gateways = []
    for entry in configured:
        if not entry.found_by_serial:
            gateways.append(entry)
        elif entry.serial in found_by_serial:
            where = found_by_serial[entry.serial]
            gateways.append(_pinned(replace(entry, host=where.host), identities))
    for gateway in sorted(found_by_serial.values(), key=lambda f: f.serial):
        if (
            gateway.serial in claimed_serials
            or gateway.serial in labels
            or _address_of(gateway.host) in claimed_hosts
        ):
            continue
        found_one = GatewaySettings(
            name=gateway.serial, host=gateway.host, serial=gateway.serial, **defaults, discovered=True
        )
        gateways.append(_pinned(found_one, identities))
    return gateways


def _pinned(gateway: GatewaySettings, identities: Mapping[str, str]) -> GatewaySettings:
    """``gateway`` held to the certificate pinned for its serial, if any: its cached token is
    kept under that certificate, and every connection must show it (not only the one that
    proved a move), so an address that later leads elsewhere gets nothing."""
    pinned = identities.get(gateway.serial) if gateway.serial else None
    if pinned is None:
        return gateway
    proof = "moved unproven" if pinned == UNPROVEN else f"certificate sha256 {pinned}"
    return replace(
        gateway, identity=f"serial {gateway.serial}, {proof}", tls=replace(gateway.tls, fingerprint=pinned)
    )


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
    settings: Settings,
    apply: Callable[[Sequence[GatewaySettings]], None],
    *,
    reported: Callable[[], Mapping[str, str | None]] = dict,
    waiting: Callable[[Sequence[str]], None] | None = None,
) -> Discovery | None:
    """Discovery as ``settings`` ask for it, applying configured + found through ``apply``
    (``Fleet.apply``); None when discovery is off. Reloads go through ``Discovery.configure``.
    ``reported`` and ``waiting``: see ``Discovery``."""
    if not settings.discovery.zeroconf:
        return None
    discovery = Discovery(
        apply,
        settings.gateways,
        settings.defaults,
        settings.discovery,
        pins=Pins(settings.state_dir),
        networks=local_networks(settings.discovery.interfaces),
        reported=reported,
        waiting=waiting,
    )
    discovery.reconsider()  # entries named by serial alone are waited for from the start
    discovery.listen(ZeroconfBrowser(discovery.announce_later, settings.discovery.interfaces))
    log.info("zeroconf discovery of %s started", SERVICE_TYPE)
    return discovery


class Discovery:
    """Keeps the fleet equal to the configured gateways plus the found ones.

    ``reported``: host -> the serial its ``/info`` reported (None: not yet), for every configured
    gateway without a configured serial (the fleet knows). ``waiting``: told the names of the
    configured entries named by serial that are not found yet. ``networks``: announced addresses
    outside them are ignored (None: no such check). ``probe``: the certificate fingerprint an
    address shows (``pins.fingerprint``).
    """

    def __init__(
        self,
        apply: Callable[[Sequence[GatewaySettings]], None],
        configured: Sequence[GatewaySettings],
        defaults: Mapping[str, Any],
        settings: DiscoverySettings | None = None,
        *,
        pins: Pins | None = None,
        networks: Sequence[Network] | None = None,
        reported: Callable[[], Mapping[str, str | None]] = dict,
        waiting: Callable[[Sequence[str]], None] | None = None,
        probe: Callable[[str, int], str | None] = fingerprint,
    ):
        self._apply = apply
        self._lock = threading.Lock()
        self._configured = tuple(configured)
        self._defaults = dict(defaults)
        self._settings = settings or DiscoverySettings()
        self._pins = pins or Pins(None)
        self._networks = None if networks is None else tuple(networks)
        self._reported = reported
        self._waiting = waiting
        self._probe = probe
        self._found: dict[str, Found] = {}
        self._identities: dict[str, str] = {}  # serial -> pinned fingerprint
        self._said: set[tuple[str, str, str]] = set()
        self._full = Condition(log)
        self._held = Condition(log, logging.INFO)  # usual for a moment after every start
        self._hold_timer: threading.Timer | None = None
        # Serials whose announcements are being weighed (each on a thread of its own), and the
        # latest announcement of each that came meanwhile.
        self._weighing: set[str] = set()
        self._next: dict[str, Found] = {}
        self._closed = False
        self._browser: ZeroconfBrowser | None = None

    def listen(self, browser: ZeroconfBrowser) -> None:
        self._browser = browser

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
        with self._lock:
            self._closed = True  # an announcement still being weighed applies nothing now
            self._end_hold()

    def configure(self, configured: Sequence[GatewaySettings], defaults: Mapping[str, Any]) -> None:
        """A new configuration (reload): the found gateways stay found."""
        with self._lock:
            self._configured, self._defaults = tuple(configured), dict(defaults)
            if not self._closed:
                self._apply_locked()

    def reconsider(self) -> None:
        """A configured gateway has told its serial: apply what that changes (nothing once
        closed: a collection finishing during shutdown must not refill the fleet)."""
        with self._lock:
            if not self._closed:
                self._apply_locked()

    def announce_later(self, gateway: Found) -> None:
        """From the browser, never waited for: each serial's announcements are weighed on a
        thread of their own, one at a time, the latest kept, so an address that is slow to show
        its certificate delays its own serial only. What the limits ignore starts no thread, and
        new serials being weighed count against ``max_gateways``: the threads stay bounded."""
        serial = gateway.serial
        with self._lock:
            if self._closed:
                return
            if serial in self._weighing:
                self._next[serial] = gateway
                return
            known = self._found.get(serial)
            if known == gateway or self._ignored(gateway, known, self._weighing_new()):
                return
            self._weighing.add(serial)
        threading.Thread(target=self._weigh, args=(gateway,), name="discovery", daemon=True).start()

    def _weigh(self, gateway: Found | None) -> None:
        while gateway is not None:
            try:
                self.announce(gateway)
            except Exception:  # one announcement never stops discovery
                log.exception("discovery: announcement of %s at %s failed", gateway.serial, gateway.address)
            with self._lock:
                serial = gateway.serial
                gateway = self._next.pop(serial, None)
                if gateway is None:
                    self._weighing.discard(serial)

    def _weighing_new(self) -> int:
        """Serials being weighed that would be new discovered gateways."""
        return sum(1 for s in self._weighing if s not in self._found and self._by_serial(s) is None)

    def announce(self, gateway: Found) -> None:
        """Weigh one announcement and apply what it changes. May probe the announced address's
        certificate (up to ``pins.PROBE_TIMEOUT_S``): called on the serial's thread, or by tests."""
        with self._lock:
            known = self._found.get(gateway.serial)
            if known == gateway or self._ignored(gateway, known):
                return
        print_ = self._proven(gateway, known)
        if print_ is False:
            return
        with self._lock:
            if self._closed or self._found.get(gateway.serial) != known:
                return  # closed, or another announcement was applied meanwhile: this one is stale
            if known is None and self._ignored(gateway, None):
                return  # the limits filled while its certificate was read
            if known is None:
                log.info("discovered gateway %s at %s", gateway.serial, gateway.host)
            else:
                log.info("gateway %s moved from %s to %s", gateway.serial, known.host, gateway.host)
            self._found[gateway.serial] = gateway
            if isinstance(print_, str):
                self._identities[gateway.serial] = print_
            self._apply_locked()

    def _ignored(self, gateway: Found, known: Found | None, weighing: int = 0) -> bool:
        """Whether an announcement is to be ignored before anything is asked of its address.
        ``weighing``: new serials being weighed, which count against the limit too."""
        serial = gateway.serial
        if self._networks is not None and not on_networks(gateway.address, self._networks):
            self._say_once(gateway, "outside", "is outside the networks browsed; ignored")
            return True
        if self._by_serial(serial) is not None:
            return False  # configured by serial alone: found, whatever the limits on the others
        if serial in self._owned():
            self._say_once(gateway, "owned", "is a configured gateway's serial; ignored")
            return True
        allowed = self._settings.serials
        if allowed and serial not in allowed:
            self._say_once(gateway, "not-allowed", "is not in discovery.serials; ignored")
            return True
        if known is None and self._discovered_count() + weighing >= self._settings.max_gateways:
            self._full.failed(
                "discovery: %d discovered gateways served already (discovery.max_gateways); "
                "announcements of more are ignored",
                self._settings.max_gateways,
            )
            return True
        return False

    def _proven(self, gateway: Found, known: Found | None) -> str | bool | None:
        """The fingerprint ``gateway``'s address shows, if it may be served there; None when it
        shows none and may (found for the first time); ``UNPROVEN`` when it moved and nothing
        could be compared; False when it may not (another certificate than the one pinned)."""
        serial = gateway.serial
        pinned = self._pins.get(serial)
        if pinned is None and known is not None:
            # Found before, never pinned: pin what the known address shows now, if anything.
            pinned = self._probe(known.address, known.tls_port)
            if pinned is not None:
                self._pins.put(serial, pinned, known.address)
        shown = self._probe(gateway.address, gateway.tls_port)
        if pinned is None:
            if known is None:
                if shown is not None:
                    self._pins.put(serial, shown, gateway.address)  # first found: trusted on first use
                return shown
            if shown is None:
                # Nothing to compare: followed, as a gateway before firmware 7 (no TLS) must be,
                # but held to plain http, which carries no token: the new address might speak
                # TLS to the gateway's client and not to this check.
                self._say_once(
                    gateway,
                    "unproven-move",
                    f"shows no certificate, nor does {known.host}: followed over plain http only, "
                    "without a token; if the gateway really moved there, restart the exporter",
                    level=logging.WARNING,
                )
                return UNPROVEN
        elif shown == pinned:
            return shown
        where = f" (kept at {known.host})" if known is not None else ""
        self._say_once(
            gateway,
            "unproven",
            f"does not show the certificate the gateway showed before{where}; if the gateway or "
            f"its certificate really changed, {_forget(self._pins.path(serial))}",
            level=logging.WARNING,
        )
        return False

    def _by_serial(self, serial: str) -> GatewaySettings | None:
        return next((g for g in self._configured if g.found_by_serial and g.serial == serial), None)

    def _owned(self) -> set[str]:
        serials = {g.serial for g in self._configured if g.serial and not g.found_by_serial}
        serials |= {g.label for g in self._configured}
        return serials | {s for s in self._reported().values() if s}

    def _discovered_count(self) -> int:
        return sum(1 for serial in self._found if self._by_serial(serial) is None)

    def _hold(self, host: str) -> None:
        """Discovered gateways wait for the configured one at ``host``: said at once (a start is
        like that for a moment), and warned once if it lasts ``HOLD_WARNING_S``."""
        self._held.failed(
            "discovery: discovered gateways wait until the configured gateway at %s answers /info "
            "(or give its serial in the configuration)",
            host,
        )
        if self._hold_timer is None:
            self._hold_timer = threading.Timer(HOLD_WARNING_S, self._still_held)
            self._hold_timer.daemon = True
            self._hold_timer.start()

    def _end_hold(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None

    def _still_held(self) -> None:
        with self._lock:
            if self._hold_timer is None:
                return
            unsettled = sorted(host for host, serial in self._reported().items() if serial is None)
            held = sum(1 for f in self._found.values() if self._by_serial(f.serial) is None)
        if unsettled and held:
            log.warning(
                "discovery: %d discovered gateway(s) are not served: the configured gateway at %s has "
                "not answered /info for %.0f s, and no discovered gateway is served before every "
                "configured one has told its serial; give it its serial in the configuration if it "
                "stays down",
                held,
                unsettled[0],
                HOLD_WARNING_S,
            )

    def _say_once(self, gateway: Found, what: str, text: str, level: int = logging.INFO) -> None:
        key = (gateway.serial, gateway.address, what)
        if key in self._said:
            return
        if len(self._said) >= _SAID_MAX:
            self._said.clear()
        self._said.add(key)
        log.log(level, "announcement of gateway %s at %s %s", gateway.serial, gateway.host, text.strip())

    def _apply_locked(self) -> None:
        # Under the lock, so two announcements cannot apply their merges out of order.
        reported = self._reported()
        unsettled = sorted(host for host, serial in reported.items() if serial is None)
        found = list(self._found.values())
        if unsettled:
            # No announcement may get in before a configured gateway has told its serial.
            held = [f for f in found if self._by_serial(f.serial) is None]
            if held:
                self._hold(unsettled[0])
            found = [f for f in found if self._by_serial(f.serial) is not None]
        else:
            self._end_hold()
            self._held.recovered("discovery: serving the discovered gateways")
        owned = {s for s in reported.values() if s}
        self._apply(merge(self._configured, found, self._defaults, owned, self._identities))
        if self._waiting is not None:
            self._waiting(
                [g.label for g in self._configured if g.found_by_serial and g.serial not in self._found]
            )


def _forget(pin: Path | None) -> str:
    """What a user does to forget a pin (it is held in memory until a restart)."""
    return "restart the exporter" if pin is None else f"delete {pin} and restart the exporter"


class ZeroconfBrowser:
    """Listens for ``_enphase-envoy._tcp`` and hands each usable announcement to ``announce``.

    Runs nothing slow on zeroconf's thread: an answer complete in the cache (a gateway's
    announcement carries its address, port and serial) is handed on at once; a name that needs
    asking is queued for the resolver threads."""

    def __init__(self, announce: Callable[[Found], None], interfaces: Sequence[str] = ()):
        # Imported here: only a configuration with discovery needs the mDNS stack.
        from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, Zeroconf

        self._announce = announce
        self._names: queue.Queue[str | None] = queue.Queue(_QUEUE_SIZE)
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._busy = Condition(log)
        # The resolutions under way, given up at ``close``; none starts once it is closing.
        self._requests: set[concurrent.futures.Future[bool]] = set()
        self._closing = False
        self._zeroconf = Zeroconf(
            interfaces=list(interfaces) or InterfaceChoice.All,
            ip_version=_ip_version(interfaces, IPVersion),
        )
        self._resolvers = [
            threading.Thread(target=self._resolve_loop, name=f"discovery-resolve-{n}", daemon=True)
            for n in range(_RESOLVERS)
        ]
        for thread in self._resolvers:
            thread.start()
        self._browser = ServiceBrowser(self._zeroconf, SERVICE_TYPE, handlers=[self._on_change])

    def _on_change(self, zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        try:
            self._handle(zeroconf, service_type, name, state_change)
        except Exception as exc:  # a hostile name must not stop the browser thread
            log.warning("discovery: ignoring the announcement %r: %s: %s", name, type(exc).__name__, exc)

    def _handle(self, zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        from zeroconf import ServiceInfo, ServiceStateChange

        if state_change is ServiceStateChange.Removed:
            # Kept at its last address: a gateway that reboots or drops off Wi-Fi is down, not gone.
            log.info("gateway announcement %r withdrawn; keeping it at its last address", name)
            return
        info = ServiceInfo(service_type, name)
        if info.load_from_cache(zeroconf):
            self._deliver(info, name)
            return
        with self._lock:
            if self._closing or name in self._pending:
                return
            try:
                self._names.put_nowait(name)
            except queue.Full:
                self._busy.failed(
                    "discovery: more than %d names waiting to be resolved; dropping some", _QUEUE_SIZE
                )
                return
            self._pending.add(name)
        self._busy.recovered("discovery: resolving names as they come again")

    def _resolve_loop(self) -> None:
        while (name := self._names.get()) is not None:
            try:
                info = self._resolve(name)
                if info is None:
                    log.debug("no answer resolving %r", name)
                else:
                    self._deliver(info, name)
            except concurrent.futures.CancelledError:
                log.debug("resolving %r given up: discovery is closing", name)
            except Exception as exc:
                log.warning("discovery: ignoring the announcement %r: %s: %s", name, type(exc).__name__, exc)
            finally:
                with self._lock:
                    self._pending.discard(name)

    def _resolve(self, name: str) -> Any | None:
        """``Zeroconf.get_service_info``, but a request ``close`` can give up: one left running
        when zeroconf's loop stops would hold this thread for its timeout and 10 s more, and then
        warn about the name long after discovery closed."""
        from zeroconf import ServiceInfo

        info = ServiceInfo(SERVICE_TYPE, name)
        with self._lock:
            if self._closing:
                return None
            request = asyncio.run_coroutine_threadsafe(
                info.async_request(self._zeroconf, _RESOLVE_TIMEOUT_MS), self._zeroconf.loop
            )
            self._requests.add(request)
        try:
            return info if request.result(_RESOLVE_TIMEOUT_MS / 1000 + _RESOLVE_GRACE_S) else None
        finally:
            request.cancel()  # after a timeout: the loop is not left running it
            with self._lock:
                self._requests.discard(request)

    def _deliver(self, info: Any, name: str) -> None:
        found = parse_announcement(info.properties, info.parsed_addresses(), info.port or 0)
        if found is None:
            log.debug("ignoring announcement %r: no usable serial or address", name)
            return
        self._announce(found)

    def close(self) -> None:
        """Gives up the resolutions under way and the names waiting for one, then closes
        zeroconf: no request is left on its loop when it stops."""
        with self._lock:
            self._closing = True
            for request in self._requests:
                request.cancel()
        self._browser.cancel()
        with contextlib.suppress(queue.Empty):
            while True:
                self._names.get_nowait()
        for _ in self._resolvers:
            self._names.put_nowait(None)
        for thread in self._resolvers:
            thread.join(_CLOSE_WAIT_S)
        self._zeroconf.close()


def _ip_version(interfaces: Sequence[str], versions: Any) -> Any:
    # IPv4 unless an IPv6 interface is asked for: gateways announce their IPv4 address anyway.
    if any(ipaddress.ip_address(a).version == 6 for a in interfaces):
        return versions.All
    return versions.V4Only
