"""Bounded HTTP over requests: whatever a gateway or Enlighten sends costs at most ``MAX_BODY``
bytes of memory and ``timeout`` seconds, and TLS is set up once per verification setting.

``bounded_session()`` is a ``requests.Session`` whose adapter

- reads every body itself, before anyone sees the response, refusing it past ``MAX_BODY`` bytes,
  raw or decoded (a 0.5 MB gzip body can decode to 500 MB), so ``response.content`` is always
  bounded, also where requests reads a body on its own (digest challenges, redirects);
- bounds the whole request by its ``timeout``: connect, headers, any number of ``100 Continue``
  interim answers and the body. requests' timeout bounds each socket read only, so a body
  trickled at a byte a second, or an endless stream of interim answers, would hold the request
  for as long as the peer likes. A watchdog thread shuts the socket down when the time is up;
- takes its TLS from one shared ``ssl.SSLContext`` per verification setting (``tls_context``).
  urllib3 would build a context per connection and load the system CA bundle into each (822 kB
  and 22 ms of CPU every time). The per-request ``verify=`` of requests is not consulted, so
  ``REQUESTS_CA_BUNDLE`` (psf/requests#3829) cannot change what a session trusts;
- writes a plain GET on the pool's kept-alive connection itself and reads its answer itself
  (see "A GET driven on the pool's connection" below): the same bytes on the wire, the same
  ``requests.Response`` (its ``raw`` a stand-in with nothing left to read, not urllib3's
  answer), the same exceptions as requests over urllib3, for less CPU. Anything else (another
  method, a body, a proxy, an odd header block) goes through urllib3.
"""

from __future__ import annotations

import contextlib
import email.parser
import errno
import heapq
import http.client
import itertools
import logging
import os
import queue
import re
import socket
import ssl
import sys
import threading
import time
import types
import zlib
from typing import Any

import requests
import urllib3.connection
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPHeaderDict, HTTPResponse
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    HeaderParsingError,
    IncompleteRead,
    InvalidHeader,
    LocationParseError,
    LocationValueError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import SKIP_HEADER
from urllib3.util.response import assert_header_parsing
from urllib3.util.retry import Retry
from urllib3.util.ssl_ import create_urllib3_context
from urllib3.util.ssl_match_hostname import CertificateError
from urllib3.util.url import Url, _encode_target

from envoy_exporter.gateway.net.errors import DeadlineExceeded, ResponseTooLarge

# The largest real answer (a 3-phase production.json with details) is well under 1 MiB.
MAX_BODY = 4 * 1024 * 1024
CHUNK = 64 * 1024
# The encodings read_body can decode within the bound; nothing else is asked for.
ACCEPT_ENCODING = "gzip, deflate"


# --------------------------------------------------------------------------------------------
# TLS: one context per verification setting, shared by every session

_contexts: dict[tuple[bool, str | None, tuple[int, int] | None], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def tls_context(verify: bool, ca_file: str | None = None) -> ssl.SSLContext:
    """The shared context for a verification setting.

    ``verify=False``: no verification and no CA loaded (a gateway's self-signed certificate).
    ``ca_file``: only that file is trusted (a pinned gateway certificate or a private CA); the
    certificate may name the host in its common name only, as gateways' certificates do, and a
    pinned leaf certificate is enough (partial chain). ``verify=True``: the system's CAs.
    """
    verify = verify or ca_file is not None
    # A replaced ca_file (picked up by clients made after a reload) gets a context of its own.
    stamp = None if ca_file is None else (os.stat(ca_file).st_mtime_ns, os.stat(ca_file).st_size)
    key = (verify, ca_file, stamp)
    with _contexts_lock:
        context = _contexts.get(key)
        if context is None:
            context = _contexts[key] = _new_context(verify, ca_file)
        return context


def trust_nothing() -> ssl.SSLContext:
    """A verifying context without a single trusted certificate (for a pin that cannot be read)."""
    return create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)


def _new_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    if not verify:
        return create_urllib3_context(cert_reqs=ssl.CERT_NONE)
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    if ca_file is None:
        context.load_default_certs()
        return context
    context.load_verify_locations(cafile=ca_file)
    context.hostname_checks_common_name = True
    context.verify_flags = (context.verify_flags | ssl.VERIFY_X509_PARTIAL_CHAIN) & ~ssl.VERIFY_X509_STRICT
    return context


# --------------------------------------------------------------------------------------------
# Reading a header block

