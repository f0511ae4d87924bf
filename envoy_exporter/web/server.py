"""The HTTP server: /metrics, /probe?target=, /sd, /, /-/healthy, /-/ready, /-/reload.

A ``ThreadingHTTPServer`` with daemon threads: each connection has its own thread, so a client
that connects and stays silent holds only its own thread, and only until the socket timeout drops
it. (``prometheus_client.start_http_server`` is not used: a client stalling there can freeze it.)
Every scrape renders its own exposition (nothing is registered in the library's global default
registry); what scrapes share is each gateway's data, rendered once per snapshot
(``exposition.SnapshotCache``).

It speaks HTTP/1.1 with keep-alive, as Prometheus expects, and answers ``HEAD`` wherever it
answers ``GET``. Routes build a ``Response``; only ``_Handler._write`` touches the socket, so a
client that hangs up mid-answer is a debug line and never an error. With ``--web.config.file``
(see ``webconfig``) it serves TLS, optionally asks for client certificates, and checks basic
auth on every path.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import selectors
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

from prometheus_client import ProcessCollector
from prometheus_client.registry import Collector

from envoy_exporter.collector import ExporterCollector, GatewayCollector, Lateness, scrape_timeout
from envoy_exporter.collector.exposition import SnapshotCache, negotiate
from envoy_exporter.fleet.registry import Fleet
from envoy_exporter.gateway.net.answer import with_cheap_headers
from envoy_exporter.web.http_sd import SDGateway, exporter_address, target_groups
from envoy_exporter.web.webconfig import Verdict, WebConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

IDLE_TIMEOUT = 30.0  # seconds a connection may stay silent (mid-request or between requests)
_MAX_TARGET_ECHO = 80  # characters of an unknown target quoted back in the 400 answer
_MAX_REQUEST_BODY = 64 * 1024  # no route reads a body; one is drained only to keep the connection
DEFAULT_TELEMETRY_PATH = "/metrics"
# A client hanging up (reset, broken pipe, half-close then close) or stalling past the socket
# timeout while we write: routine for scrapers, nothing the operator can act on.
_CLIENT_GONE = (ConnectionError, TimeoutError, ssl.SSLError)
_ONE_WRITE_MAX = 256 * 1024  # bytes of body written with the headers in one send
_CHALLENGE = (("WWW-Authenticate", 'Basic realm="envoy-exporter"'),)
_RETRY = (("Retry-After", "1"),)
# A scraper asks the same way every time (Prometheus sends one URL and the same headers to a
# target on each scrape), so what is worked out from a short query or header is kept; bounded
# in number and in length, since it comes from the network.
_MEMO_ENTRIES = 64
_MEMO_LENGTH = 256


def _memo(function: Callable[[str], T]) -> Callable[[str | None], T]:
    """``function`` of a header or query, worked out once per text (for a short text)."""
    kept = lru_cache(maxsize=_MEMO_ENTRIES)(function)

    def call(text: str | None) -> T:
        text = text or ""
        return kept(text) if len(text) <= _MEMO_LENGTH else function(text)

    return call


def _target(query: str) -> str:
    """The first ``target`` of a query string, "" without one."""
    targets = parse_qs(query).get("target", [])
    return targets[0] if targets else ""


_content_type = _memo(negotiate)
_scrape_timeout = _memo(scrape_timeout)
_probe_target = _memo(_target)


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def text(status: HTTPStatus, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, message.encode(), headers=headers)


@dataclass(frozen=True)
class Route:
    handler: Callable[[_Handler], Response]
    methods: frozenset[str] = field(default=frozenset({"GET", "HEAD"}))


class ExporterServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck connection must not keep the process alive at shutdown
    # socketserver's default backlog of 5 drops connections when a Prometheus HA pair, Grafana and
    # a few /probe targets arrive together; dropped SYNs come back only after a 1 s retransmit.
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        fleet: Fleet,
        family: socket.AddressFamily = socket.AF_INET,
        *,
        telemetry_path: str = DEFAULT_TELEMETRY_PATH,
        web_config: WebConfig | None = None,
        reload: Callable[[], None] | None = None,
        inherited: socket.socket | None = None,
        on_request: Callable[[], None] = lambda: None,
    ):
        self.address_family = family
        self.fleet = fleet
        self.late = Lateness()  # which gateways' collections outlast the scrapes, told once
        self.ready = threading.Event()
        self.web_config = web_config or WebConfig()
        self.telemetry_path = telemetry_path
        self.reload = reload
        self.on_request = on_request  # told of every request, before it is answered
        self.routes = routes(telemetry_path)
        self.date: tuple[int, str] = (0, "")  # the Date header of the current second
        # Made once: it reads /proc at each scrape and keeps nothing else.
        self.process_collector = ProcessCollector(registry=None)
        # ``serve_forever`` sleeps until a connection comes, ``shutdown`` writes here, or a
        # rendering kept for other scrapes is due to be dropped.
        self._woken, self._waker = socket.socketpair()
        self._woken.setblocking(False)
        self._waker.setblocking(False)
        # Each gateway's data series, rendered once per snapshot.
        self.rendered = SnapshotCache(wake=self._wake)
        self._stopping = False
        self._stopped = threading.Event()
        super().__init__(address, _Handler, bind_and_activate=inherited is None)
        if inherited is not None:
            # systemd socket activation: the socket is bound and listening already.
            self.socket.close()
            self.socket = inherited
            self.server_address = inherited.getsockname()

    def serve_forever(self, poll_interval: float | None = None) -> None:
        """socketserver's loop, asleep until a connection comes or ``shutdown`` wakes it:
        socketserver's looks for a shutdown every ``poll_interval`` (half a second by default),
        a wake-up that an idle exporter pays for all day. ``poll_interval`` is not used. While
        renderings are kept for other scrapes, it wakes when the next is due, so that they go on
        time also when the scrapes stop."""
        self._stopped.clear()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self, selectors.EVENT_READ)
                selector.register(self._woken, selectors.EVENT_READ)
                while not self._stopping:
                    for key, _ in selector.select(self.rendered.sweep()):
                        if key.fileobj is self._woken:
                            with contextlib.suppress(BlockingIOError):
                                self._woken.recv(64)
                        elif not self._stopping:
                            self._handle_request_noblock()
                    self.service_actions()
        finally:
            self._stopping = False
            self._stopped.set()

    def shutdown(self) -> None:
        """Stops ``serve_forever`` (running on another thread) and waits until it has."""
        self._stopping = True
        self._wake()
        self._stopped.wait()

    def _wake(self) -> None:
        # A full buffer already holds a wake-up; a closed pair has no loop to wake.
        with contextlib.suppress(OSError):
            self._waker.send(b"\0")

    def server_close(self) -> None:
        super().server_close()
        self._woken.close()
        self._waker.close()

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            # Dual stack where the host allows it, so ":9433" also answers on IPv4.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def finish_request(self, request, client_address) -> None:
        context = self.web_config.tls
        if context is None:
            super().finish_request(request, client_address)
            return
        # The handshake runs here, on the connection's own thread: a client that stalls in it
        # holds only that thread, and only until the idle timeout.
        request.settimeout(IDLE_TIMEOUT)
        try:
            tls = context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as e:
            log.debug("TLS handshake with %s failed: %s", client_address[0], e)
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()

    def handle_error(self, request, client_address) -> None:
        # Clients hanging up mid-request are routine; keep them out of stderr tracebacks.
        error = sys.exc_info()[1]
        if isinstance(error, _CLIENT_GONE):  # a reset while waiting for the next request
            log.debug("%s went away: %s", client_address[0], error)
            return
        log.debug("connection from %s failed", client_address[0], exc_info=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        scheme = "https" if self.web_config.tls is not None else "http"
        return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"


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


def check_telemetry_path(path: str) -> str:
    if not path.startswith("/") or "?" in path or "#" in path:
        raise ValueError(f"{path!r} must be a path starting with /")
    if path in routes(DEFAULT_TELEMETRY_PATH) and path != DEFAULT_TELEMETRY_PATH:
        raise ValueError(f"{path!r} is taken by another page of the exporter")
    return path


def make_server(listen: str, fleet: Fleet, **options) -> ExporterServer:
    """The server for ``--web.listen-address``; ``options`` go to ``ExporterServer``."""
    host, port = parse_listen_address(listen)
    if not host:
        if socket.has_dualstack_ipv6():
            return ExporterServer(("::", port), fleet, socket.AF_INET6, **options)
        return ExporterServer(("0.0.0.0", port), fleet, **options)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return ExporterServer((host, port), fleet, family, **options)


def systemd_socket() -> socket.socket:
    """The one listening socket systemd passed (``LISTEN_FDS``, sd_listen_fds(3)), as fd 3."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        raise OSError("no socket from systemd: LISTEN_PID / LISTEN_FDS do not name one for this process")
    sock = socket.socket(fileno=3)
    if sock.type != socket.SOCK_STREAM:
        raise OSError("the socket from systemd is not a stream socket")
    # Not for the children we never start, but sd_listen_fds does it too.
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return sock


