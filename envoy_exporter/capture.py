"""``envoy-exporter capture``: one polite copy of everything a gateway answers, safe to share.

Supporting new firmware starts with what it answers. This reads every endpoint of the exporter's
catalogue (``gateway/endpoints.py``, every variant it would probe included) once, one request at
a time with a pause between them, through the exporter's own transport and auth. It writes a
folder laid out like the shared captures (``../shared/fixtures/envoy/<capture>/``): one file per
endpoint, named after its path (``/ivp/meters/readings`` -> ``ivp_meters_readings``,
``/production.json?details=1`` -> ``production.json_details_1``), each with a ``<name>_log.json``
holding the status code and headers, plus a ``_readme``.

Before anything is written, identifying data is replaced consistently, the same original by the
same stand-in in every file (JSON, XML, HTML and headers alike): serial numbers (every value under
a serial key, and ``<sn>`` of ``/info``, then each of them wherever it appears), tokens (JWTs),
cookies and other secret-keyed values, e-mail addresses, site ids, MAC and IP addresses, and the
credentials and host of the configuration. The stand-ins have recognisable shapes (serials
``9000…``, ``user<n>@example.invalid``, MACs ``02:00:00:00:…``, IPs from the documentation ranges),
so ``--redact-check`` can prove a folder clean without knowing the originals: it lists every value
that looks like an original, and every secret of the configuration found in the folder.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from envoy_exporter import __version__
from envoy_exporter.config.load import ConfigError, load_config
from envoy_exporter.config.settings import GatewaySettings, Settings
from envoy_exporter.gateway import endpoints
from envoy_exporter.gateway.auth.scheme import Auth
from envoy_exporter.gateway.endpoints import INFO, Endpoint
from envoy_exporter.gateway.net.errors import TransportError
from envoy_exporter.gateway.net.transport import Transport
from envoy_exporter.logs import setup_logging
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers.info import parse_info

DEFAULT_PAUSE_S = 1.0  # between two requests: the gateway is a small device
README = "_readme"
LOG_SUFFIX = "_log.json"

# Headers that carry credentials; their values are never written.
SECRET_HEADERS = frozenset(
    {"set-cookie", "cookie", "authorization", "www-authenticate", "proxy-authenticate"}
)

# Keys whose values identify the system or its owner.
SERIAL_KEY = re.compile(r"serial|^sn$|_sn$|^sn_|Sn$", re.IGNORECASE)
SITE_KEY = re.compile(r"^(site|system)_?id$", re.IGNORECASE)
SECRET_KEY = re.compile(r"token|session|cookie|passw|secret", re.IGNORECASE)
XML_SERIAL = re.compile(r"<sn>\s*([^<\s]+)\s*</sn>")
MIN_ID_LENGTH = 6  # shorter values under a serial key are not serials (flags, counts)

JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]*")
EMAIL = re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
MAC = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}(?![0-9A-Fa-f:])")
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# "openresty/1.17.8.1": a product's version, not an address
PRODUCT_VERSION = re.compile(r"[A-Za-z][\w-]*/$")

FAKE_SERIAL = re.compile(r"9000\d*")
FAKE_DOMAIN = "example.invalid"
FAKE_MAC_PREFIX = "02:00:00:00:"
FAKE_NETWORKS = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("2001:db8::/32"),
)


# ------------------------------------------------------------------------------------------------
# What to ask


def catalogue() -> list[tuple[Endpoint, str]]:
    """Every path of every endpoint the catalogue holds, ``/info`` first (read when called, so
    an endpoint added there is captured without a change here)."""
    return [(endpoint, path) for endpoint in endpoints.CATALOGUE for path in endpoint.paths]


def file_name(path: str) -> str:
    """The capture file of a request path: ``/production.json?details=1`` ->
    ``production.json_details_1`` (the shared captures' convention)."""
    parts = urlsplit(path)
    name = parts.path.lstrip("/").replace("/", "_") or "index"
    if parts.query:
        name += "_" + parts.query.replace("=", "_").replace("&", "_")
    return name


@dataclass(frozen=True)
class Answer:
    path: str
    code: int | None  # the HTTP status; None when no answer came (timeout, refused)
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def fetch_all(
    settings: GatewaySettings,
    state_dir: Path | None,
    pause: float = DEFAULT_PAUSE_S,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Answer]:
    """Each catalogue endpoint once, in order, one at a time, through the exporter's transport
    and auth. ``/info`` first: it decides the auth scheme. Without it nothing else is asked."""
    auth = Auth(settings, state_dir, _ignore)
    transport = Transport(settings, auth, _ignore)
    answers: list[Answer] = []
    try:
        for endpoint, path in catalogue():
            if answers:
                sleep(pause)
            answer = _get(transport, endpoint, path)
            answers.append(answer)
            if endpoint is INFO:
                try:
                    auth.configure(parse_info(answer.body))
                except ParseError:
                    break
    finally:
        transport.close()
    return answers


def _ignore(_endpoint: str, _code: str) -> None:
    """The transport counts requests for the exporter's metrics; a capture has none."""


def _get(transport: Transport, endpoint: Endpoint, path: str) -> Answer:
    try:
        response = transport.get(endpoint.key, path)
    except TransportError as exc:
        return Answer(path, exc.status, error=None if exc.status else str(exc))
    headers = {name.lower(): value for name, value in response.headers.items()}
    return Answer(path, response.status, response.body, headers)


# ------------------------------------------------------------------------------------------------
# Redaction


class Redactor:
    """Learns the identifying values of a capture, then replaces each, everywhere, by its
    stand-in. ``originals`` maps each original to ``(kind, stand-in)``."""

    def __init__(self) -> None:
        self.originals: dict[str, tuple[str, str]] = {}
        self._by_lower: dict[str, str] = {}  # lower case -> stand-in (MAC hex, e-mail domains)
        self._counts: dict[str, int] = {}
        self._pattern: re.Pattern[str] | None = None

    # -- learning -------------------------------------------------------------------------------

    def learn_settings(self, settings: GatewaySettings) -> None:
        """The configuration's credentials and the gateway's address, wherever they turn up."""
        for kind, value in (
            ("serial", settings.serial),
            ("secret", settings.password),
            ("token", settings.token),
            ("token", _read_token_file(settings.token_file)),
            ("email", settings.enlighten_username),
            ("secret", settings.enlighten_password),
        ):
            if value:
                self._add(kind, str(value), configured=True)
        host = urlsplit(settings.host if "://" in settings.host else f"//{settings.host}").hostname
        if host:
            self._add_address(host)

    def learn(self, text: str) -> None:
        """Everything identifying in one body or header value."""
        with contextlib.suppress(ValueError):
            self._walk(json.loads(text), None)
        for serial in XML_SERIAL.findall(text):
            self._add("serial", serial)
        for token in JWT.findall(text):
            self._add("token", token)
        for email in EMAIL.findall(text):
            self._add("email", email)
        for mac in MAC.findall(text):
            self._add("mac", mac)
        for address in _addresses(text):
            self._add_address(address)

    def _walk(self, value: object, key: str | None) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                self._walk(v, str(k))
        elif isinstance(value, list):
            for item in value:
                self._walk(item, key)
        elif key is not None and isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value)
            if SERIAL_KEY.search(key):
                self._add("serial", text)
            elif SITE_KEY.search(key):
                self._add("site", text)
            elif SECRET_KEY.search(key) and isinstance(value, str):
                self._add("secret", text)

    def _add_address(self, host: str) -> None:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if host != "localhost":
                self._add("host", host, configured=True)
            return
        if not _harmless(address):
            self._add("ip", host)

    def _add(self, kind: str, original: str, *, configured: bool = False) -> None:
        """Remember ``original``; short values found in data are left alone (flags, counts,
        words like "owner"), those of the configuration never."""
        original = original.strip()
        if not original or original.lower() in self._by_lower or _is_stand_in(kind, original):
            return
        if not configured and kind in ("serial", "site", "secret") and len(original) < MIN_ID_LENGTH:
            return
        n = self._counts[kind] = self._counts.get(kind, 0) + 1
        stand_in = _stand_in(kind, n, original)
        self.originals[original] = (kind, stand_in)
        self._by_lower[original.lower()] = stand_in
        self._pattern = None

    # -- replacing ------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        if not self.originals:
            return text
        if self._pattern is None:
            # Longest first, so a token wins over a serial inside it; case-insensitive for the
            # hex of MAC addresses and the domains of e-mail addresses.
            ordered = sorted(self.originals, key=len, reverse=True)
            self._pattern = re.compile(
                "|".join(_bounded(o, self.originals[o][0]) for o in ordered), re.IGNORECASE
            )
        return self._pattern.sub(lambda m: self._by_lower[m.group(0).lower()], text)

    def summary(self) -> dict[str, int]:
        """How many values of each kind were replaced."""
        counts: dict[str, int] = {}
        for kind, _ in self.originals.values():
            counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items()))


