"""How a request to a gateway or to Enlighten failed, in one place that every HTTP user imports."""

from __future__ import annotations

import requests
from urllib3.exceptions import ReadTimeoutError


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
