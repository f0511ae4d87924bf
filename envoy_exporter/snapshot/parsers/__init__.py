"""Pure parsers, one module per endpoint family: bytes in, ``model`` types out.

They do no I/O, no logging and read no clock. Anything they cannot make sense of raises
``ParseError``; the client turns that into a warning naming the endpoint and drops only that
endpoint's part of the snapshot.
"""

from __future__ import annotations


class ParseError(ValueError):
    """The body is not what this endpoint should answer."""