# http.client's bounds on a header block: the length of a line, and the lines (with the blank
# line that ends the block).
_MAX_LINE = 65536
_MAX_LINES = 100
# A header line the email package's parser reads as one plain ``name: value`` field: a name of
# printable ASCII but the colon, and no line break but the one that ends the line.
_PLAIN_FIELD = re.compile(r"([!-9;-~]+):[ \t]*([^\r\n]*)\r?\n")


def parse_headers(fp: Any, _class: type[http.client.HTTPMessage] = http.client.HTTPMessage) -> Any:
    """What ``http.client.parse_headers`` returns, read within the same bounds, without the
    email package's feed parser where every line is a plain ``name: value`` field (as in every
    answer of a gateway, and every scrape's request): that parser costs tens of microseconds
    for four fields, on every request. Any other block (a folded line, a line without a name) goes to
    the stdlib's parser, so it reads exactly as before."""
    lines = []
    while True:
        line = fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > _MAX_LINES:
            raise http.client.HTTPException(f"got more than {_MAX_LINES} headers")
        if line in (b"\r\n", b"\n", b""):
            break
    fields = []
    for line in lines[:-1]:
        plain = _PLAIN_FIELD.fullmatch(line.decode("iso-8859-1"))
        if plain is None:
            return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))
        fields.append(plain.groups())
    message = _Fields() if _class is http.client.HTTPMessage else _class()
    message._headers = fields
    message.set_payload("")  # as the stdlib's parser leaves it: no body follows a header block
    return message


class _Fields(http.client.HTTPMessage):
    """The header block ``parse_headers`` read line by line, read back without the email
    package's policy call per field, which every lookup pays (http.client reads four headers of
    each answer, urllib3 and requests read them all, the cookie jar two, the web server eight
    of each scrape): its compat32 policy hands a value back as it is unless it holds
    surrogates, and text decoded from latin-1 never does. A lookup by name finds the fields'
    places in an index by lower-case name, made at the first lookup and made again whenever
    the fields were added or taken away (a replaced value keeps its place, and is read there)."""

    def _places(self, name: str) -> list[int]:
        fields = self._headers
        kept = self.__dict__.get("_index")
        if kept is None or kept[0] is not fields or kept[1] != len(fields):
            index: dict[str, list[int]] = {}
            for place, (key, _) in enumerate(fields):
                index.setdefault(key.lower(), []).append(place)
            kept = self._index = (fields, len(fields), index)
        return kept[2].get(name.lower(), [])

    def get(self, name: str, failobj: Any = None) -> Any:
        places = self._places(name)
        return self._headers[places[0]][1] if places else failobj

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: str) -> bool:  # type: ignore[override]
        return bool(self._places(name))

    def get_all(self, name: str, failobj: Any = None) -> Any:
        fields = self._headers
        return [fields[place][1] for place in self._places(name)] or failobj

    def items(self) -> list[tuple[str, str]]:
        return list(self._headers)

    def values(self) -> list[str]:
        return [value for _, value in self._headers]


def with_cheap_headers(function: Any) -> Any:
    """A copy of a stdlib function that reads a header block (``http.client.HTTPResponse.begin``,
    ``http.server.BaseHTTPRequestHandler.parse_request``) calling ``parse_headers`` above where
    it called http.client's: the stdlib's own code, with that one name bound otherwise in the
    copy's globals. Nothing of the process changes; any other caller keeps the stdlib's."""
    client = types.SimpleNamespace(**{**vars(http.client), "parse_headers": parse_headers})
    names = {**function.__globals__, "parse_headers": parse_headers}
    names["http"] = types.SimpleNamespace(client=client)
    return types.FunctionType(
        function.__code__, names, function.__name__, function.__defaults__, function.__closure__
    )


class _Answer(http.client.HTTPResponse):
    """http.client's response, its header block read by ``parse_headers`` above, and a
    negative chunk size refused."""

    begin = with_cheap_headers(http.client.HTTPResponse.begin)

    def _read_next_chunk_size(self) -> int:
        # int() takes a sign, and http.client reads "the next -1 bytes" as all there is until
        # the connection closes, in one read, past any bound. As any other size that is not
        # one: the connection closed, and the answer cut short (IncompleteRead).
        size: int = super()._read_next_chunk_size()  # type: ignore[misc]
        if size < 0:
            self._close_conn()  # type: ignore[attr-defined]
            raise ValueError(f"negative chunk size {size}")
        return size


# --------------------------------------------------------------------------------------------
# Whole-request deadlines