def make_systemd_server(fleet: Fleet, **options) -> ExporterServer:
    sock = systemd_socket()
    return ExporterServer(sock.getsockname()[:2], fleet, sock.family, inherited=sock, **options)


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    timeout = IDLE_TIMEOUT  # socket timeout per connection: idle clients are dropped
    # Our answers go out in one write (``_write``), but the stdlib's error pages write the
    # headers and the body apart: with Nagle's algorithm on, such a body waits for the client's
    # delayed ACK of the headers (up to 40 ms on Linux).
    disable_nagle_algorithm = True
    server_version = "envoy-exporter"
    # Keep-alive: Prometheus reuses its connection from one scrape to the next. Every answer
    # carries a Content-Length, so the connection stays usable.
    protocol_version = "HTTP/1.1"

    # The request's header block read without the email package's feed parser, a large part
    # of what answering a scrape costs (see ``gateway.net.answer.parse_headers``).
    parse_request = with_cheap_headers(BaseHTTPRequestHandler.parse_request)

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_POST = do_PUT = do_GET

    def _serve(self) -> None:
        self.server.on_request()
        response = self._drain_body() or self._respond()
        self._write(response)

    def _respond(self) -> Response:
        verdict = self.server.web_config.check(self.headers.get("Authorization"))
        if verdict is Verdict.BUSY:
            return text(HTTPStatus.TOO_MANY_REQUESTS, "Too many password checks; retry\n", _RETRY)
        if verdict is Verdict.DENIED:
            return text(HTTPStatus.UNAUTHORIZED, "Unauthorized\n", _CHALLENGE)
        path = urlsplit(self.path).path
        route = self.server.routes.get(path)
        if route is None:
            return text(HTTPStatus.NOT_FOUND, "Not found\n")
        if self.command not in route.methods:
            allow = ", ".join(sorted(route.methods))
            return text(HTTPStatus.METHOD_NOT_ALLOWED, f"Use {allow}\n", (("Allow", allow),))
        try:
            return route.handler(self)
        except Exception:
            log.exception("answering %s failed", path)
            return text(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal error\n")

    def _drain_body(self) -> Response | None:
        """Reads and drops a request body, so the next request on the connection parses."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # not worth decoding chunks no route reads
            return None
        length = self.headers.get("Content-Length")
        if not length:
            return None
        if not length.isdigit():
            self.close_connection = True
            return text(HTTPStatus.BAD_REQUEST, "Bad Content-Length\n")
        if int(length) > _MAX_REQUEST_BODY:
            self.close_connection = True
            return text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request body too large\n")
        self.rfile.read(int(length))
        return None

    def _metrics(self) -> Response:
        scrape = GatewayCollector(self.server.fleet.clients(), self._timeout(), late=self.server.late)
        return self._exposition(scrape, ExporterCollector(), self.server.process_collector)

    def _probe(self) -> Response:
        target = _probe_target(urlsplit(self.path).query)
        if not target:
            return text(HTTPStatus.BAD_REQUEST, "Missing target parameter: /probe?target=NAME\n")
        # Only configured gateways: credentials never travel to an address given in a URL.
        client = self.server.fleet.find(target)
        if client is None and self.server.fleet.waiting(target):
            return text(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"Gateway {target!r} is configured by serial and not found on the network yet\n",
            )
        if client is None:
            shown = target[:_MAX_TARGET_ECHO]
            return text(HTTPStatus.BAD_REQUEST, f"Unknown target {shown!r}: not a configured gateway\n")
        return self._exposition(GatewayCollector([client], self._timeout(), late=self.server.late))

    def _landing(self) -> Response:
        # Imported on the first visit: a start-up does not wait for the pages' code.
        from envoy_exporter.web.landing import render_landing
        from envoy_exporter.web.status import fleet_status

        now = time.time()
        page = render_landing(fleet_status(self.server.fleet, now), self.server.telemetry_path, now)
        return Response(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")

    def _capture(self) -> Response:
        from envoy_exporter.web.landing import capture_help  # see ``_landing``

        targets = parse_qs(urlsplit(self.path).query).get("target", [])
        client = self.server.fleet.find(targets[0]) if targets else None
        return text(HTTPStatus.OK, capture_help(client.name if client else None))

    def _sd(self) -> Response:
        gateways = [
            SDGateway(client.name, settings.serial or _reported_serial(client))
            for settings, client in self.server.fleet.gateways()
        ]
        scheme, _, listening = self.server.url.partition("://")
        groups = target_groups(gateways, exporter_address(self.headers.get("Host"), listening), scheme)
        return Response(HTTPStatus.OK, json.dumps(groups).encode(), "application/json")

    def _healthy(self) -> Response:
        return text(HTTPStatus.OK, "OK\n")

    def _ready(self) -> Response:
        if self.server.ready.is_set():
            return text(HTTPStatus.OK, "OK\n")
        return text(HTTPStatus.SERVICE_UNAVAILABLE, "Not ready\n")

    def _reload(self) -> Response:
        if self.server.reload is None:
            return text(HTTPStatus.OK, "Nothing to reload\n")
        try:
            self.server.reload()
        except Exception as e:  # the reload says why; the old configuration keeps running
            return text(HTTPStatus.INTERNAL_SERVER_ERROR, f"Reload failed: {e}\n")
        return text(HTTPStatus.OK, "OK\n")

    def _timeout(self) -> float:
        return _scrape_timeout(self.headers.get("X-Prometheus-Scrape-Timeout-Seconds"))

    def _exposition(self, scrape: GatewayCollector, *own: Collector) -> Response:
        content_type = _content_type(self.headers.get("Accept"))
        return Response(HTTPStatus.OK, scrape.expose(content_type, self.server.rendered, own), content_type)

    def _write(self, response: Response) -> None:
        body = response.body
        gzipped = "gzip" in self.headers.get("Accept-Encoding", "") and len(body) > 1024
        if gzipped:
            # Level 1: an exposition shrinks about as much as at the default level 6 (its lines
            # repeat), for a third of the CPU, on every scrape.
            body = gzip.compress(body, compresslevel=1)
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(body)))
            if gzipped:
                self.send_header("Content-Encoding", "gzip")
            for name, value in (*self.server.web_config.headers, *response.headers):
                self.send_header(name, value)
            if self.request_version == "HTTP/0.9":  # no status line, no headers: the body alone
                self.wfile.write(body)
                return
            # end_headers, with a short body in the same write: one send, one packet, not two.
            # A long one (a fleet's exposition, megabytes) goes out by itself: joined to the
            # headers it would be copied, and held twice at the peak.
            self._headers_buffer.append(b"\r\n")
            if self.command == "HEAD":
                self.flush_headers()
            elif len(body) <= _ONE_WRITE_MAX:
                self._headers_buffer.append(body)
                self.flush_headers()
            else:
                self.flush_headers()
                self.wfile.write(body)
        except _CLIENT_GONE as e:
            log.debug("%s went away before the answer was sent: %s", self.address_string(), e)
            self.close_connection = True

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header, formatted once per second (the stdlib formats it for every answer)."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        second = int(time.time())
        kept = self.server.date
        if kept[0] != second:
            kept = self.server.date = (second, super().date_time_string(second))
        return kept[1]

    def log_message(self, format: str, *args) -> None:
        if log.isEnabledFor(logging.DEBUG):  # called for every answer: formatted only when shown
            log.debug("%s %s", self.address_string(), format % args)


def _reported_serial(client) -> str | None:
    """The serial the gateway's /info reported, from its latest collection (asks nobody)."""
    info = client.latest().snapshot.info
    return info.serial if info is not None else None


def routes(telemetry_path: str) -> dict[str, Route]:
    """Every page of the exporter. A new page is one line here."""
    return {
        telemetry_path: Route(_Handler._metrics),
        "/probe": Route(_Handler._probe),
        "/": Route(_Handler._landing),
        "/capture": Route(_Handler._capture),
        "/sd": Route(_Handler._sd),
        "/-/healthy": Route(_Handler._healthy),
        "/-/ready": Route(_Handler._ready),
        # POST and PUT, as Prometheus and Alertmanager take them.
        "/-/reload": Route(_Handler._reload, frozenset({"POST", "PUT"})),
    }
