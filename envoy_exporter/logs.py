"""Logging setup: logfmt or JSON lines on stderr, with secrets scrubbed from every record.

No module should ever log a password or token; the redacting filter is defence in depth for the
day one does by accident (an exception message quoting a header, a library's debug output).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
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
        "logger": record.name,
        "msg": record.getMessage(),
    }
    trace = _trace(record)
    if trace:
        fields["err"] = trace
    return fields


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in _fields(record).items())


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' "=\\') and value.isprintable():
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=False)


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