class Deadline:
    """The time one request may take in all. While it is the current deadline of a thread
    (``with deadline:``), every socket that thread's requests use is shut down once it passes."""

    _local = threading.local()

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._done = False
        self._outer: Deadline | None = None

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    @property
    def over(self) -> bool:
        """The request it bounds is over (answered, failed or cut off)."""
        return self._done

    def __enter__(self) -> Deadline:
        self._outer = getattr(self._local, "current", None)
        self._local.current = self
        _watchdog.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._local.current = self._outer
        with self._lock:
            self._done = True
            self._sockets.clear()

    @classmethod
    def watch(cls, sock: socket.socket) -> None:
        """Put ``sock`` under the current thread's deadline, if any."""
        deadline: Deadline | None = getattr(cls._local, "current", None)
        if deadline is None:
            return
        with deadline._lock:
            if deadline.expired:
                _shut(sock)
            elif not deadline._done:
                deadline._sockets.append(sock)

    def expire(self) -> None:
        """Called by the watchdog: wake the request up wherever it blocks."""
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, not SSLSocket's (which drops its SSL object under the reader).
    # OSError: already closed, or detached into the SSL socket that is watched too.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread for every deadline of the process."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="http-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][2] is deadline:
                # Only an earlier deadline than the one it sleeps for needs to wake the thread
                # (with equal timeouts, almost never: a wake-up per request costs a thread switch).
                self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._heap:
                    self._cond.wait()
                    continue
                at, _, deadline = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                deadline.expire()
                # Nearly every request is over long before its deadline: those next in line are
                # dropped now, so the thread wakes about twice per timeout, not once per request.
                while self._heap and self._heap[0][2].over:
                    heapq.heappop(self._heap)


_watchdog = _Watchdog()


