"""The ``envoy-exporter`` command: flags in the style of Prometheus' own exporters.

Exit status: 0 after a clean shutdown (SIGTERM / SIGINT) or a passing ``--check-config``;
2 for a bad configuration or bad flags; 1 when the server cannot start.
"""

from __future__ import annotations

import argparse
import logging
import platform
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

from . import __version__
from .config import ConfigError, load_config
from .fleet import Fleet
from .logs import FORMATS, LEVELS, setup_logging
from .settings import GatewaySettings, Secret, Settings
from .web import make_server, parse_listen_address

log = logging.getLogger("envoy_exporter")

# 9433: the port Enphase Envoy exporters have used (see docs/metrics.md, "Port").
DEFAULT_LISTEN = ":9433"
DEMO_GATEWAY = "demo"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="envoy-exporter",
        description="Prometheus exporter for Enphase Envoy / IQ Gateway solar gateways.",
    )
    p.add_argument("--config.file", dest="config", default="exporter.yml", help="configuration file")
    p.add_argument(
        "--web.listen-address",
        dest="listen",
        default=DEFAULT_LISTEN,
        help="address to listen on: host:port, [ipv6]:port or :port for all interfaces",
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
        from .capture import main as capture  # a tool of its own; see docs/capture.md

        return capture(argv[1:])
    args = parser().parse_args(argv)
    if args.version:
        print(f"envoy-exporter {__version__} (Python {platform.python_version()})")
        return 0
    try:
        parse_listen_address(args.listen)
    except ValueError as e:
        print(f"envoy-exporter: --web.listen-address: {e}", file=sys.stderr)
        return 2
    setup_logging(args.log_level, args.log_format)
    with ExitStack() as cleanup:
        try:
            settings = _demo_settings(cleanup) if args.demo else load_config(Path(args.config))
        except ConfigError as e:
            print(f"envoy-exporter: configuration error: {e}", file=sys.stderr)
            return 2
        if args.check_config:
            print(f"{args.config}: OK, {len(settings.gateways)} gateway(s)")
            return 0
        stop = threading.Event()
        _on_signals(stop.set)
        return serve(settings, args.listen, stop)


def _demo_settings(cleanup: ExitStack) -> Settings:
    # Imported here: the simulator is needed by --demo only.
    from .demo import start_demo

    demo = start_demo()
    cleanup.callback(demo.stop)
    return Settings(gateways=(GatewaySettings(name=DEMO_GATEWAY, host=demo.url, token=Secret(demo.token)),))


def serve(settings: Settings, listen: str, stop: threading.Event) -> int:
    """Runs the server until ``stop`` is set; returns the exit status."""
    # Imported when serving only: validating a configuration needs none of the client stack.
    from .gateway.client import GatewayClient
    from .gateway.labels import Labels

    labels = Labels()
    fleet = Fleet(
        settings.gateways, lambda gateway: GatewayClient(gateway, settings.state_dir, labels=labels)
    )
    try:
        try:
            server = make_server(listen, fleet)
        except OSError as e:
            log.error("cannot listen on %s: %s", listen, e)
            return 1
        thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        thread.start()
        for client in fleet.clients():
            # The first scrape after a start finds data, or a collection well under way.
            client.start()
        server.ready.set()
        log.info(
            "listening on %s for %d gateway(s), version %s", server.url, len(fleet.clients()), __version__
        )
        stop.wait()
        log.info("shutting down")
        server.shutdown()
        server.server_close()
        return 0
    finally:
        fleet.apply(())  # closes every client


def _on_signals(handler: Callable[[], None]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: handler())
