"""The HTTP server: /metrics, /probe?target=, /sd, /, /-/healthy, /-/ready.

A ``ThreadingHTTPServer`` with daemon threads: each connection has its own thread, so a client
that connects and stays silent holds only its own thread, and only until the socket timeout drops
it. (``prometheus_client.start_http_server`` is not used: a client stalling there can freeze it.)
Every scrape builds a registry of its own, so concurrent scrapes never share state and nothing is
registered in the library's global default registry.
"""

from __future__ import annotations

import gzip
import html
import json
import logging
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from .collector import ExporterCollector, GatewayCollector, scrape_timeout
from .fleet import Fleet
from .http_sd import SDGateway, exporter_address, target_groups

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 30.0  # seconds a connection may stay silent before it is dropped
_MAX_TARGET_ECHO = 80  # characters of an unknown target quoted back in the 400 answer


class ExporterServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck connection must not keep the process alive at shutdown
    # socketserver's default backlog of 5 drops connections when a Prometheus HA pair, Grafana and
    # a few /probe targets arrive together; dropped SYNs come back only after a 1 s retransmit.
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], fleet: Fleet, family: socket.AddressFamily = socket.AF_INET):
        self.address_family = family
        self.fleet = fleet
        self.ready = threading.Event()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            # Dual stack where the host allows it, so ":9433" also answers on IPv4.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def handle_error(self, request, client_address) -> None:
        # Clients hanging up mid-answer are routine; keep them out of stderr tracebacks.
        log.debug("connection from %s failed", client_address[0], exc_info=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def parse_listen_address(value: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (all interfaces) to (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{value!r}: write an IPv6 address in brackets, [::1]:port")
    return host, int(port)


def make_server(listen: str, fleet: Fleet) -> ExporterServer:
    host, port = parse_listen_address(listen)
    if not host:
        if socket.has_dualstack_ipv6():
            return ExporterServer(("::", port), fleet, socket.AF_INET6)
        return ExporterServer(("0.0.0.0", port), fleet)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return ExporterServer((host, port), fleet, family)


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    timeout = IDLE_TIMEOUT  # socket timeout per connection: idle clients are dropped
    server_version = "envoy-exporter"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        route = _ROUTES.get(path)
        if route is None:
            self._text(HTTPStatus.NOT_FOUND, "Not found\n")
            return
        try:
            route(self)
        except Exception:
            log.exception("answering %s failed", path)
            self._text(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal error\n")

    def _metrics(self) -> None:
        fleet = self.server.fleet
        registry = CollectorRegistry(auto_describe=False)
        registry.register(GatewayCollector(fleet.clients(), self._timeout()))
        registry.register(ExporterCollector())
        self._exposition(registry)

    def _probe(self) -> None:
        targets = parse_qs(urlsplit(self.path).query).get("target", [])
        target = targets[0] if targets else ""
        if not target:
            self._text(HTTPStatus.BAD_REQUEST, "Missing target parameter: /probe?target=NAME\n")
            return
        # Only configured gateways: credentials never travel to an address given in a URL.
        client = self.server.fleet.find(target)
        if client is None:
            shown = target[:_MAX_TARGET_ECHO]
            self._text(HTTPStatus.BAD_REQUEST, f"Unknown target {shown!r}: not a configured gateway\n")
            return
        registry = CollectorRegistry(auto_describe=False)
        registry.register(GatewayCollector([client], self._timeout()))
        self._exposition(registry)

    def _landing(self) -> None:
        probes = "".join(_probe_link(client.name) for client in self.server.fleet.clients())
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Enphase exporter</title></head>"
            "<body><h1>Enphase gateway exporter</h1><ul>"
            '<li><a href="/metrics">/metrics</a>: every gateway</li>'
            f"{probes}"
            '<li><a href="/-/healthy">/-/healthy</a></li><li><a href="/-/ready">/-/ready</a></li>'
            "</ul></body></html>\n"
        )
        self._send(HTTPStatus.OK, "text/html; charset=utf-8", page.encode())

    def _sd(self) -> None:
        gateways = [
            SDGateway(client.name, settings.serial) for settings, client in self.server.fleet.gateways()
        ]
        address = exporter_address(self.headers.get("Host"), self.server.url.split("://", 1)[1])
        body = json.dumps(target_groups(gateways, address)).encode()
        self._send(HTTPStatus.OK, "application/json", body)

    def _healthy(self) -> None:
        self._text(HTTPStatus.OK, "OK\n")

    def _ready(self) -> None:
        if self.server.ready.is_set():
            self._text(HTTPStatus.OK, "OK\n")
        else:
            self._text(HTTPStatus.SERVICE_UNAVAILABLE, "Not ready\n")

    def _timeout(self) -> float:
        return scrape_timeout(self.headers.get("X-Prometheus-Scrape-Timeout-Seconds"))

    def _exposition(self, registry: CollectorRegistry) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept"))
        self._send(HTTPStatus.OK, content_type, encoder(registry))

    def _text(self, status: HTTPStatus, text: str) -> None:
        self._send(status, "text/plain; charset=utf-8", text.encode())

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        gzipped = "gzip" in self.headers.get("Accept-Encoding", "") and len(body) > 1024
        if gzipped:
            body = gzip.compress(body, compresslevel=6)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _probe_link(name: str) -> str:
    href = f"/probe?target={quote(name, safe='')}"
    return f'<li><a href="{html.escape(href)}">/probe?target={html.escape(name)}</a></li>'


_ROUTES: dict[str, Callable[[_Handler], None]] = {
    "/metrics": _Handler._metrics,
    "/probe": _Handler._probe,
    "/": _Handler._landing,
    "/sd": _Handler._sd,
    "/-/healthy": _Handler._healthy,
    "/-/ready": _Handler._ready,
}
