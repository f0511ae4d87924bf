"""How a request to a gateway or to Enlighten failed, in one place that every HTTP user imports."""

from __future__ import annotations

import ssl
from typing import Any

import requests
from requests.exceptions import ContentDecodingError
from urllib3.exceptions import ReadTimeoutError


class ResponseTooLarge(requests.RequestException):
    """The answer is larger than the bound (raw or decoded). Counted as an "error"."""


class DeadlineExceeded(requests.Timeout):
    """The whole request (connect, headers, interim answers, body) took longer than its timeout."""


class TransportError(Exception):
    """A request got no usable answer. ``code``: "timeout", "error", or the HTTP status as text."""

    def __init__(self, code: str, detail: str | None = None) -> None:
        super().__init__(code if detail is None else f"{code} ({detail})")
        self.code = code
        self.detail = detail


def failure_code(exc: BaseException) -> str:
    """How a failed request is counted: "timeout" or "error"."""
    if isinstance(exc, requests.Timeout):
        return "timeout"
    # requests reports a read timeout while streaming the body as a ConnectionError
    if isinstance(exc, requests.ConnectionError) and any(isinstance(a, ReadTimeoutError) for a in exc.args):
        return "timeout"
    return "error"


def failure_reason(exc: BaseException) -> str:
    """Why a request failed, safe to log: the exception's kind, and for TLS the certificate's
    verification error; for bounded answers the bound that was hit."""
    verification = _find(exc, ssl.SSLCertVerificationError)
    if verification is not None:
        return f"{type(exc).__name__}: {verification.verify_message or verification.reason}"
    tls = _find(exc, ssl.SSLError)
    if tls is not None:
        return f"{type(exc).__name__}: {tls.reason or type(tls).__name__}"
    if isinstance(exc, ResponseTooLarge | DeadlineExceeded | ContentDecodingError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


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
