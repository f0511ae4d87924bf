"""A misbehaving gateway on loopback: a raw TCP server whose answers are scripted byte by byte.

``StandIn(script)`` listens on a free loopback port and, for every request, records what came
(scheme, path, headers) and calls ``script(connection, request)``, which writes whatever it
likes: a 500 MB body, a trickle, an endless stream of ``100 Continue``. Scripts stop when the
client goes away, when the stand-in is stopped, or after ``LIMIT_S`` at the latest, so a test
stays bounded in time even against a client that would wait for ever.

One port speaks both https and plain http (the first byte tells); ``tls`` is a server
``ssl.SSLContext``, and ``tls_on`` can refuse TLS handshakes for a while, as a gateway rebooting
into a broken TLS stack would.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LIMIT_S = 8.0


@dataclass
class Request:
    scheme: str
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Connection:
    sock: socket.socket
    stopped: threading.Event
    started: float = field(default_factory=time.monotonic)
    sent: int = 0

    def send(self, data: bytes) -> bool:
        """Write ``data``; False once the client is gone, the stand-in stopped or time is up."""
        if self.stopped.is_set() or time.monotonic() - self.started > LIMIT_S:
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        self.sent += len(data)
        return True


Script = Callable[[Connection, Request], None]


def answer(body: bytes, status: str = "200 OK", headers: dict[str, str] | None = None) -> Script:
    def script(conn: Connection, request: Request) -> None:
        head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        conn.send(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    return script


def huge_length(conn: Connection, request: Request) -> None:
    """500 MB announced with Content-Length, and sent for as long as the client reads."""
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 500000000\r\n\r\n")
    block = bytes(64 * 1024)
    while conn.send(block):
        pass


def huge_chunked(conn: Connection, request: Request) -> None:
    """An endless chunked body (500 MB before LIMIT_S, if the client reads that fast)."""
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + bytes(0x10000) + b"\r\n"
    while conn.sent < 500_000_000 and conn.send(chunk):
        pass
    conn.send(b"0\r\n\r\n")


def gzip_bomb(decoded_mb: int = 500) -> bytes:
    """About 0.5 MB of gzip that decodes to ``decoded_mb`` MB of zeros."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    return b"".join(packer.compress(block) for _ in range(decoded_mb)) + packer.flush()


def trickle_body(conn: Connection, request: Request) -> None:
    """A 1000-byte body, one byte at a time: every read gets something well within any timeout."""
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    while conn.send(b"x"):
        time.sleep(0.2)


def trickle_headers(conn: Connection, request: Request) -> None:
    """The status line, then header bytes one at a time."""
    conn.send(b"HTTP/1.1 200 OK\r\n")
    while conn.send(b"X"):
        time.sleep(0.2)


def continue_flood(conn: Connection, request: Request) -> None:
    """Interim answers without end: http.client skips each and waits for the next."""
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" * 50
    while conn.send(interim):
        time.sleep(0.002)


class StandIn:
    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.tls_on = True
        self.requests: list[Request] = []
        self.bytes_sent = 0
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def drop(self) -> None:
        """Close every connection (kept-alive ones too), as a rebooting gateway does."""
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            self._open.clear()

    def stop(self) -> None:
        self._stopped.set()
        self.drop()
        for thread in list(self._threads):
            thread.join(timeout=LIMIT_S + 2)
        self._sock.close()

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            with self._lock:
                self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.append(sock)
        sock.settimeout(LIMIT_S)
        try:
            scheme = "http"
            if sock.recv(1, socket.MSG_PEEK) == b"\x16":
                if self.tls is None or not self.tls_on:
                    return
                sock = self.tls.wrap_socket(sock, server_side=True)
                scheme = "https"
                with self._lock:
                    self._open.append(sock)
            reader = sock.makefile("rb")
            while not self._stopped.is_set():
                request = _read_request(reader, scheme)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                conn = Connection(sock, self._stopped)
                self.script(conn, request)
                with self._lock:
                    self.bytes_sent += conn.sent
                if time.monotonic() - conn.started > LIMIT_S:
                    return  # a script that ran out of time leaves the connection unusable
        except (OSError, ValueError):
            return
        finally:
            sock.close()


def _read_request(reader, scheme: str) -> Request | None:
    line = reader.readline(65537)
    if not line.strip():
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        line = reader.readline(65537)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return Request(scheme, method, path, headers)


def make_cert(directory: Path, common_name: str) -> tuple[Path, Path]:
    """A self-signed certificate naming only a common name (no subjectAltName), as gateways
    serve; (cert.pem, key.pem). Needs the openssl command."""
    cert, key = directory / f"{common_name}.pem", directory / f"{common_name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", f"/CN={common_name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