class _Watched:
    """A urllib3 connection whose sockets are put under the current request's deadline."""

    sock: socket.socket | None
    response_class = _Answer

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        Deadline.watch(sock)  # the TCP socket; during the TLS handshake it is the one read
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:  # a kept-alive connection, or the TLS socket of a new one
            Deadline.watch(self.sock)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _Idle:
    """Where a pool keeps its idle connections. urllib3's is a ``queue.LifoQueue``: a lock and
    three conditions, each with a waiters' deque, some 2.5 kB per gateway. A bounded session's
    pools never wait for a connection (``block`` is False: an empty pool makes a new one), so a
    list under a lock holds them just as well."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._items: list[Any] = []
        self._lock = threading.Lock()

    def get(self, block: bool = False, timeout: float | None = None) -> Any:
        with self._lock:
            if self._items:
                return self._items.pop()
        raise queue.Empty

    def put(self, item: Any, block: bool = False) -> None:
        with self._lock:
            if len(self._items) < self._maxsize:
                self._items.append(item)
                return
        raise queue.Full

    def qsize(self) -> int:
        return len(self._items)


class _HostLine:
    """The ``Host`` line of every request to a pool's origin, as http.client writes it for the
    pool's connections (brackets around IPv6, the port unless it is the scheme's), worked out
    once by http.client itself on a connection that is never opened."""

    ConnectionCls: Any
    host: str
    port: int | None
    _host_line: bytes | None = None

    def host_line(self) -> bytes | None:
        line = self._host_line
        if line is None:
            scratch = self.ConnectionCls(host=self.host, port=self.port)
            try:
                scratch.putrequest("GET", "/", skip_accept_encoding=True)
            except (ValueError, UnicodeError):
                return None  # urllib3 refuses it the same way on the request
            line = self._host_line = scratch._buffer[1]
        return line


class _Pool(_HostLine, HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection
    QueueCls = _Idle


class _TLSPool(_HostLine, HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection
    QueueCls = _Idle

    def _validate_conn(self, conn: Any) -> None:
        """urllib3's, without its InsecureRequestWarning on every request to an unverified
        host: what a gateway's certificate is checked against is its TLS context's business,
        set per gateway (``tls``); the self-signed one accepted by default is a documented
        choice, not an oversight. (A warnings filter would silence every library of the process.)"""
        HTTPConnectionPool._validate_conn(self, conn)
        if conn.is_closed:
            conn.connect()


# --------------------------------------------------------------------------------------------
# Reading a body within the bound


def read_body(raw: Any, limit: int = MAX_BODY) -> bytes:
    """The whole body of a urllib3 response, decoded (gzip, deflate), at most ``limit`` bytes
    raw and decoded; ``ResponseTooLarge`` past it. ``raw`` is ``requests.Response.raw``."""
    return _bounded_body(lambda size: raw.read(size, decode_content=False), raw.headers, limit)


def _bounded_body(read: Any, headers: Any, limit: int) -> bytes:
    """The body ``read(size)`` gives until it gives nothing, decoded as ``headers`` say, within
    ``limit`` bytes raw and decoded."""
    length = headers.get("Content-Length", "").strip()
    # ASCII digits only, as int() takes them: "\xb2" (a latin-1 superscript) passes isdigit too.
    if length.isascii() and length.isdigit() and int(length) > limit:
        raise ResponseTooLarge(f"the answer announces {int(length)} bytes, over the {_mib(limit)} bound")
    decoder = _Decoder(headers.get("Content-Encoding", ""))
    body = bytearray()
    received = 0
    while True:
        chunk = read(CHUNK)
        if not chunk:
            break
        received += len(chunk)
        if received > limit:
            raise ResponseTooLarge(f"the answer is over the {_mib(limit)} bound")
        body += decoder.decode(chunk, limit + 1 - len(body))
        if len(body) > limit:
            raise ResponseTooLarge(f"the answer decodes to over the {_mib(limit)} bound")
    return bytes(body)


class _Decoder:
    """Content-Encoding decoding that never produces more than it is asked for."""

    def __init__(self, encoding: str) -> None:
        encoding = encoding.strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise requests.exceptions.ContentDecodingError(f"unsupported Content-Encoding {encoding[:40]!r}")
        self._identity = encoding in ("", "identity")
        # gzip: a gzip header; deflate: a zlib header (auto-detected with gzip), or a raw stream.
        self._wbits = 31 if "gzip" in encoding else 47
        self._zlib: Any = None if self._identity else zlib.decompressobj(self._wbits)
        self._started = False

    def decode(self, chunk: bytes, max_length: int) -> bytes:
        if self._identity:
            return chunk
        try:
            return self._decompress(chunk, max_length)
        except zlib.error as exc:
            raise requests.exceptions.ContentDecodingError(f"cannot decode the body: {exc}") from None

    def _decompress(self, chunk: bytes, max_length: int) -> bytes:
        # Output past max_length would stay in unconsumed_tail; the caller refuses the body then.
        if self._started or self._wbits != 47:
            return self._zlib.decompress(chunk, max_length)
        self._started = True
        try:
            return self._zlib.decompress(chunk, max_length)
        except zlib.error:
            # Some servers send "deflate" as a raw stream, without the zlib header.
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._zlib.decompress(chunk, max_length)


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n / 1024:g} KiB"


# --------------------------------------------------------------------------------------------
# A GET driven on the pool's connection
#
# requests and urllib3 redo on every request what never changes for a gateway's GET: urllib3
# checks each header as it writes it (six of them, the session's own constant ones included),
# wraps http.client's answer in an answer of its own and copies its header block twice, and
# requests builds its response from that and copies the header block once more. The adapter
# writes a plain GET on the pool's kept-alive connection itself, reads http.client's answer and
# its body itself, and raises what urllib3 and requests raise, in the same wrapping, wherever
# they would. Whatever it does not write or read as they do goes the ordinary way: another
# method or a body, a proxy, a header it would not send, an answer header block that is not
# plain ``name: value`` fields, or whose Content-Length or Transfer-Encoding http.client and
# urllib3 read differently.

_log_urllib3 = logging.getLogger("urllib3.connectionpool")
# The request headers urllib3 sends as they are only when they are there; without one of them,
# or with one of the framing ones, the request goes the ordinary way.
_MUST_HAVE = frozenset({"accept-encoding", "user-agent"})
_FRAMING = frozenset({"host", "content-length", "transfer-encoding"})
# Header lines checked and written before, by (name, value), shared by every adapter: the
# sessions' own headers, the same for every gateway. Credentials (a gateway's own, or new on
# each request) are checked each time, and kept nowhere.
_fields: dict[tuple[Any, Any], tuple[bytes, int]] = {}
_FIELDS_MAX = 256
_FIELD_VALUE_MAX = 160
_CREDENTIALS = frozenset({"authorization", "cookie"})
# Request targets and lines by path, shared by every adapter: gateways are asked for a dozen.
_targets: dict[str, tuple[str, bytes]] = {}
_TARGETS_MAX = 256
# What urllib3's urlopen catches and wraps (its TimeoutError, not the builtin).
_WRAPPED = (
    Urllib3Timeout,
    http.client.HTTPException,
    OSError,
    ProtocolError,
    ssl.SSLError,
    Urllib3SSLError,
    CertificateError,
)


def _request_head(request: requests.PreparedRequest, request_line: bytes, host_line: bytes) -> bytes | None:
    """The bytes http.client writes for ``request`` as urllib3 hands it over, or None where
    they would write anything else or refuse it (then they do, and raise as they do)."""
    lines = [request_line, host_line]
    required = 0
    for header in request.headers.items():
        try:
            field = _fields.get(header)
        except TypeError:  # a value of a kind urllib3 sends its own way
            return None
        if field is None:
            field = _field(*header)
            if field is None:
                return None
            if len(header[1]) <= _FIELD_VALUE_MAX and header[0].lower() not in _CREDENTIALS:
                if len(_fields) >= _FIELDS_MAX:
                    _fields.clear()
                _fields[header] = field
        lines.append(field[0])
        required += field[1]
    if required != len(_MUST_HAVE):
        return None
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def _target(path: str) -> tuple[str, bytes] | None:
    """The request target urllib3 hands http.client for ``path`` (what is not allowed in it
    percent-encoded) and the request line http.client writes; None where either would refuse it."""
    found = _targets.get(path)
    if found is None:
        try:
            target = _encode_target(path)
        except LocationParseError:
            return None
        if http.client._contains_disallowed_url_pchar_re.search(target) or not target.isascii():
            return None
        if len(_targets) >= _TARGETS_MAX:
            _targets.clear()
        found = _targets[path] = (target, f"GET {target} HTTP/1.1".encode("ascii"))
    return found


def _field(name: Any, value: Any) -> tuple[bytes, int] | None:
    """``name: value`` as http.client's ``putheader`` writes it, and whether it is one of the
    headers the direct path needs; None where it would refuse it or the path cannot take it."""
    if not isinstance(name, str) or not name.isascii() or name.lower() in _FRAMING:
        return None
    if isinstance(value, str):
        if value == SKIP_HEADER or (not value.isascii() and not _latin1(value)):
            return None
        raw = value.encode("latin-1")
    elif isinstance(value, bytes):
        raw = value
    else:
        return None
    line = name.encode("ascii")
    if not http.client._is_legal_header_name(line) or http.client._is_illegal_header_value(raw):
        return None
    return line + b": " + raw, int(name.lower() in _MUST_HAVE)


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _ask(pool: Any, head: bytes, timeout: float, target: str) -> tuple[Any, _Answer]:
    """Send ``head`` on the pool's idle connection (a new one if it has none or the idle one
    was dropped) and read the answer's header block: urllib3's ``urlopen`` without retries, its
    errors wrapped as it wraps them (``MaxRetryError``). The connection goes back to the pool,
    closed, if anything fails."""
    conn = None
    clean = False
    try:
        conn = pool._get_conn()
        conn.timeout = timeout
        _open(pool, conn, target)
        _write(conn, head)
        answer = _read_answer(pool, conn, timeout, target)
        clean = True
        return conn, answer
    except _WRAPPED as exc:
        reason: Exception = exc
        if isinstance(exc, ssl.SSLError | CertificateError):
            reason = Urllib3SSLError(exc)
        if isinstance(reason, OSError | http.client.HTTPException):
            reason = ProtocolError("Connection aborted.", reason)
        raise MaxRetryError(pool, target, reason) from reason
    finally:
        if not clean:
            if conn:
                conn.close()
            pool._put_conn(None)


def _open(pool: Any, conn: Any, target: str) -> None:
    """Connect (TCP, TLS and the pinned fingerprint checked) unless kept alive: urllib3's
    ``_validate_conn`` step of ``_make_request``."""
    try:
        try:
            pool._validate_conn(conn)
            if conn.is_closed:
                conn.connect()
        except (TimeoutError, ssl.SSLError) as exc:
            pool._raise_timeout(err=exc, url=target, timeout_value=conn.timeout)
            raise
    except (ssl.SSLError, CertificateError) as exc:
        raise Urllib3SSLError(exc)  # noqa: B904 (as urllib3 raises it: no cause, the context)
    Deadline.watch(conn.sock)


def _write(conn: Any, head: bytes) -> None:
    """http.client's ``send``; a peer that closed its side may still have answered."""
    sock = conn.sock
    sock.settimeout(conn.timeout)
    sys.audit("http.client.send", conn, head)
    try:
        sock.sendall(head)
    except BrokenPipeError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.EPROTOTYPE, errno.ECONNRESET):
            raise


