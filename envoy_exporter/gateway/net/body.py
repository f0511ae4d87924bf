"""A body read within its bound: at most ``limit`` bytes raw and decoded (a 0.5 MB gzip body can
decode to 500 MB), ``ResponseTooLarge`` past it."""

from __future__ import annotations

import zlib
from typing import Any

import requests

from envoy_exporter.gateway.net.errors import ResponseTooLarge

# The largest real answer (a 3-phase production.json with details) is well under 1 MiB.
MAX_BODY = 4 * 1024 * 1024
CHUNK = 64 * 1024
# The encodings read_body can decode within the bound; nothing else is asked for.
ACCEPT_ENCODING = "gzip, deflate"


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