def _bounded(original: str, kind: str) -> str:
    """The regex of one original. Tokens and e-mail addresses match anywhere; everything else
    only as a whole, not inside a longer number or word (a 6-digit password is not every number
    that contains those digits)."""
    escaped = re.escape(original)
    if kind in ("token", "email"):
        return escaped
    return rf"(?<![0-9A-Za-z]){escaped}(?![0-9A-Za-z])"


def _is_stand_in(kind: str, value: str) -> bool:
    if kind in ("serial", "site"):
        return FAKE_SERIAL.fullmatch(value) is not None
    if kind == "email":
        return value.lower().endswith("@" + FAKE_DOMAIN)
    if kind == "mac":
        return value.lower().startswith(FAKE_MAC_PREFIX)
    if kind == "host":
        return value.lower().endswith("." + FAKE_DOMAIN)
    return value.startswith("redacted-")


def _stand_in(kind: str, n: int, original: str) -> str:
    if kind in ("serial", "site"):
        # Same length (the default password is a serial's last 6 digits), digits only, and a
        # shape no real one has: 9000...n
        width = max(len(original), 8)
        return "9" + f"{n:0{width - 1}d}"
    if kind == "email":
        return f"user{n}@{FAKE_DOMAIN}"
    if kind == "mac":
        return f"{FAKE_MAC_PREFIX}{n // 256:02x}:{n % 256:02x}"
    if kind == "ip":
        if ":" in original:
            return f"2001:db8::{n:x}"
        return f"192.0.2.{n}" if n < 255 else f"198.51.100.{n % 255}"
    if kind == "host":
        return f"gateway{n}.{FAKE_DOMAIN}"
    return f"redacted-{kind}-{n}"