def _read_answer(pool: Any, conn: Any, timeout: float, target: str) -> _Answer:
    """http.client's ``getresponse``, a socket timeout raised as urllib3 raises it."""
    try:
        sock = conn.sock
        sock.settimeout(timeout)
        answer = _Answer(sock, method="GET")
        try:
            try:
                answer.begin()
            except ConnectionError:
                conn.close()
                raise
            if answer.will_close:
                conn.close()  # the answer holds the socket until it is read
        except BaseException:
            answer.close()
            raise
    except (ssl.SSLError, OSError) as exc:
        pool._raise_timeout(err=exc, url=target, timeout_value=timeout)
        raise
    if _log_urllib3.isEnabledFor(logging.DEBUG):
        _log_urllib3.debug(
            '%s://%s:%s "%s %s %s" %s %s',
            pool.scheme, pool.host, pool.port, "GET", target,
            conn._http_vsn_str, answer.status, answer.length,
        )  # fmt: skip
    return answer


def _as_urllib3(pool: Any, conn: Any, answer: _Answer, target: str) -> HTTPResponse:
    """The answer as urllib3's ``getresponse`` wraps it (for a header block it reads otherwise)."""
    try:
        assert_header_parsing(answer.msg)
    except (HeaderParsingError, TypeError) as exc:
        url = Url(scheme=pool.scheme, host=conn.host, port=conn.port, path=target).url
        logging.getLogger("urllib3.connection").warning(
            "Failed to parse headers (url=%s): %s", url, exc, exc_info=True
        )
    normalise = getattr(urllib3.connection, "_normalize_header_values", None)
    items = normalise(answer.msg) if normalise else answer.msg.items()
    try:
        response = HTTPResponse(
            body=answer,
            headers=HTTPHeaderDict(items),
            status=answer.status,
            version=answer.version,
            version_string=conn._http_vsn_str,
            reason=answer.reason,
            preload_content=False,
            decode_content=False,
            original_response=answer,
            enforce_content_length=True,
            request_method="GET",
            request_url=target,
            sock_shutdown=getattr(conn.sock, "shutdown", None),
        )
    except BaseException:
        conn.close()
        pool._put_conn(None)
        raise
    response.retries = _NO_RETRIES
    response._connection = conn  # type: ignore[attr-defined]
    response._pool = pool  # type: ignore[attr-defined]
    return response


