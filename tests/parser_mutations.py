"""Damaged copies of a good gateway answer, for the parsers' bad-input tests.

A parser may accept a damaged body or refuse it with ``ParseError``; any other exception is a
bug. Walking every value of a realistic body covers each key a parser reads, deterministically
and in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from envoy_exporter.snapshot.parsers import ParseError

# One value of each JSON kind, plus the numbers that trip unit conversions.
WRONG_VALUES: tuple[Any, ...] = (None, True, 0, -1, 1.5, 1e308, "x", "", [], {}, [{}])
_DROP = object()


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    children = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in children:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


def _damaged(body: bytes, path: tuple[Any, ...], value: Any) -> bytes:
    """``body`` with the value at ``path`` replaced by ``value``, or removed for ``_DROP``."""
    doc = json.loads(body)  # a fresh copy, much faster than copy.deepcopy
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if value is _DROP:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return json.dumps(doc).encode()


def mutations(body: bytes) -> Iterator[bytes]:
    """``body`` with, in turn, each value replaced by each of ``WRONG_VALUES`` and each value
    removed."""
    for path in _paths(json.loads(body)):
        for value in (*WRONG_VALUES, _DROP):
            yield _damaged(body, path, value)


def truncations(body: bytes, cuts: int = 25) -> Iterator[bytes]:
    """Proper prefixes of ``body``: none of them is a whole JSON document."""
    text = body.strip()
    step = max(1, len(text) // cuts)
    yield from (text[:end] for end in range(1, len(text), step))


def survives(parse: Callable[[bytes], Any], body: bytes) -> bool:
    """True when ``parse`` returns, False when it raises ``ParseError``; anything else escapes."""
    try:
        parse(body)
    except ParseError:
        return False
    return True


def assert_damage_is_handled(parse: Callable[[bytes], Any], body: bytes) -> None:
    """Every damaged value gives a result or ``ParseError``, and both happen: the parser reads
    the values, and tolerates the ones it can do without."""
    outcomes = [survives(parse, damaged) for damaged in mutations(body)]
    assert True in outcomes and False in outcomes


def assert_truncations_refused(parse: Callable[[bytes], Any], body: bytes) -> None:
    """Every proper prefix of ``body`` is a ``ParseError``."""
    for cut in truncations(body):
        try:
            parse(cut)
        except ParseError:
            continue
        raise AssertionError(f"a truncated body parsed: {cut[-40:]!r}")