def _harmless(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Addresses that say nothing about anyone: loopback, unspecified, netmasks, broadcast, and
    the stand-ins' own ranges."""
    if address.is_loopback or address.is_unspecified:
        return True
    if any(address in network for network in FAKE_NETWORKS):
        return True
    return str(address).startswith("255.")


def _addresses(text: str) -> Iterator[str]:
    """IP addresses in ``text``, not counting product versions like ``openresty/1.17.8.1``."""
    for match in IPV4.finditer(text):
        if PRODUCT_VERSION.search(text[max(0, match.start() - 40) : match.start()]):
            continue
        try:
            ipaddress.IPv4Address(match.group(0))
        except ValueError:
            continue
        yield match.group(0)
    for match in IPV6.finditer(text):
        candidate = match.group(0)
        if not any(c in "0123456789abcdefABCDEF" for c in candidate):
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield candidate


def _read_token_file(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


# ------------------------------------------------------------------------------------------------
# Writing and checking


def write_capture(out: Path, answers: Sequence[Answer], redactor: Redactor, firmware: str | None) -> None:
    """The folder: every answer redacted, each with its ``_log.json``, and a ``_readme``."""
    for answer in answers:
        redactor.learn(_text(answer.body))
        for name, value in answer.headers.items():
            if name.lower() not in SECRET_HEADERS:
                redactor.learn(value)
    out.mkdir(parents=True, exist_ok=True)
    for answer in answers:
        name = file_name(answer.path)
        log: dict[str, object] = {"headers": _redacted_headers(answer.headers, redactor), "code": answer.code}
        if answer.code is not None:
            (out / name).write_bytes(_bytes(redactor.redact(_text(answer.body))))
        else:
            # No answer: no body file, so a replay answers 404 there, as for a missing endpoint.
            log["error"] = answer.error
        (out / f"{name}{LOG_SUFFIX}").write_text(json.dumps(log, indent=2) + "\n")
    (out / README).write_text(_readme(answers, redactor, firmware))


def _redacted_headers(headers: dict[str, str], redactor: Redactor) -> dict[str, str]:
    return {
        name: "***" if name.lower() in SECRET_HEADERS else redactor.redact(value)
        for name, value in headers.items()
    }


def _readme(answers: Sequence[Answer], redactor: Redactor, firmware: str | None) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Captured by envoy-exporter {__version__} capture on {when}, firmware {firmware or 'unknown'}.",
        "",
        "Redacted (each original replaced by the same stand-in everywhere): "
        + (", ".join(f"{n} {kind}" for kind, n in redactor.summary().items()) or "nothing found"),
        "",
        "Endpoints:",
    ]
    for answer in answers:
        outcome = str(answer.code) if answer.code is not None else f"no answer ({answer.error})"
        lines.append(f"- {answer.path}: {outcome}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Leak:
    file: str
    kind: str
    value: str  # masked: the check's report must not republish what it found

    def __str__(self) -> str:
        return f"{self.file}: {self.kind} {self.value}"


def check_folder(folder: Path, known: Iterable[tuple[str, str]] = ()) -> list[Leak]:
    """Everything in ``folder`` that is, or looks like, an original: each ``(kind, value)`` of
    ``known`` found anywhere, and any serial, site id, token, e-mail, MAC or IP address that is
    not one of the stand-ins' shapes."""
    patterns = [
        (kind, value, re.compile(_bounded(value, kind), re.IGNORECASE)) for kind, value in known if value
    ]
    leaks: list[Leak] = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        text = _text(path.read_bytes())
        found = {(kind, value) for kind, value, pattern in patterns if pattern.search(text)}
        probe = Redactor()
        probe.learn(text)
        found |= {(kind, original) for original, (kind, _) in probe.originals.items() if kind != "host"}
        leaks.extend(Leak(path.name, kind, _mask(value)) for kind, value in sorted(found))
    return leaks


def _mask(value: str) -> str:
    if len(value) <= 6:
        return "*" * len(value)
    return f"{value[:3]}…{value[-2:]} ({len(value)} characters)"


def known_secrets(settings: GatewaySettings, serial: str | None) -> list[tuple[str, str]]:
    """What the configuration (and the gateway's /info) says must never appear in a capture."""
    learner = Redactor()
    learner.learn_settings(settings)
    if serial:
        learner._add("serial", serial, configured=True)
    return [(kind, original) for original, (kind, _) in learner.originals.items()]


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="surrogateescape")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


# ------------------------------------------------------------------------------------------------
# The command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="envoy-exporter capture",
        description=(
            "Read every endpoint the exporter knows from one configured gateway, once and politely, "
            "and write a redacted capture folder (the layout of the shared captures)."
        ),
    )
    p.add_argument("--config.file", dest="config", default="exporter.yml", help="configuration file")
    p.add_argument("--target", help="the gateway: its name, serial or host as configured")
    p.add_argument(
        "--out", required=True, type=Path, help="folder to write (or, with --redact-check, to check)"
    )
    p.add_argument(
        "--pause", type=float, default=DEFAULT_PAUSE_S, help="seconds between two requests (default 1)"
    )
    p.add_argument(
        "--redact-check",
        action="store_true",
        help=(
            "only check the --out folder: list anything that looks like an original serial or secret, "
            "and the configured credentials of --target if given; exit 1 if anything is found"
        ),
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging("warn")  # the auth's and transport's warnings (a refused token, say)
    if args.pause < 0:
        print("envoy-exporter capture: --pause: must not be negative", file=sys.stderr)
        return 2
    settings: Settings | None = None
    gateway: GatewaySettings | None = None
    if not args.redact_check or args.target:
        try:
            settings = load_config(Path(args.config))
        except ConfigError as e:
            print(f"envoy-exporter capture: configuration error: {e}", file=sys.stderr)
            return 2
        gateway = _find(settings, args.target)
        if gateway is None:
            names = ", ".join(g.label for g in settings.gateways)
            if args.target is None:
                print(
                    f"envoy-exporter capture: --target: which gateway? (configured: {names})", file=sys.stderr
                )
                return 2
            print(
                f"envoy-exporter capture: --target: no gateway {args.target!r} (configured: {names})",
                file=sys.stderr,
            )
            return 2
    if args.redact_check:
        if not args.out.is_dir():
            print(f"envoy-exporter capture: --out: {args.out} is not a folder", file=sys.stderr)
            return 2
        known = known_secrets(gateway, gateway.serial) if gateway else []
        return _report(check_folder(args.out, known), args.out)
    assert settings is not None and gateway is not None
    return capture(gateway, settings.state_dir, args.out, args.pause)


@dataclass(frozen=True)
class Capture:
    answers: list[Answer]
    redactor: Redactor  # its originals never leave memory
    firmware: str | None


def take(
    gateway: GatewaySettings, state_dir: Path | None, out: Path, pause: float = DEFAULT_PAUSE_S
) -> Capture:
    """Read, redact and write one capture into ``out``."""
    answers = fetch_all(gateway, state_dir, pause)
    firmware = None
    if answers and answers[0].code == 200:
        with contextlib.suppress(ParseError):
            firmware = parse_info(answers[0].body).firmware
    redactor = Redactor()
    redactor.learn_settings(gateway)
    write_capture(out, answers, redactor, firmware)
    return Capture(answers, redactor, firmware)


def capture(
    gateway: GatewaySettings, state_dir: Path | None, out: Path, pause: float = DEFAULT_PAUSE_S
) -> int:
    """Capture, then check the folder with the originals known; the exit status."""
    if out.exists() and any(out.iterdir()):
        print(f"envoy-exporter capture: --out: {out} is not empty", file=sys.stderr)
        return 2
    result = take(gateway, state_dir, out, pause)
    for answer in result.answers:
        outcome = str(answer.code) if answer.code is not None else f"no answer ({answer.error})"
        print(f"{answer.path}: {outcome}")
    if result.firmware is None:
        print("envoy-exporter capture: /info gave no usable answer; nothing else was asked", file=sys.stderr)
        return 1
    known = [(kind, original) for original, (kind, _) in result.redactor.originals.items()]
    return _report(check_folder(out, known), out)


def _find(settings: Settings, target: str | None) -> GatewaySettings | None:
    if target is None:
        return settings.gateways[0] if len(settings.gateways) == 1 else None
    return next((g for g in settings.gateways if target in (g.label, g.name, g.serial, g.host)), None)


def _report(leaks: list[Leak], folder: Path) -> int:
    if leaks:
        print(f"{folder}: {len(leaks)} value(s) that look like originals; do not share it:", file=sys.stderr)
        for leak in leaks:
            print(f"  {leak}", file=sys.stderr)
        return 1
    print(f"{folder}: no serial, token, cookie, e-mail, site id, MAC or IP address left")
    return 0