def _body_reader(pool: Any, answer: _Answer) -> Any:
    """``read(size)`` of the body, as urllib3's answer reads it: a body shorter than its
    Content-Length is an ``IncompleteRead``, and errors are urllib3's."""
    left = answer.length
    got = 0

    def read(size: int) -> bytes:
        nonlocal left, got
        try:
            data = answer.read(size)
            if not data:
                answer.close()
                if left is not None and left != 0:
                    raise IncompleteRead(got, left)
        except TimeoutError as exc:
            raise ReadTimeoutError(pool, None, "Read timed out.") from exc  # type: ignore[arg-type]
        except ssl.SSLError as exc:
            raise Urllib3SSLError(exc) from exc
        except http.client.IncompleteRead as exc:
            empty = exc.expected is not None and exc.partial is not None and exc.expected == -exc.partial
            words = "Response may not contain content." if empty else f"Connection broken: {exc!r}"
            raise ProtocolError(words, exc) from exc
        except (http.client.HTTPException, OSError) as exc:
            raise ProtocolError(f"Connection broken: {exc!r}", exc) from exc
        got += len(data)
        if left is not None:
            left -= len(data)
        return data

    return read


def _headers(answer: _Answer) -> CaseInsensitiveDict[str] | None:
    """The answer's headers as requests gives them after urllib3 (a name given twice once,
    spelt as it came first, its values joined with ", "), or None where urllib3's answer would
    not read the body exactly as http.client's does: a header block that is not plain fields
    (urllib3 warns about it or normalises it), a Content-Length given twice or as a list, a
    Transfer-Encoding the two read differently."""
    fields = answer.msg
    if type(fields) is not _Fields:
        return None
    joined: dict[str, tuple[str, str]] = {}
    for name, value in fields._headers:
        low = name.lower()
        first = joined.get(low)
        joined[low] = (name, value) if first is None else (first[0], first[1] + ", " + value)
    lengths = joined.get("content-length")
    codings = joined.get("transfer-encoding")
    if codings is not None:
        chunked = "chunked" in (coding.strip() for coding in codings[1].lower().split(","))
        if chunked != answer.chunked or (chunked and lengths is not None):
            return None
    if lengths is not None and "," in lengths[1]:
        return None
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    headers._store.update(joined)  # its own layout: lower-case name -> (name, value)
    return headers


