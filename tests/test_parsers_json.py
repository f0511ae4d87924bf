"""The shared JSON helpers: every surprise becomes ParseError, JSON null becomes None."""

from __future__ import annotations

import pytest

from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers._json import (
    as_bool,
    as_float,
    as_int,
    as_str,
    as_timestamp,
    expect_dict,
    expect_list,
    load_json,
    number_at,
)


def test_load_json_decodes_objects_and_lists() -> None:
    assert load_json(b'{"wattsNow": 512}') == {"wattsNow": 512}
    assert load_json(b" [1, 2]\n") == [1, 2]


def test_load_json_accepts_a_byte_order_mark() -> None:
    assert load_json(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


@pytest.mark.parametrize("digits", [30, 400, 5000])
def test_load_json_reads_an_absurdly_long_integer_as_a_number_that_costs_only_itself(digits: int) -> None:
    # 5000 digits is past Python's int-string limit, which the plain decoding refuses.
    doc = load_json(b'{"whLifetime": ' + b"9" * digits + b', "wNow": 512, "eid": 704643328}')
    assert as_float(doc["whLifetime"], "whLifetime") is None
    assert as_int(doc["eid"], "eid") == 704643328
    assert doc["wNow"] == 512 and isinstance(doc["wNow"], int)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"  \n", id="blank"),
        pytest.param(b'{"production": [{"type": "inv', id="truncated"),
        pytest.param(b"<html><body>Envoy</body></html>", id="html"),
        pytest.param(b"\n<!DOCTYPE html>", id="doctype"),
        pytest.param(b"Error: 401", id="plain-text"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b'{"a": NaN}', id="nan"),
        pytest.param(b"[Infinity]", id="infinity"),
        pytest.param(b"[" * 50_000, id="deeply-nested"),
    ],
)
def test_load_json_rejects(body: bytes) -> None:
    with pytest.raises(ParseError):
        load_json(body)


def test_as_float() -> None:
    assert as_float(3, "w") == 3.0
    assert as_float(-1.5, "w") == -1.5
    assert as_float(None, "w") is None


def test_as_float_drops_an_absurd_magnitude() -> None:
    # One garbage value costs only itself: the rest of the answer stays.
    assert as_float(10**400, "w") is None
    assert as_float(float("inf"), "w") is None
    assert as_float(-2e18, "w") is None
    assert as_float(1e17, "w") == 1e17
    assert as_float(float("nan"), "w") is None
    assert as_float(float("-inf"), "w") is None
    assert as_float(1e18, "w") == 1e18 and as_float(-(10**18), "w") == -1e18  # the bound is kept
    assert as_float(10**18 + 10**3, "w") is None


def test_as_float_of_a_float_or_int_subclass_is_a_plain_float() -> None:
    class Watts(float):
        pass

    class Count(int):
        pass

    assert type(as_float(Watts(2.5), "w")) is float and as_float(Watts(2.5), "w") == 2.5
    assert type(as_float(Count(4), "w")) is float and as_float(Count(4), "w") == 4.0


def test_number_at_reads_as_as_float_does() -> None:
    entry = {"w": 2.5, "n": 3, "null": None, "huge": 2e18, "text": "3"}
    for key in ("w", "n", "null", "huge", "missing"):
        assert number_at(entry, key, "meter 1") == as_float(entry.get(key), f"meter 1.{key}")
    with pytest.raises(ParseError, match=r"meter 1\.text: expected a number"):
        number_at(entry, "text", "meter 1")


@pytest.mark.parametrize("value", ["3", [], {}, True, False], ids=repr)
def test_as_float_rejects(value: object) -> None:
    with pytest.raises(ParseError, match="watts"):
        as_float(value, "watts")


def test_as_int() -> None:
    assert as_int(7, "n") == 7
    assert as_int(7.0, "n") == 7
    assert as_int(None, "n") is None
    with pytest.raises(ParseError):
        as_int(7.5, "n")
    with pytest.raises(ParseError):
        as_int("7", "n")


def test_as_timestamp_treats_zero_as_never() -> None:
    assert as_timestamp(1_700_000_000, "t") == 1_700_000_000.0
    assert as_timestamp(0, "t") is None
    assert as_timestamp(None, "t") is None
    with pytest.raises(ParseError):
        as_timestamp("1700000000", "t")


def test_as_bool() -> None:
    assert as_bool(True, "b") is True
    assert as_bool(0, "b") is False
    assert as_bool(None, "b") is None
    for bad in ("true", 2, 1.0, []):
        with pytest.raises(ParseError):
            as_bool(bad, "b")


def test_as_str() -> None:
    assert as_str("pcu", "s") == "pcu"
    assert as_str(None, "s") is None
    with pytest.raises(ParseError):
        as_str(12, "s")


def test_expect_containers() -> None:
    assert expect_dict({"a": 1}, "d") == {"a": 1}
    assert expect_list([1], "l") == [1]
    with pytest.raises(ParseError, match="expected an object"):
        expect_dict([], "d")
    with pytest.raises(ParseError, match="expected a list"):
        expect_list({}, "l")
