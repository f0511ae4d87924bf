"""What the status page shows of each gateway, read from what the exporter already holds.

Reading the status never asks a gateway anything: it is each client's latest collection and the
power history the client keeps. Values are in base units (watts, joules, ratios); the page
formats them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from envoy_exporter.fleet.registry import Fleet
from envoy_exporter.gateway.endpoints import BY_KEY
from envoy_exporter.snapshot.history import Point, PowerHistory
from envoy_exporter.snapshot.model import EndpointResult, InverterReading, Latest, Reading, Snapshot
from envoy_exporter.snapshot.outcome import Outcome

# A microinverter is silent when its last report is this much older than its newest peer's:
# the gateway polls them every 5 minutes, and at night all of them stop together.
SILENT_AFTER_S = 1800.0


class Client(Protocol):
    """What the status needs of ``gateway.client.GatewayClient``."""

    name: str
    token_expiry: float | None
    history: PowerHistory

    def latest(self) -> Latest: ...

    def credentials_rejected(self) -> dict[str, bool]: ...


@dataclass(frozen=True)
class Inverters:
    reporting: int
    total: int
    silent: tuple[str, ...]  # serials, oldest report first


@dataclass(frozen=True)
class Problem:
    what: str  # in words, naming the address and the cause
    advice: str | None = None  # what to do about it


@dataclass(frozen=True)
class GatewayStatus:
    name: str
    serial: str | None
    firmware: str | None
    up: bool | None  # None: no collection finished yet
    data_age: float | None  # seconds; None: never had data
    token_expiry: float | None  # epoch seconds; None without a token, or a rejected one
    problems: tuple[Problem, ...] = ()
    production_w: float | None = None
    consumption_w: float | None = None
    net_w: float | None = None  # from the grid (positive) or to it (negative)
    production_today_j: float | None = None
    consumption_today_j: float | None = None
    battery_soc: float | None = None
    battery_w: float | None = None  # positive = discharging
    inverters: Inverters | None = None
    history: tuple[Point, ...] = field(default=())
    partial: bool = False  # only production and consumption read yet: the first scrape reads the rest

    @property
    def last_error(self) -> str | None:
        return "; ".join(problem.what for problem in self.problems) or None


def fleet_status(fleet: Fleet, now: float) -> list[GatewayStatus]:
    return [gateway_status(client, now) for client in fleet.clients()]


def gateway_status(client: Client, now: float) -> GatewayStatus:
    latest = client.latest()
    snapshot = latest.snapshot
    rejected = {credential for credential, refused in client.credentials_rejected().items() if refused}
    token_expiry = None if "token" in rejected else client.token_expiry
    if not snapshot.endpoints:  # the empty snapshot a client starts with
        return GatewayStatus(client.name, None, None, None, None, token_expiry)
    info = snapshot.info
    has_data = snapshot.production is not None
    return GatewayStatus(
        name=client.name,
        serial=info.serial if info else None,
        firmware=info.firmware if info else None,
        up=latest.fresh,
        data_age=max(0.0, now - snapshot.collected_at) if has_data else None,
        token_expiry=token_expiry,
        problems=_problems(snapshot.endpoints, rejected),
        production_w=_power(snapshot.production.total.power_w) if snapshot.production else None,
        consumption_w=snapshot.consumption_total.total.power_w if snapshot.consumption_total else None,
        net_w=snapshot.consumption_net.total.power_w if snapshot.consumption_net else None,
        production_today_j=_today(snapshot.production.total) if snapshot.production else None,
        consumption_today_j=_today(snapshot.consumption_total.total) if snapshot.consumption_total else None,
        battery_soc=_battery_soc(snapshot),
        battery_w=_battery_power(snapshot),
        inverters=_inverters(snapshot.inverters),
        history=tuple(client.history.points(now)),
        partial=snapshot.partial,
    )


def _problems(endpoints: dict[str, EndpointResult], rejected: set[str]) -> tuple[Problem, ...]:
    """Each distinct failure once, in words: the endpoints it costs, the cause, where the
    request went, and what to do. Endpoints that failed alike are one problem (a refused password
    costs every protected endpoint; a gateway that does not answer, all of them)."""
    causes: dict[str, list[tuple[str, EndpointResult]]] = {}
    for key, result in endpoints.items():
        if result.outcome.is_error:
            causes.setdefault(result.detail or result.outcome.words, []).append((key, result))
    problems = []
    for cause, failed in causes.items():
        names = _names([_title(key) for key, _ in failed])
        urls = {result.url for _, result in failed if result.url}
        where = urls.pop() if len(urls) == 1 else _site(next(iter(urls))) if urls else None
        what = f"{names}: {cause}" + (f" ({where})" if where else "")
        problems.append(Problem(what, _advice(failed[0][1].outcome, rejected)))
    return tuple(problems)


def _names(titles: list[str]) -> str:
    """ "inverter list, CT meter settings", or "inverter list, CT meter settings and 5 more"."""
    if len(titles) <= 3:
        return ", ".join(titles)
    return f"{titles[0]}, {titles[1]} and {len(titles) - 2} more"


def _title(key: str) -> str:
    endpoint = BY_KEY.get(key)
    return endpoint.title if endpoint is not None else key


def _site(url: str) -> str:
    """``https://192.0.2.5/ivp/meters`` -> ``https://192.0.2.5``: where several requests went."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