class _Spent:
    """``Response.raw`` of an answer the adapter read itself. The body is in ``content``; there
    is nothing more to read, and the connection is back in its pool. ``_original_response`` is
    http.client's answer where it sets a cookie, for the cookie jars, and None otherwise:
    requests walks a jar's cookie policy for each answer it has (twice per answer), even when
    the answer sets no cookie."""

    __slots__ = ("_original_response",)

    def __init__(self, answer: _Answer | None) -> None:
        self._original_response = answer

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        return b""

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


def _requests_error(exc: BaseException, request: requests.PreparedRequest) -> BaseException:
    """What requests' ``HTTPAdapter.send`` raises for what urllib3's ``urlopen`` raised."""
    if isinstance(exc, ProtocolError | OSError):
        return requests.ConnectionError(exc, request=request)
    if isinstance(exc, ClosedPoolError):
        return requests.ConnectionError(exc, request=request)
    if isinstance(exc, MaxRetryError):
        reason = exc.reason
        if isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError):
            return requests.ConnectTimeout(exc, request=request)
        if isinstance(reason, ResponseError):
            return requests.exceptions.RetryError(exc, request=request)
        if isinstance(reason, Urllib3SSLError):
            return requests.exceptions.SSLError(exc, request=request)
        return requests.ConnectionError(exc, request=request)
    if isinstance(exc, Urllib3SSLError):
        return requests.exceptions.SSLError(exc, request=request)
    if isinstance(exc, ReadTimeoutError):
        return requests.ReadTimeout(exc, request=request)
    if isinstance(exc, InvalidHeader):
        return requests.exceptions.InvalidHeader(exc, request=request)
    return exc


# --------------------------------------------------------------------------------------------
# The adapter and the session


# Never retried by urllib3 (the transport decides what is tried again). A Retry is never
# changed, only replaced by ``increment``, so every adapter shares this one.
_NO_RETRIES = Retry.from_int(0)


