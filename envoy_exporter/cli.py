"""The ``envoy-exporter`` command: flags in the style of Prometheus' own exporters.

Exit status: 0 after a clean shutdown (SIGTERM / SIGINT) or a passing ``--check-config``;
2 for a bad configuration or bad flags; 1 when the server cannot start.

SIGHUP and ``POST /-/reload`` re-read the configuration and the web configuration. Gateways
whose settings did not change keep their client, and with it their counters, token and cache. A
new configuration that does not load is refused, naming the key, and the old one keeps running.
"""

from __future__ import annotations

import argparse
import logging
import platform
import select
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from envoy_exporter import __version__
from envoy_exporter.config.check import offline_problems, state_dir_to_create
from envoy_exporter.config.load import ConfigError, load_config
from envoy_exporter.config.settings import GatewaySettings, Secret, Settings
from envoy_exporter.fleet.registry import Fleet
from envoy_exporter.freezer import Freezer
from envoy_exporter.logs import FORMATS, LEVELS, setup_logging
from envoy_exporter.malloc_arenas import limit_arenas
from envoy_exporter.web.server import (
    DEFAULT_TELEMETRY_PATH,
    ExporterServer,
    check_telemetry_path,
    make_server,
    make_systemd_server,
    parse_listen_address,
)
from envoy_exporter.web.webconfig import WebConfig, WebConfigError, load_web_config

if TYPE_CHECKING:
    from envoy_exporter.fleet.discovery import Discovery

log = logging.getLogger("envoy_exporter")

# 9433: the port Enphase Envoy exporters have used (see docs/metrics.md, "Port").
DEFAULT_LISTEN = ":9433"
DEMO_GATEWAY = "demo"


