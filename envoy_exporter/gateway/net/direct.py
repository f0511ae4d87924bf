"""A GET driven on a pool's own connection, as ``BoundedAdapter`` sends a gateway's requests.

requests and urllib3 redo on every request what never changes for a gateway's GET: urllib3
checks each header as it writes it (six of them, the session's own constant ones included),
wraps http.client's answer in an answer of its own and copies its header block twice, and
requests builds its response from that and copies the header block once more. The adapter
writes a plain GET on the pool's kept-alive connection itself, reads http.client's answer and
its body itself, and raises what urllib3 and requests raise, in the same wrapping, wherever
they would. Whatever it does not write or read as they do goes the ordinary way: another
method or a body, a proxy, a header it would not send, an answer header block that is not
plain ``name: value`` fields, or whose Content-Length or Transfer-Encoding http.client and
urllib3 read differently.
"""

from __future__ import annotations

import errno
import http.client
import logging
import ssl
import sys
from typing import Any

import requests
import urllib3.connection
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPHeaderDict, HTTPResponse
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    HeaderParsingError,
    IncompleteRead,
    InvalidHeader,
    LocationParseError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import SKIP_HEADER
from urllib3.util.response import assert_header_parsing
from urllib3.util.retry import Retry
from urllib3.util.ssl_match_hostname import CertificateError
from urllib3.util.url import Url, _encode_target

from envoy_exporter.gateway.net.answer import _Answer, _Fields
from envoy_exporter.gateway.net.deadline import Deadline

# Never retried by urllib3 (the transport decides what is tried again). A Retry is never
# changed, only replaced by ``increment``, so every adapter shares this one.
_NO_RETRIES = Retry.from_int(0)
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