_ADVICE = {
    "password": (
        "Set username and password for this gateway in the configuration: before firmware 7 the "
        "default is user envoy with the last six digits of the gateway's serial; user installer "
        "gets the password generated from the serial when none is given."
    ),
    "token": (
        "Give a new token (token or token_file; the exporter reads a changed token_file by itself), "
        "or set enlighten_username and enlighten_password so that the exporter fetches and renews it."
    ),
    "enlighten": (
        "Check enlighten_username and enlighten_password: log in at enlighten.enphaseenergy.com to test them."
    ),
}
_TLS_ADVICE = (
    "The gateway's certificate is not trusted: set tls.ca_file to it (and tls.server_name to the "
    "name it carries), or leave tls.verify at its default, false, for this gateway."
)
_NO_ANSWER_ADVICE = (
    "Check that the gateway is on and on the network at this address, and reachable from this machine "
    "(a fixed DHCP lease keeps its address from changing)."
)


def _advice(outcome: Outcome, rejected: set[str]) -> str | None:
    if outcome in (Outcome.TIMEOUT, Outcome.UNREACHABLE):
        return _NO_ANSWER_ADVICE
    if outcome is Outcome.TLS:
        return _TLS_ADVICE
    if outcome in (Outcome.UNAUTHORIZED, Outcome.WITHHELD):
        return (
            " ".join(_ADVICE[credential] for credential in sorted(rejected) if credential in _ADVICE) or None
        )
    return None


def _power(watts: float | None) -> float | None:
    """Production as a person reads it: the few watts a meter reads backwards at night are 0."""
    return None if watts is None else max(0.0, watts)


def _today(reading: Reading) -> float | None:
    """The gateway's own figure for today, unless it is plainly not today's: several firmware
    report the lifetime (or the last seven days) there."""
    today = reading.today_j
    if today is None:
        return None
    for bigger in (reading.last_seven_days_j, reading.lifetime_j):
        if bigger is not None and bigger > 0 and today >= bigger:
            return None
    return today


def _battery_soc(snapshot: Snapshot) -> float | None:
    if snapshot.storage is not None and snapshot.storage.soc_ratio is not None:
        return snapshot.storage.soc_ratio
    socs = [b.soc_ratio for b in snapshot.batteries if b.soc_ratio is not None]
    return sum(socs) / len(socs) if socs else None


def _battery_power(snapshot: Snapshot) -> float | None:
    powers = [group.power_w for group in snapshot.storage_groups if group.power_w is not None]
    return sum(powers) if powers else None


def _inverters(inverters: Sequence[InverterReading]) -> Inverters | None:
    if not inverters:
        return None
    reports = [i.last_report_s for i in inverters if i.last_report_s is not None]
    if not reports:
        return Inverters(len(inverters), len(inverters), ())
    newest = max(reports)
    silent = sorted(
        (i for i in inverters if i.last_report_s is None or i.last_report_s < newest - SILENT_AFTER_S),
        key=lambda i: i.last_report_s or 0.0,
    )
    return Inverters(len(inverters) - len(silent), len(inverters), tuple(i.serial for i in silent))
