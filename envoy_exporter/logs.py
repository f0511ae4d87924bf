"""Logging setup: logfmt or JSON lines on stderr, with secrets scrubbed from every record.

No module should ever log a password or token; the redacting filter is defence in depth for the
day one does by accident (an exception message quoting a header, a library's debug output).

Much of what is logged comes from elsewhere: a gateway's answer, a network announcement, a file,
a client's request. Every message, argument and traceback is escaped here, in one place, so no
such text can end a log line early, start a forged one, or send terminal escape sequences: each
record is exactly one line, whatever the format. Uncaught exceptions, in any thread, go through
the same path.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,  # Python's name for it; Prometheus' exporters say "warn"
    "error": logging.ERROR,
}
FORMATS = ("logfmt", "json")

_MASK = "***"
_KEYS = "password|passwd|pwd|token|session_?id|secret"

# Order matters: whole header values first, so a "Bearer eyJ..." inside one is gone as a whole.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization header inside a quoted repr: 'Authorization': 'Digest username="envoy", ...'
    (re.compile(r"""(?i)(authorization['"]?\s*[:=]\s*)(['"])(?:(?!\2).)*\2"""), rf"\1\2{_MASK}\2"),
    # Authorization header as a line: Authorization: Bearer ...
    (re.compile(r"""(?i)(authorization\s*[:=]\s*)(?!['"])[^\r\n]+"""), rf"\1{_MASK}"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\1{_MASK}"),
    # JWTs: base64url of '{"' is always "eyJ".
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){0,2}"), _MASK),
    # A quoted value, whole: password = "two words", 'token': 'abc'.
    (
        re.compile(rf"""(?i)\b({_KEYS})(['"]?\s*[=:]\s*)(['"])(?:(?!\3).)*\3"""),
        rf"\1\2\3{_MASK}\3",
    ),
    # key=value, "key": value: whatever follows is the value.
    (
        re.compile(rf"""(?i)\b({_KEYS})((?:['"]\s*[=:]|\s*=)\s*['"]?|\s*:\s*['"])[^\s'"&,;}})]+"""),
        rf"\1\2{_MASK}",
    ),
    # key: value, unquoted. Prose has this shape too ("needs a token: set token, token_file or
    # ..."): a plain word followed by more words is a sentence going on, not a value.
    (
        re.compile(rf"""(?i)\b({_KEYS})(\s*:\s*)(?![a-z]+\s+\w)[^\s'"&,;}})]+"""),
        rf"\1\2{_MASK}",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites the message, its arguments and any traceback of a record with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str, keep_newlines: bool = False) -> str:
    """``text`` with every character that is not printable written as an escape (``\\n``,
    ``\\x1b``, ``\\u2028``): line breaks of every kind (CR, LF, NEL, U+2028, U+2029), terminal
    escapes and other control or format characters. ``keep_newlines`` leaves ``\\n`` alone, for a
    traceback, whose lines the formatters below escape in turn."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable() or (keep_newlines and char == "\n"):
            out.append(char)
        elif char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out)


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _level(record: logging.LogRecord) -> str:
    return "warn" if record.levelno == logging.WARNING else record.levelname.lower()


def _trace(record: logging.LogRecord) -> str | None:
    parts = [p for p in (record.exc_text, record.stack_info) if p]
    return "\n".join(parts) if parts else None


def _fields(record: logging.LogRecord) -> dict[str, str]:
    """What every log line says, whatever its format."""
    fields = {
        "ts": _timestamp(record),
        "level": _level(record),
        "logger": escape(record.name),
        "msg": escape(record.getMessage()),
    }
    trace = _trace(record)
    if trace:
        fields["err"] = escape(trace, keep_newlines=True)
    return fields


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in _fields(record).items())


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' "=\\') and value.isprintable():
        return value
    # ``_fields`` escaped everything else that could break the line; a traceback keeps its
    # newlines until here.
    escaped = escape(value.replace("\\", "\\\\").replace('"', '\\"'))
    return f'"{escaped}"'


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=False)


class Condition:
    """A trouble that may be met again on every scrape (a state file that cannot be written, a
    full disk, a gateway that does not answer): warned about when it starts or its reason
    changes, and told once when it ends, not once per scrape. With a ``clock`` the end also says
    how long it lasted."""

    def __init__(
        self, logger: logging.Logger, level: int = logging.WARNING, clock: Callable[[], float] | None = None
    ) -> None:
        self._log = logger
        self._level = level
        self._clock = clock
        self._reason: str | None = None
        self._since = 0.0
        self._lock = threading.Lock()

    def failed(self, message: str, *args: object) -> None:
        reason = message % args if args else message
        with self._lock:
            if reason == self._reason:
                return
            if self._reason is None and self._clock is not None:
                self._since = self._clock()  # a new cause of a trouble under way keeps its start
            self._reason = reason
        self._log.log(self._level, "%s", reason)

    def recovered(self, message: str, *args: object) -> None:
        with self._lock:
            if self._reason is None:
                return
            self._reason = None
        text = message % args if args else message
        if self._clock is not None:
            text += f" (after {duration(self._clock() - self._since)})"
        self._log.info("%s", text)

    @property
    def failing(self) -> bool:
        return self._reason is not None


class _ExporterHandler(logging.StreamHandler):
    """Marks the handler this module installed, so a second setup replaces only it."""


def setup_logging(level: str = "info", fmt: str = "logfmt", stream: TextIO | None = None) -> None:
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r} (known: {', '.join(LEVELS)})")
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r} (known: {', '.join(FORMATS)})")
    handler = _ExporterHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ExporterHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    install_exception_hooks()


def install_exception_hooks() -> None:
    """Uncaught exceptions, in the main thread or any other, are logged like everything else
    (escaped, redacted, one line) instead of printed raw to stderr by Python's default hooks."""
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_exception


def _log_uncaught(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
    logging.getLogger("envoy_exporter").critical("uncaught exception", exc_info=(kind, value, traceback))


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("envoy_exporter").error(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )


def duration(seconds: float) -> str:
    """How long, in the largest units that fit: "45 s", "3 min 20 s", "2 h 5 min", "3 d 4 h"."""
    seconds = max(0, round(seconds))
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1)):
        if seconds >= size:
            whole, rest = divmod(seconds, size)
            part = rest // sub_size
            return f"{whole} {unit} {part} {sub}" if part else f"{whole} {unit}"
    return f"{seconds} s"
