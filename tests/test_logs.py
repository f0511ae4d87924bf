"""Log lines cannot be forged: text from outside (a gateway, an announcement, a file, a client)
never ends a line early, starts another, or carries terminal escapes, in either format."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading

import pytest

from envoy_exporter.logs import escape, setup_logging

HOSTILE = "envoy\r\nts=2026-01-01 level=error msg=forged\x1b[2J\u2028level=error\u0085x\u2029y\x00\x7f\u202e"
BREAKS = ("\n", "\r", "\x1b", "\u2028", "\u2029", "\u0085", "\x00", "\x7f", "\u202e")


@pytest.fixture
def captured():
    stream = io.StringIO()
    hooks = (sys.excepthook, threading.excepthook)
    yield stream
    sys.excepthook, threading.excepthook = hooks
    setup_logging("info", "logfmt", io.StringIO())


def _one_line_each(text: str) -> list[str]:
    lines = text.splitlines()  # splits on every Unicode line break, as log viewers may
    assert text.count("\n") == len(lines)
    for line in lines:
        assert not any(b in line for b in BREAKS), repr(line)
    return lines


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_hostile_arguments_messages_and_tracebacks_stay_on_one_line(captured, fmt):
    setup_logging("info", fmt, captured)
    log = logging.getLogger("envoy_exporter.test")
    log.warning("gateway %s answered %r", HOSTILE, HOSTILE)
    log.warning(HOSTILE)
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        log.exception("failed for %s", HOSTILE)
    lines = _one_line_each(captured.getvalue())
    assert len(lines) == 3
    if fmt == "json":
        forged = "ts=2026-01-01 level=error msg=forged\\x1b[2J"
        assert json.loads(lines[0])["msg"].startswith(f"gateway envoy\\r\\n{forged}\\u2028")
        assert f"ValueError: envoy\\r\n{forged}" in json.loads(lines[2])["err"]
    else:
        # The forged "level=error" is inside the quoted msg value, after the real fields.
        assert ' level=warn logger=envoy_exporter.test msg="gateway envoy\\\\r\\\\nts=2026-01-01 ' in lines[0]


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_an_uncaught_exception_in_a_thread_is_logged_escaped(captured, fmt):
    setup_logging("info", fmt, captured)

    def die():
        raise RuntimeError(HOSTILE)

    thread = threading.Thread(target=die, name="browser")
    thread.start()
    thread.join()
    lines = _one_line_each(captured.getvalue())
    assert len(lines) == 1
    assert "uncaught exception in thread browser" in lines[0] and "RuntimeError" in lines[0]


def test_an_uncaught_exception_in_the_main_thread_goes_through_the_logger(captured):
    setup_logging("info", "logfmt", captured)
    try:
        raise KeyError(HOSTILE)
    except KeyError:
        sys.excepthook(*sys.exc_info())
    lines = _one_line_each(captured.getvalue())
    assert len(lines) == 1 and "level=critical" in lines[0] and "KeyError" in lines[0]


def test_escape_keeps_printable_text_and_writes_the_rest_as_escapes():
    assert escape("Envoy 122233445566 ünïcode") == "Envoy 122233445566 ünïcode"
    assert escape("a\nb\x1bc\u2028d\u0085e") == "a\\nb\\x1bc\\u2028d\\x85e"
    assert escape("a\nb\x1b", keep_newlines=True) == "a\nb\\x1b"