class BoundedAdapter(HTTPAdapter):
    """See the module docstring. ``server_name`` is the name the certificate is checked against
    and sent as SNI, instead of the URL's host. ``fingerprint``: the SHA-256 the peer's
    certificate must have, checked on every connection before anything is sent on it."""

    def __init__(
        self,
        context: ssl.SSLContext,
        server_name: str | None = None,
        max_body: int = MAX_BODY,
        fingerprint: str | None = None,
    ) -> None:
        self._context = context
        self._server_name = server_name
        self._fingerprint = fingerprint
        self.max_body = max_body
        self._last_pool: tuple[str, Any] | None = None  # (origin, its connection pool)
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)
        self.max_retries = _NO_RETRIES  # one for all: requests makes one per adapter

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        pool_kwargs["ssl_context"] = self._context
        if self._server_name:
            pool_kwargs["server_hostname"] = self._server_name
        if self._fingerprint:
            pool_kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}
        self._last_pool = None

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: Any, proxies: Any = None, cert: Any = None
    ) -> Any:
        """The connection pool of the request's origin. A gateway's requests all go to one
        origin, so its pool is kept at hand: requests would parse the URL twice and look the
        pool up by a normalised key on every request. Only this method asks the pool manager,
        which holds one pool (``pool_connections=1``), so the one kept is always the one it holds."""
        if proxies:
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        origin = _origin(request.url or "")
        last = self._last_pool
        if last is not None and last[0] == origin:
            return last[1]
        pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
        self._last_pool = (origin, pool)
        return pool

    def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
        """The path of the URL: without a proxy that is all requests would send, after parsing
        the URL twice more to find there is none."""
        return super().request_url(request, proxies) if proxies else request.path_url

    def close(self) -> None:
        self._last_pool = None
        super().close()

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, _ = super().build_connection_pool_key_attributes(request, verify, cert)
        return host_params, {}  # TLS comes from the pool manager's shared context only

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """requests would point every pool at a CA bundle (loaded into the shared context on
        each connection); the context already says what is trusted."""

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        if timeout is None:
            raise ValueError("a bounded session needs a timeout on every request")
        seconds = float(sum(timeout) if isinstance(timeout, tuple) else timeout)
        with Deadline(seconds) as deadline:
            try:
                response = self._send(request, deadline, verify, cert, proxies)
            except (OSError, Urllib3Error, ValueError) as exc:
                # A connect timeout stays one: it tells the transport to try the other scheme.
                if deadline.expired and not isinstance(exc, requests.ConnectTimeout):
                    raise DeadlineExceeded(
                        f"the whole request took longer than {seconds:g} s", request=request
                    ) from None
                if isinstance(exc, requests.RequestException):
                    raise
                if isinstance(exc, ReadTimeoutError):
                    raise requests.ReadTimeout(exc, request=request) from None
                raise requests.ConnectionError(exc, request=request) from None
            if deadline.expired:
                # Cut off by the watchdog, the answer may look complete and be truncated.
                response.close()
                raise DeadlineExceeded(f"the whole request took longer than {seconds:g} s", request=request)
            return response

    def _send(
        self, request: requests.PreparedRequest, deadline: Deadline, verify: Any, cert: Any, proxies: Any
    ) -> requests.Response:
        remaining = max(deadline.remaining(), 0.001)
        if proxies or request.method != "GET" or request.body is not None:
            return self._send_through_urllib3(request, remaining, verify, cert, proxies)
        try:
            pool = self.get_connection_with_tls_context(request, verify, proxies, cert)
        except LocationValueError as exc:
            raise requests.exceptions.InvalidURL(exc, request=request) from None
        host_line = pool.host_line()
        target = _target(request.path_url)
        head = None if host_line is None or target is None else _request_head(request, target[1], host_line)
        if head is None or target is None:
            return self._send_through_urllib3(request, remaining, verify, cert, proxies)
        try:
            conn, answer = _ask(pool, head, remaining, target[0])
            headers = _headers(answer)
            raw = None if headers is not None else _as_urllib3(pool, conn, answer, target[0])
        except Exception as exc:
            raise _requests_error(exc, request) from None
        if raw is not None:
            return self._read_through_urllib3(request, raw)
        try:
            body = _bounded_body(_body_reader(pool, answer), headers, self.max_body)
        except BaseException:
            answer.close()
            conn.close()
            pool._put_conn(conn)
            raise
        pool._put_conn(conn)
        return self._response(request, answer, headers, body)

    def _response(
        self, request: requests.PreparedRequest, answer: _Answer, headers: Any, body: bytes
    ) -> requests.Response:
        """What ``build_response`` makes of the answer, its body read."""
        response = requests.Response()
        response.status_code = answer.status
        response.headers = headers
        response.encoding = get_encoding_from_headers(headers)
        sets_cookies = "Set-Cookie" in headers or "Set-Cookie2" in headers
        response.raw = _Spent(answer if sets_cookies else None)
        response.reason = answer.reason
        response.url = request.url.decode("utf-8") if isinstance(request.url, bytes) else request.url
        if sets_cookies:
            extract_cookies_to_jar(response.cookies, request, response.raw)
        response.request = request
        response.connection = self
        response._content = body
        response._content_consumed = True
        return response

    def _send_through_urllib3(
        self, request: requests.PreparedRequest, remaining: float, verify: Any, cert: Any, proxies: Any
    ) -> requests.Response:
        response = super().send(request, True, (remaining, remaining), verify, cert, proxies)
        return self._read_through_urllib3(request, response.raw, response)

    def _read_through_urllib3(
        self, request: requests.PreparedRequest, raw: Any, response: requests.Response | None = None
    ) -> requests.Response:
        if response is None:
            response = self.build_response(request, raw)
        conn = raw.connection  # urllib3 lets go of it once the body is read
        try:
            body = read_body(raw, self.max_body)
        except BaseException:
            response.close()
            raise
        _forget_answer(conn)
        raw.release_conn()
        response._content = body
        response._content_consumed = True
        return response


def _forget_answer(conn: Any) -> None:
    """http.client keeps a connection's last response, its header block and all, until the next
    request on it (a gateway's, a minute later); once read to the end it is of no more use."""
    answer = getattr(conn, "_HTTPConnection__response", None)
    if answer is not None and answer.isclosed():
        conn._HTTPConnection__response = None


def _origin(url: str) -> str:
    """``scheme://authority`` of a URL, as written: the same string means the same pool."""
    scheme, _, rest = url.partition("://")
    return scheme + "://" + rest.split("/", 1)[0]


def bounded_session(
    context: ssl.SSLContext,
    server_name: str | None = None,
    max_body: int = MAX_BODY,
    fingerprint: str | None = None,
) -> requests.Session:
    """A session for one peer: bounded answers and requests, TLS from ``context``, nothing from
    the environment (no proxy, no ~/.netrc, no REQUESTS_CA_BUNDLE). Every request needs a
    ``timeout``; ``response.content`` is already read."""
    session = requests.Session()
    session.trust_env = False
    session.headers["Accept-Encoding"] = ACCEPT_ENCODING
    adapter = BoundedAdapter(context, server_name, max_body, fingerprint)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
