"""How a request to a gateway or to Enlighten failed, in one place that every HTTP user imports."""

from __future__ import annotations

import http.client
import socket
import ssl
from typing import Any

import requests
import urllib3.exceptions
from requests.exceptions import ContentDecodingError
from urllib3.exceptions import ReadTimeoutError

from envoy_exporter.snapshot.outcome import Outcome


class ResponseTooLarge(requests.RequestException):
    """The answer is larger than the bound (raw or decoded). Counted as an "error"."""


class DeadlineExceeded(requests.Timeout):
    """The whole request (connect, headers, interim answers, body) took longer than its timeout."""


class TransportError(Exception):
    """A request got no usable answer: its ``outcome``, a ``detail`` safe to log, and the HTTP
    ``status`` where the gateway answered at all."""

    def __init__(self, outcome: Outcome, detail: str | None = None, status: int | None = None) -> None:
        super().__init__(detail or outcome.words)
        self.outcome = outcome
        self.detail = detail
        self.status = status


def failure_code(exc: BaseException) -> str:
    """How a failed request is counted: "timeout" or "error"."""
    if isinstance(exc, requests.Timeout):
        return "timeout"
    # requests reports a read timeout while streaming the body as a ConnectionError
    if isinstance(exc, requests.ConnectionError) and any(isinstance(a, ReadTimeoutError) for a in exc.args):
        return "timeout"
    return "error"


def failure_outcome(exc: BaseException) -> Outcome:
    """What a request that raised ``exc`` comes to, for the endpoint's outcome."""
    if failure_code(exc) == "timeout":
        return Outcome.TIMEOUT
    if isinstance(exc, ResponseTooLarge):
        return Outcome.TOO_LARGE
    if isinstance(exc, ContentDecodingError):
        return Outcome.BAD_DATA
    if _find(exc, ssl.SSLError) is not None or _not_the_pinned_certificate(exc):
        return Outcome.TLS
    return Outcome.UNREACHABLE


def failure_reason(exc: BaseException, timeout: float | None = None) -> str:
    """Why a request failed, in words a person acts on and safe to log: connection refused, no
    such host, timed out after ``timeout`` s, why a certificate was rejected; for bounded answers
    the bound that was hit. Never the exception's class name where words exist."""
    verification = _find(exc, ssl.SSLCertVerificationError)
    if verification is not None:
        why = verification.verify_message or verification.reason or "it is not trusted"
        return f"certificate rejected because of {_article(why)}"
    if _not_the_pinned_certificate(exc):
        return "certificate rejected: it is not the one this gateway showed when it was first found"
    if failure_code(exc) == "timeout":
        return "timed out" if timeout is None else f"timed out after {timeout:.3g} s"
    if isinstance(exc, ResponseTooLarge | ContentDecodingError):
        return str(exc)
    tls = _find(exc, ssl.SSLError)
    if tls is not None:
        return f"TLS handshake failed ({tls.reason or type(tls).__name__})"
    for kind, words in _CAUSES:
        if _find(exc, kind) is not None:
            return words
    if _find(exc, urllib3.exceptions.NameResolutionError) is not None:
        return "no such host"
    return "no connection"


# The operating system's errors, most telling first. A name lookup that fails is a
# socket.gaierror; urllib3 wraps it in NameResolutionError, and not always with the original.
_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (socket.gaierror, "no such host"),
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset by the gateway"),
    (ConnectionAbortedError, "the gateway closed the connection"),
    (http.client.RemoteDisconnected, "the gateway closed the connection"),
    (urllib3.exceptions.ProtocolError, "the gateway closed the connection"),
)


def _not_the_pinned_certificate(exc: BaseException) -> bool:
    """urllib3 checked the certificate against the pinned fingerprint (``TLSSettings``), and it
    was another: its own SSLError, not the ssl module's."""
    mismatch = _find(exc, urllib3.exceptions.SSLError)
    return mismatch is not None and "Fingerprints did not match" in str(mismatch)


def _article(text: str) -> str:
    """ "self-signed certificate" -> "a self-signed certificate"; "hostname mismatch, ..." too."""
    text = text.strip().rstrip(".")
    return f"an {text}" if text[:1].lower() in "aeiou" else f"a {text}"


def _find(exc: BaseException, kind: type[BaseException]) -> Any:
    """The first ``kind`` among ``exc``, its arguments, reasons and causes (requests and urllib3
    wrap the ssl module's errors two or three deep)."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, kind):
            return item
        todo.extend(item.args)
        todo.extend((getattr(item, "reason", None), item.__cause__, item.__context__))
    return None