_SUBCOMMANDS = """\
subcommands:
  capture               record what a gateway answers, for a bug report or a test fixture
                        (envoy-exporter capture --help)

Without a gateway at hand: envoy-exporter --demo, then open http://localhost:9433/
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="envoy-exporter",
        usage="%(prog)s [flags]\n       %(prog)s capture [capture flags]",
        description="Prometheus exporter for Enphase Envoy / IQ Gateway solar gateways.",
        epilog=_SUBCOMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config.file", dest="config", default="exporter.yml", help="configuration file")
    p.add_argument(
        "--web.listen-address",
        dest="listen",
        default=DEFAULT_LISTEN,
        help="address to listen on: host:port, [ipv6]:port or :port for all interfaces",
    )
    p.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default=DEFAULT_TELEMETRY_PATH,
        help="path under which to expose the metrics of every gateway",
    )
    p.add_argument(
        "--web.config.file",
        dest="web_config",
        default=None,
        help="TLS and basic auth for this server, in the Prometheus exporter-toolkit format",
    )
    p.add_argument(
        "--web.systemd-socket",
        dest="systemd_socket",
        action="store_true",
        help="serve on the socket systemd passes (socket activation) instead of --web.listen-address",
    )
    p.add_argument("--log.level", dest="log_level", choices=list(LEVELS), default="info")
    p.add_argument("--log.format", dest="log_format", choices=list(FORMATS), default="logfmt")
    p.add_argument("--demo", action="store_true", help="serve a simulated gateway; no configuration needed")
    p.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["capture"]:
        from envoy_exporter.capture import main as capture  # a tool of its own; see docs/capture.md

        return capture(argv[1:])
    args = parser().parse_args(argv)
    if args.version:
        print(f"envoy-exporter {__version__} (Python {platform.python_version()})")
        return 0
    for flag, check, value in (
        ("--web.listen-address", parse_listen_address, args.listen),
        ("--web.telemetry-path", check_telemetry_path, args.telemetry_path),
    ):
        try:
            check(value)
        except ValueError as e:
            print(f"envoy-exporter: {flag}: {e}", file=sys.stderr)
            return 2
    setup_logging(args.log_level, args.log_format)
    with ExitStack() as cleanup:
        try:
            settings = _demo_settings(cleanup) if args.demo else load_config(Path(args.config))
        except ConfigError as e:
            print(f"envoy-exporter: configuration error: {e}", file=sys.stderr)
            if not args.demo and not Path(args.config).exists():
                print(_NO_CONFIG, file=sys.stderr)
            return 2
        for notice in settings.notices:
            log.warning("configuration notice: %s", notice)
        try:
            web_config = load_web_config(Path(args.web_config)) if args.web_config else WebConfig()
        except WebConfigError as e:
            print(f"envoy-exporter: web configuration error: {e}", file=sys.stderr)
            return 2
        if args.check_config:
            return _check_config(args, settings)
        for problem in offline_problems(settings):
            # The key last: "token: <message>" would read as a secret to the log redaction.
            log.warning("configuration problem: %s (%s)", problem.message, problem.key)
        limit_arenas()  # before the worker threads start
        stop = threading.Event()
        _on_signals(stop.set)
        return serve(settings, args.listen, stop, args=args, web_config=web_config)


_NO_CONFIG = (
    "envoy-exporter: give the configuration with --config.file PATH (exporter.yml in the sources is a\n"
    "commented example), or try the exporter without any gateway: envoy-exporter --demo"
)


def _check_config(args: argparse.Namespace, settings: Settings) -> int:
    """The deep check: also what would fail only later (tokens, state_dir), offline."""
    problems = offline_problems(settings)
    for problem in problems:
        print(f"envoy-exporter: configuration error: {problem}", file=sys.stderr)
    if problems:
        return 2
    discovery = ", and zeroconf discovery" if settings.discovery.zeroconf else ""
    print(f"{args.config}: OK, {len(settings.gateways)} gateway(s){discovery}")
    to_create = state_dir_to_create(settings)
    if to_create is not None:
        print(f"state_dir {to_create} does not exist yet; the exporter will create it")
    if args.web_config:
        print(f"{args.web_config}: OK")
    return 0


def _demo_settings(cleanup: ExitStack) -> Settings:
    # Imported here: the simulator is needed by --demo only.
    from envoy_exporter.demo import start_demo

    demo = start_demo()
    cleanup.callback(demo.stop)
    return Settings(gateways=(GatewaySettings(name=DEMO_GATEWAY, host=demo.url, token=Secret(demo.token)),))


def serve(
    settings: Settings,
    listen: str,
    stop: threading.Event,
    *,
    args: argparse.Namespace | None = None,
    web_config: WebConfig | None = None,
) -> int:
    """Runs the server until ``stop`` is set; returns the exit status."""
    # Imported when serving only: validating a configuration needs none of the client stack.
    from envoy_exporter.fleet.labels import Labels
    from envoy_exporter.gateway.auth.accounts import EnlightenAccounts
    from envoy_exporter.gateway.auth.serial_claims import SerialClaims
    from envoy_exporter.gateway.client import GatewayClient
    from envoy_exporter.gateway.workers import WorkerPool

    # Shared by every client, across reloads too: labels, one login per Enlighten account, and
    # which gateway may hold the tokens of a serial.
    labels, accounts, claims = Labels(), EnlightenAccounts(), SerialClaims()
    workers = WorkerPool()  # every gateway's collections, on a bounded number of threads
    freezer = Freezer()  # keeps the garbage collector's full passes short
    discovery: Discovery | None = None

    def serial_told() -> None:
        if discovery is not None:
            discovery.reconsider()

    def make_client(gateway: GatewaySettings) -> GatewayClient:
        return GatewayClient(
            gateway,
            settings.state_dir,
            labels=labels,
            accounts=accounts,
            claims=claims,
            on_serial=serial_told,
            workers=workers,
        )

    def reported() -> dict[str, str | None]:
        """Host -> the serial its /info reported, for the configured gateways whose serial is
        not configured: discovery leaves those serials to them."""
        return {s.host: c.serial for s, c in fleet.gateways() if not s.discovered and not s.serial}

    # Configured entries named by serial alone join the fleet when discovery finds them.
    fleet = Fleet([g for g in settings.gateways if not g.found_by_serial], make_client, closed=freezer.sweep)
    try:
        options = {
            "telemetry_path": args.telemetry_path if args else DEFAULT_TELEMETRY_PATH,
            "web_config": web_config,
            "on_request": freezer.busy,  # a request makes objects: the freezer's next pass
        }
        try:
            if args is not None and args.systemd_socket:
                server = make_systemd_server(fleet, **options)
            else:
                server = make_server(listen, fleet, **options)
        except OSError as e:
            where = "the systemd socket" if args is not None and args.systemd_socket else listen
            log.error("cannot listen on %s: %s", where, e)
            return 1
        if settings.discovery.zeroconf:
            # Imported here: a fleet without discovery starts without its code.
            from envoy_exporter.fleet.discovery import start_discovery

            # Found gateways join the fleet.
            discovery = start_discovery(settings, fleet.apply, reported=reported, waiting=fleet.wait_for)
        if args is not None:
            server.reload = _demo_reload if args.demo else Reloader(args, settings, fleet, server, discovery)
            _on_reload_signal(server.reload)
        thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        thread.start()
        # The first scrape after a start finds data, or a collection well under way; the
        # start-up's collections read the live series first (see ``GatewayClient.start``).
        # Not kept here: each future holds its gateway's first snapshot, and this frame lasts.
        freezer.settle()
        freezer.start([client.start(first=True) for client in fleet.clients()])
        server.ready.set()
        log.info(
            "listening on %s for %d gateway(s), version %s", server.url, len(fleet.clients()), __version__
        )
        # From main(), only a signal's handler sets ``stop``; a caller of its own may set it anywhere.
        _wait_for(stop, signals_only=args is not None)
        log.info("shutting down")
        server.shutdown()
        server.server_close()
        return 0
    finally:
        if discovery is not None:
            discovery.close()  # first: no announcement may re-populate the fleet being closed
        fleet.apply(())  # closes every client
        freezer.close()


class Reloader:
    """Re-reads both configuration files; applies them only when both load."""

    def __init__(
        self,
        args: argparse.Namespace,
        settings: Settings,
        fleet: Fleet,
        server: ExporterServer,
        discovery: Discovery | None = None,
    ):
        self._args = args
        self._state_dir = settings.state_dir
        self._discovery_settings = settings.discovery
        self._discovery = discovery  # with it, the fleet is configured + found gateways
        self._fleet = fleet
        self._server = server
        self._lock = threading.Lock()  # a SIGHUP and a POST /-/reload together: one after the other

    def __call__(self) -> None:
        """Raises ``ConfigError`` or ``WebConfigError`` naming the key; nothing changes then."""
        with self._lock:
            try:
                self._reload()
            except (ConfigError, WebConfigError) as e:
                log.error("reload refused, the running configuration stays: %s", e)
                raise
            except Exception:
                log.exception("reload failed, the running configuration stays")
                raise

    def _reload(self) -> None:
        settings = load_config(Path(self._args.config))
        if settings.state_dir != self._state_dir:
            raise ConfigError("state_dir", "cannot change while running; restart the exporter")
        if settings.discovery != self._discovery_settings:
            raise ConfigError("discovery", "cannot change while running; restart the exporter")
        path = self._args.web_config
        web_config = load_web_config(Path(path)) if path else WebConfig()
        before = {gateway.label for gateway in self._fleet.settings()}
        running = {id(client) for client in self._fleet.clients()}
        if self._discovery is not None:
            self._discovery.configure(settings.gateways, settings.defaults)  # found ones stay
        else:
            self._fleet.apply(settings.gateways)
        self._server.web_config = web_config
        for client in self._fleet.clients():
            if id(client) not in running:
                client.start(first=True)  # a new or changed gateway: its first collection now
        after = {gateway.label for gateway in settings.gateways}
        log.info(
            "configuration reloaded: %d gateway(s), %d added, %d removed",
            len(settings.gateways),
            len(after - before),
            len(before - after),
        )


# How often a wait for ``stop`` that a signal is not alone to set looks again on its own (``_wait_for``).
_IDLE_WAIT_S = 0.5


def _wait_for(stop: threading.Event, signals_only: bool = False) -> None:
    """Returns once ``stop`` is set. Python runs signal handlers on the main thread only, and
    only between bytecodes; the kernel may hand SIGHUP or SIGTERM to another thread, which does
    not wake a main thread blocked in a lock. So on the main thread the wait is on the signal
    wakeup descriptor, which any thread's signal writes to. With ``signals_only`` (only a
    signal's handler sets ``stop``, and it has run once the wait returns) it has no timeout: no
    wake-up while nothing happens. Otherwise another thread may set ``stop`` (an embedding, a
    test), which wakes nothing: a timed wait comes round to it."""
    if threading.current_thread() is not threading.main_thread():
        while not stop.wait(timeout=_IDLE_WAIT_S):
            pass
        return
    timeout = None if signals_only else _IDLE_WAIT_S
    woken, waker = socket.socketpair()
    with woken, waker:
        woken.setblocking(False)
        waker.setblocking(False)
        previous = signal.set_wakeup_fd(waker.fileno(), warn_on_full_buffer=False)
        try:
            while not stop.is_set():
                # The handlers of the signals that came have run once this returns.
                select.select([woken], [], [], timeout)
                with suppress(BlockingIOError):
                    woken.recv(64)
        finally:
            signal.set_wakeup_fd(previous)


def _on_signals(handler: Callable[[], None]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: handler())


def _demo_reload() -> None:
    log.info("demo mode: no configuration to reload")


def _on_reload_signal(reload: Callable[[], None]) -> None:
    """SIGHUP reloads on a thread of its own: a handler must not block the main thread."""

    def on_hup(_signum, _frame) -> None:
        threading.Thread(target=_quietly, args=(reload,), name="reload", daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, on_hup)


def _quietly(reload: Callable[[], None]) -> None:
    with suppress(Exception):  # the reloader logged why already
        reload()
