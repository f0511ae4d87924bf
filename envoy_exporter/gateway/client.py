"""One gateway: detection, collection and the snapshot the collector exports.

Gateways are small embedded devices that reboot when hammered, so the client asks as little as it
can: each endpoint at most once per its cache family's lifetime, only the endpoints this gateway
has (an answer of 404, or 401 to credentials the gateway accepts elsewhere, is remembered), and
only those that add something (no meter readings without an enabled meter, no battery endpoints
without batteries, no ``/api/v1/production`` while the production CT is live).

Detection is re-done when ``/info`` (re-read hourly) shows new firmware: firmware is pushed
without notice and changes which endpoints exist and what they mean.

The client is the one owner of its gateway's concurrency and staleness. ``start`` runs at most one
collection at a time, on a worker thread of its own and within the client's own deadline
(``COLLECTION_DEADLINE``), never a caller's: a scrape that stops waiting takes nothing from a
later one that waits longer. ``latest`` tells what the newest finished collection has to show.
Neither raises. A bad endpoint costs only its own part of the snapshot and one warning naming it;
a gateway that is down yields the last good snapshot (its ``collected_at`` tells the age) with
``endpoints`` saying what went wrong, and ``fresh`` False.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from pathlib import Path

from envoy_exporter.config.settings import COLLECTION_DEADLINE, GatewaySettings
from envoy_exporter.fleet.labels import Labels
from envoy_exporter.gateway.auth.accounts import EnlightenAccounts
from envoy_exporter.gateway.auth.scheme import Auth, CredentialsWithheld
from envoy_exporter.gateway.auth.serial_claims import SerialClaims
from envoy_exporter.gateway.auth.strategies import Rejection
from envoy_exporter.gateway.cache import Pool, SingleFlight, TTLCache
from envoy_exporter.gateway.endpoints import (
    BY_KEY,
    DEVICE_DATA,
    INFO,
    PRODUCTION_JSON,
    TARIFF,
    Endpoint,
)
from envoy_exporter.gateway.net.errors import TransportError
from envoy_exporter.gateway.net.transport import Transport
from envoy_exporter.logs import Condition
from envoy_exporter.snapshot.assemble import Assembler
from envoy_exporter.snapshot.counters import KINDS, CounterKeeper, state_path
from envoy_exporter.snapshot.history import PowerHistory
from envoy_exporter.snapshot.model import (
    EndpointResult,
    GatewayInfo,
    Latest,
    Readings,
    Snapshot,
)
from envoy_exporter.snapshot.money import MoneyKeeper
from envoy_exporter.snapshot.money import state_path as money_state_path
from envoy_exporter.snapshot.outcome import Outcome
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.plan import FIRST, Plan, single_phase

log = logging.getLogger(__name__)

# production.json where the details URL does not exist.
PLAIN_PATH = PRODUCTION_JSON.paths[1]
# production.json is JSON from firmware 4; the legacy Envoy's firmware 3 serves HTML there.
JSON_FROM = (4,)
# One request without an answer costs its endpoint's part; this many in a row mean the gateway is
# down or rebooting, and asking the rest (each waiting out the timeout) would only delay it.
SILENT_LIMIT = 2
_NOTHING_ELSE = "nothing else is asked until it answers"
_KNOWN_IDENTITY = "the known identity stays in use"
# The outcomes of a request that got no HTTP answer at all.
NO_ANSWER = frozenset({Outcome.TIMEOUT, Outcome.UNREACHABLE, Outcome.TLS})
_COLLECTION = "collection"  # a trouble of the whole collection, not of one endpoint
_ANSWER = "answer"  # the gateway gives no HTTP answer at all


@dataclass
class _Collection:
    """One collection in progress: what it got so far. Read by callers whose deadline passed
    while the worker thread still writes, hence the lock."""

    started: float = 0.0  # on the client's clock
    deadline: float = float("inf")
    plan: Plan | None = None
    readings: Readings = field(default_factory=Readings)
    results: dict[str, EndpointResult] = field(default_factory=dict)
    current: str | None = None  # the endpoint being asked right now
    fetched: int = 0  # endpoints that answered usable data (not from the cache)
    failed: int = 0
    silent: int = 0  # requests in a row that got no HTTP answer at all
    authorized: bool = False  # a credential-protected endpoint answered 2xx
    answered: bool = False  # the gateway gave an HTTP answer (any status) to some request
    no_answer: EndpointResult | None = None  # the first request that got no HTTP answer at all
    unauthorized: list[Endpoint] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    from_cache: bool = False  # on a caller's thread: the gateway may not be asked
    left_out: bool = False  # the start-up's: endpoints were left to the next collection

    def record(self, key: str, result: EndpointResult, value: object = None) -> None:
        with self.lock:
            self.results[key] = result
            if result.ok:
                self.readings = self.readings.with_answer(BY_KEY[key], value)

    def view(self) -> tuple[dict[str, EndpointResult], str | None]:
        with self.lock:
            return dict(self.results), self.current


class _NeedsGateway(Exception):
    """A collection on a caller's thread came to a request: it goes on on a worker."""


@dataclass(frozen=True)
class _Outcome:
    result: EndpointResult
    value: object = None
    html: bool = False  # the body was an HTML page where JSON belongs


class GatewayClient:
    """Collects one gateway; see the module docstring."""

    def __init__(
        self,
        settings: GatewaySettings,
        state_dir: Path | None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        labels: Labels | None = None,
        accounts: EnlightenAccounts | None = None,
        claims: SerialClaims | None = None,
        on_serial: Callable[[], None] | None = None,
        workers: Pool | None = None,
    ) -> None:
        self._settings = settings
        self._on_serial = on_serial  # told when /info names this gateway's serial
        self._clock = clock
        self._wall = wall
        self._counts: Counter[tuple[str, str]] = Counter()
        self._counts_lock = threading.Lock()
        self._asked = 0  # requests sent to the gateway, every endpoint and outcome
        self._auth = Auth(
            settings, state_dir, self._record, clock=clock, wall=wall, claims=claims, accounts=accounts
        )
        self._transport = Transport(settings, self._auth, self._record, clock=clock)
        self._cache = TTLCache(settings.cache_ttl, clock)
        # production.json's powers serve as long as production figures do; past that, on its
        # slow cadence, the CT readings' powers stand in (see assemble).
        self._assembler = Assembler(power_max_age=settings.cache_ttl.get(PRODUCTION_JSON.family, 0.0))
        self._state_dir = state_dir
        self._keeper: CounterKeeper | None = None  # made once /info has fixed the name
        self._money: MoneyKeeper | None = None  # likewise
        self._flight: SingleFlight[Snapshot] = SingleFlight(
            self._run, name=f"collect-{settings.label}", pool=workers
        )
        self._info: GatewayInfo | None = None
        self._unsupported: dict[str, EndpointResult] = {}  # endpoints this gateway does not have
        self._retry_hourly: set[str] = set()  # ... of which those asked again with the next /info
        self._production_path: str | None = None  # the production.json URL that answered
        self._run_state = _Collection()
        self._cache_answers_until = -math.inf  # see ``_cached_until``
        self._last_good: Snapshot | None = None
        # Data age counts from here until the gateway first answers: the exporter's start for a
        # configured gateway.
        self._born = wall()
        self._latest = Latest(Snapshot(collected_at=self._born), fresh=False)
        # One warning per endpoint (or for the collection) when its trouble starts or changes,
        # and one line when it is over: a gateway down for a day is not a warning per scrape.
        self._troubles: dict[str, Condition] = {}
        self._labels = labels if labels is not None else Labels()
        self._serial: str | None = None  # the serial /info reported, once it may name this gateway
        self._conflict: str | None = None  # the host that holds the label this gateway would take
        self._closed = False
        # A configured label (the configuration checked it is unique) is held from the start, and
        # so is the host an unnamed gateway goes by until its /info answers: no other gateway may
        # report it as its serial meanwhile. Both are taken over (from the client a reload
        # replaces, or from a gateway that reported it as its serial).
        self._labels.claim(
            settings.label, self, settings.host, take=not settings.discovered, weak=settings.discovered
        )
        self.last_duration: float | None = None
        self.history = PowerHistory()  # the last hour of power, for the status page

    # ----------------------------------------------------------------------------------------
    # The interface

    @property
    def name(self) -> str:
        return self._settings.display_name(self._serial)

    @property
    def host(self) -> str:
        return self._settings.host

    @property
    def serial(self) -> str | None:
        """The serial the gateway's ``/info`` reported, once it may name this gateway."""
        return self._serial

    @property
    def auth_scheme(self) -> str | None:
        """The auth scheme, "token", "digest" or "none"; None until /info was read."""
        return self._auth.scheme if self._info is not None else None

    @property
    def token_expiry(self) -> float | None:
        return self._auth.token_expiry

    def credentials_rejected(self) -> dict[str, bool]:
        """Per credential in use ("password", "token", "enlighten"): refused now?"""
        return self._auth.credentials_rejected() if self._info is not None else {}

    def requests(self) -> dict[tuple[str, str], int]:
        with self._counts_lock:
            return dict(self._counts)

    def counter_corrections(self) -> dict[str, int]:
        """Corrections the counter keeper made to this gateway's lifetime counters, by kind."""
        return self._keeper.corrections_of(self.name) if self._keeper else dict.fromkeys(KINDS, 0)

    def start(self, here: bool = False, *, first: bool = False) -> Future[Snapshot]:
        """The collection in flight, or a new one; its result is what ``latest`` shows once it
        is done. It runs within the client's deadline, whoever waits for it and for how long.

        ``here``: a new collection starts on the caller's thread and stays there while the
        cache answers; the first request it would send to the gateway sends it to a worker
        instead (it starts afresh there), so the caller waits for the gateway only as long as
        it chooses. A scrape whose data is all cached then costs no thread hop. Where the last
        collection shows that the cache cannot answer now (an entry it read has expired, or it
        read what the cache does not keep), the collection starts on a worker at once.

        ``first``: the start-up's collection, which reads the production and consumption
        series only (``plan.FIRST``); the rest follows with the next collection. A caller
        without ``first`` always gets a whole collection: one that finds the start-up's in
        flight shares it if it has left nothing out yet, else waits for the whole one after it."""
        if here and self._clock() < self._cache_answers_until:
            return self._flight.try_here(self._run_from_cache)
        return self._flight.submit(light=first)

    def latest(self) -> Latest:
        """The snapshot of the newest finished collection, or the last good one kept while the
        gateway fails; an empty one (``collected_at`` = the client's start) before any answer."""
        return self._latest

    def reusable_for(self) -> float:
        """Seconds the latest snapshot may still be what a scrape gets: while the cache holds all
        that its collection read (``_cached_until``), a collection asks the gateway nothing and
        hands the same snapshot back; after that a new snapshot comes of it."""
        return max(0.0, self._cache_answers_until - self._clock())

    def collect(self, timeout: float | None = None) -> Snapshot:
        """``start``, and the snapshot once it is done; a caller whose ``timeout`` passes first
        gets the last good snapshot, marked with the progress of the collection that goes on."""
        try:
            return self.start().result(timeout=timeout)
        except FutureTimeout:
            return self._meanwhile(f"no answer within the {timeout:g} s deadline; collection continues")
        except Exception:  # the worker thread could not start
            log.exception("%s: collection failed", self.name)
            return self._meanwhile("internal error")

    def close(self) -> None:
        self._closed = True
        self._labels.release(self)
        self._transport.close()
        self._auth.close()

    # ----------------------------------------------------------------------------------------
    # One collection (on the single-flight worker thread)

    def _record(self, endpoint: str, code: str) -> None:
        with self._counts_lock:
            self._counts[(endpoint, code)] += 1
            self._asked += 1

    def _run_from_cache(self) -> Snapshot | None:
        """A collection that asks the gateway nothing; None as soon as it would have to."""
        try:
            return self._run(from_cache=True)
        except _NeedsGateway:
            return None

    def _run(self, from_cache: bool = False) -> Snapshot:
        started = self._clock()
        run = _Collection(started=started, deadline=started + COLLECTION_DEADLINE, from_cache=from_cache)
        self._run_state = run
        try:
            latest = self._collect(run)
        except _NeedsGateway:
            raise
        except Exception as exc:
            log.exception("%s: collection failed at %s", self.name, run.current or "start")
            run.record(
                run.current or "collect",
                EndpointResult(Outcome.INTERNAL, f"internal error: {type(exc).__name__}"),
            )
            latest = Latest(self._fallback(run), fresh=False)
        finally:
            # The plan reads the run's readings: kept, the pair would be a reference cycle,
            # which only the garbage collector frees, and never once it is frozen (``freezer``).
            run.plan = None
        self.last_duration = self._clock() - started
        self._cache_answers_until = self._cached_until(run)
        self._note_recoveries(run)
        self._latest = latest
        if latest.fresh:
            self.history.add(*_powers(latest.snapshot))
        return latest.snapshot

    def _cached_until(self, run: _Collection) -> float:
        """Until when the cache holds all that ``run`` read, so that the next collection, if it
        reads the same, need not ask the gateway: the earliest expiry of those entries, -inf
        where it read what the cache does not keep (a family cached for 0 s, a failure). Only
        where the next scrape's collection starts depends on it (``start``), not what it reads."""
        results, _ = run.view()
        until = math.inf
        for key, result in results.items():
            if result.outcome is not Outcome.UNSUPPORTED:  # not asked again
                until = min(until, self._cache.expires_at(key))
        return until

    def _collect(self, run: _Collection) -> Latest:
        asked = self._asked
        info = self._refresh_info(run)
        if info is None:
            return Latest(self._fallback(run), fresh=False)
        run.readings = run.readings.with_answer(INFO, info)  # the known identity, where /info failed
        self._fetch_data(info, run)
        self._settle_unauthorized(run)
        run.current = None
        if self._asked == asked and self._latest.fresh:
            # Nothing was asked of the gateway: every reading came from the cache, so this is
            # the last snapshot again. Keeping the very object (and its collection time) lets
            # the exposition serve the bytes it rendered for it, and the data age keep counting.
            return self._latest
        assembled = self._assembler.assemble(run.readings, run.results, self._wall())
        snapshot = self._correct_counters(assembled, settle=not run.left_out)
        if run.left_out:
            snapshot = replace(snapshot, partial=True)
        if snapshot.up:
            self._last_good = snapshot
        elif run.fetched == 0 and run.failed > 0:
            # the gateway is down: keep showing what it last said
            return Latest(self._fallback(run), fresh=False)
        return Latest(snapshot, fresh=snapshot.up)

    def _correct_counters(self, snapshot: Snapshot, settle: bool = True) -> Snapshot:
        """Lifetime counters kept monotonic and true (wraps, zeros, resets, jumps), once per
        fresh collection, and the keeper's state saved before the snapshot is served. The keeper
        is made at the first assembly: /info has fixed the gateway's name by then, and the name
        keys its series and names its state file. ``settle``: see ``_price``."""
        if self._keeper is None:
            path = state_path(self._state_dir, self.name) if self._state_dir else None
            self._keeper = CounterKeeper(path)
        corrected = self._keeper.apply(self.name, snapshot, self._settings.max_power_w)
        self._keeper.save()
        return self._price(corrected, settle)

    def _price(self, snapshot: Snapshot, settle: bool) -> Snapshot:
        """The prices in force, and the grid's cost and credit from the corrected counters;
        saved, like the counters, before the snapshot is served. Without ``settle`` (the
        start-up's collection, which leaves the gateway's tariff and time zone to the next one)
        no energy is priced: what flowed while the exporter was down waits for them."""
        if self._money is None:
            path = money_state_path(self._state_dir, self.name) if self._state_dir else None
            self._money = MoneyKeeper(path)
        priced = self._money.apply(snapshot, self._settings.tariff, self._settings.timezone, settle=settle)
        self._money.save()
        return priced

    def _fallback(self, run: _Collection) -> Snapshot:
        results, _ = run.view()
        return replace(self._kept(), endpoints=results)

    def _kept(self) -> Snapshot:
        """The last good snapshot; before there is one, an empty one as old as the client."""
        return self._last_good or Snapshot(collected_at=self._born, info=self._info)

    def _meanwhile(self, why: str) -> Snapshot:
        """For a caller that stops waiting: the last good snapshot, marked with the progress of
        the collection still running."""
        results, current = self._run_state.view()
        if current is not None:
            results[current] = EndpointResult(Outcome.TIMEOUT, why)
        return replace(self._kept(), endpoints=results)

    # ----------------------------------------------------------------------------------------
    # Detection

    def _refresh_info(self, run: _Collection) -> GatewayInfo | None:
        """/info from the cache, or fetched when it expired (hourly by default). Without an
        answer the known identity stays in use."""
        if self._info is not None and self._cache.get(INFO.key, run.started) is not None:
            run.record(INFO.key, EndpointResult(Outcome.CACHED), self._info)
            return self._claimed(run, self._info)
        outcome = self._request(run, INFO, INFO.path)
        if not outcome.result.ok:
            run.failed += 1
            known = self._info is not None
            if run.silent == 0:  # an answer, but not /info: said once, until /info answers
                self._warn(INFO, outcome.result, _KNOWN_IDENTITY if known else _NOTHING_ELSE)
            return self._claimed(run, self._info) if known else None
        info = outcome.value
        assert isinstance(info, GatewayInfo)
        self._adopt(info)
        self._cache.put(INFO.key, INFO.family, info, run.started)
        return self._claimed(run, info)

    def _claimed(self, run: _Collection, info: GatewayInfo) -> GatewayInfo | None:
        """``info``, unless this gateway is labelled by the serial it reports and another
        gateway of the exporter already goes by that label: then None and an error naming both
        hosts, logged once. One label's series must never be served twice."""
        if self._settings.label_configured and not self._settings.discovered:
            self._learn_serial(info.serial)
            return info
        label = self._settings.label if self._settings.discovered else info.serial
        holder = self._labels.claim(label, self, self._settings.host, weak=self._settings.discovered)
        if self._closed:
            # A scrape that took the client list before a reload may run one more collection of
            # a closed client: it must not keep the label its successor needs. (Checked after
            # the claim: a close() between a check and the claim would leave the label held.)
            self._labels.release(self)
        if holder is None:
            if self._conflict is not None:
                log.info("%s: serial %s is this gateway's alone again", info.serial, info.serial)
            self._conflict = None
            self._learn_serial(info.serial)
            return info
        detail = f"serial {info.serial} is already served by the gateway at {holder}"
        if self._conflict != holder:
            log.error(
                "%s: the gateway at %s reports serial %s, which the gateway at %s already serves; "
                "its series are left out until one of them is reconfigured",
                self.name,
                self._settings.host,
                info.serial,
                holder,
            )
        self._conflict = holder
        run.record(INFO.key, EndpointResult(Outcome.CONFLICT, detail))
        run.failed += 1
        return None

    def _learn_serial(self, serial: str) -> None:
        changed = serial != self._serial
        self._serial = serial
        if changed and self._on_serial is not None:
            self._on_serial()

    def _adopt(self, info: GatewayInfo) -> None:
        """New firmware (or the first /info): probe every endpoint afresh. Same firmware: give
        the endpoints that answered 401 another chance, credentials may have changed."""
        previous = self._info
        self._info = info
        self._auth.configure(info)
        self._assembler.note_firmware(info)  # before the plan consults its source decisions
        if previous is not None and (previous.firmware, previous.serial) == (info.firmware, info.serial):
            for key in self._retry_hourly:
                self._unsupported.pop(key, None)
            self._retry_hourly.clear()
            return
        if previous is not None:
            log.info(
                "%s: firmware changed from %s to %s; detecting the endpoints again",
                self.name,
                previous.firmware,
                info.firmware,
            )
        self._unsupported.clear()
        self._retry_hourly.clear()
        self._cache.clear()
        self._production_path = None

    def _available(self, run: _Collection, endpoint: Endpoint) -> bool:
        """False for an endpoint this gateway is known not to have (recorded as such)."""
        known = self._unsupported.get(endpoint.key)
        if known is not None:
            run.record(endpoint.key, known)
        return known is None

    def _mark_unsupported(
        self, run: _Collection, endpoint: Endpoint, answer: str, *, hourly: bool = False
    ) -> None:
        """Stop asking ``endpoint``: until the firmware changes, or with ``hourly`` until the
        next /info (for a 401: the credentials may change). This collection already shows it as
        not on this gateway: an endpoint the firmware lacks is never an error, from the first
        collection on."""
        until = "with the next /info" if hourly else "after a firmware change"
        detail = f"answered {answer}; asked again {until}"
        log.info(
            "%s: %s (%s) is not available on this gateway: %s", self.name, endpoint.key, endpoint.path, detail
        )
        self._unsupported[endpoint.key] = EndpointResult(Outcome.UNSUPPORTED, detail)
        run.record(endpoint.key, self._unsupported[endpoint.key])
        if hourly:
            self._retry_hourly.add(endpoint.key)

    # ----------------------------------------------------------------------------------------
    # What to ask

    def _fetch_data(self, info: GatewayInfo, run: _Collection) -> None:
        """Ask, in the plan's order, each endpoint this gateway has and this collection can use."""
        run.plan = plan = Plan(info, lambda: run.readings, self._assembler, self._unsupported)
        for endpoint in plan.endpoints():
            if run.silent >= SILENT_LIMIT:
                # The gateway's own trouble says it does not answer; the rest wait for the next one.
                log.debug("%s: the other endpoints wait for the next collection", self.name)
                return
            if self._clock() >= run.deadline:
                self._trouble(_COLLECTION).failed(
                    f"{self.name}: a collection ran out of its {COLLECTION_DEADLINE:g} s; the other "
                    "endpoints wait for the next one"
                )
                return
            if not self._available(run, endpoint):
                continue
            if self._left_for_later(run, endpoint):
                continue
            if endpoint is PRODUCTION_JSON:
                self._fetch_production_json(info, run)
            else:
                self._fetch(run, endpoint)

    def _left_for_later(self, run: _Collection, endpoint: Endpoint) -> bool:
        """The start-up's collection leaves each endpoint outside ``FIRST`` to the next one
        (unless the cache has it): a fleet's first data comes sooner, and a scrape meanwhile
        waits for a whole collection (see ``start``)."""
        if endpoint.key in FIRST or self._cache.get(endpoint.key, run.started) is not None:
            return False
        if not self._flight.light():
            return False
        run.left_out = True
        return True

    # ----------------------------------------------------------------------------------------
    # Asking

    def _fetch_production_json(self, info: GatewayInfo, run: _Collection) -> None:
        """``?details=1`` (it adds the per-phase lines), else the plain URL: remembered when the
        details URL does not exist (404), used for this collection only when the details URL
        answered a bad body. A single-phase CT system gets the plain URL: its one line would
        only repeat the totals, and the gateway computes the details for nothing. No
        production.json at all: 404 on both, or HTML on firmware 3 (the legacy Envoy's pages)."""
        endpoint = PRODUCTION_JSON
        if self._from_cache(run, endpoint):
            return
        path = self._production_path
        if single_phase(run.readings.meters or ()):
            path = PLAIN_PATH
        if path is not None:
            self._finish(run, endpoint, self._request(run, endpoint, path))
            return
        details = self._request(run, endpoint, PRODUCTION_JSON.path)
        if details.result.outcome not in (Outcome.UNSUPPORTED, Outcome.BAD_DATA):
            if details.result.ok:
                self._production_path = PRODUCTION_JSON.path
            self._finish(run, endpoint, details)  # a struggling gateway is not asked twice
            return
        if details.html and info.version < JSON_FROM:
            # The legacy Envoy's page: the query changes nothing, the plain URL serves it too.
            self._mark_unsupported(run, endpoint, "HTML, not JSON")
            return
        plain = self._request(run, endpoint, PLAIN_PATH)
        if plain.result.ok and details.result.outcome is Outcome.UNSUPPORTED:
            self._production_path = PLAIN_PATH
        if not plain.result.ok and _no_production_json(info, details, plain):
            self._mark_unsupported(run, endpoint, "HTML, not JSON" if details.html else "404")
            return
        better = plain.result.ok or details.result.outcome is Outcome.UNSUPPORTED
        self._finish(run, endpoint, plain if better else details)

    def _fetch(self, run: _Collection, endpoint: Endpoint) -> None:
        if not self._from_cache(run, endpoint):
            self._finish(run, endpoint, self._request(run, endpoint, endpoint.path))

    def _finish(self, run: _Collection, endpoint: Endpoint, outcome: _Outcome) -> None:
        """Cache a usable answer; account for a failed one (recorded as the cause to show)."""
        run.record(endpoint.key, outcome.result, outcome.value)
        if outcome.result.ok:
            family = run.plan.family(endpoint) if run.plan else endpoint.family
            self._cache.put(endpoint.key, family, outcome.value, run.started)
        else:
            self._failed(run, endpoint, outcome.result)

    def _from_cache(self, run: _Collection, endpoint: Endpoint) -> bool:
        entry = self._cache.get(endpoint.key, run.started)
        if entry is None:
            return False
        age = run.started - entry.fetched_at
        run.record(endpoint.key, EndpointResult(Outcome.CACHED, age_s=age), entry.value)
        return True

    def _request(self, run: _Collection, endpoint: Endpoint, path: str) -> _Outcome:
        """GET and parse; the result goes into ``run``."""
        if run.from_cache:
            # Nothing was changed yet but this collection's own record: it starts afresh.
            raise _NeedsGateway
        run.current = endpoint.key
        withheld = self._auth.withheld(endpoint.key)  # no token, or rejected and backing off
        # The transport's own timeout, cut to what is left of the collection's deadline.
        timeout = min(self._settings.timeout, max(run.deadline - self._clock(), 0.0))
        try:
            if withheld is not None:
                raise CredentialsWithheld(withheld)
            response = self._transport.get(endpoint.key, path, timeout=timeout)
        except TransportError as exc:  # CredentialsWithheld too: the outcome says so, the detail why
            # The URL says where the request went, or, withheld, which gateway it was for.
            result = EndpointResult(exc.outcome, exc.detail, url=self._transport.url(path))
            outcome = _Outcome(result)
        else:
            try:
                outcome = _Outcome(EndpointResult(Outcome.OK), endpoint.parse(response.body))
            except Exception as exc:  # ParseError, or a parser bug: either costs this endpoint only
                reason = str(exc) if isinstance(exc, ParseError) else f"{type(exc).__name__} in the parser"
                html = response.body.lstrip()[:1] == b"<"
                cause = f"an answer that cannot be read: {reason}"
                failed = EndpointResult(Outcome.BAD_DATA, cause, url=self._transport.url(path))
                outcome = _Outcome(failed, html=html)
        run.record(endpoint.key, outcome.result, outcome.value)
        self._note_answer(run, outcome.result)
        if outcome.result.ok:
            run.fetched += 1
            if endpoint is not INFO and self._auth.protects(endpoint):
                run.authorized = True
                self._auth.accepted()
        return outcome

    def _note_answer(self, run: _Collection, result: EndpointResult) -> None:
        """Whether the gateway answers at all, judged once the collection is over
        (``_note_recoveries``): a collection without any HTTP answer is the gateway's trouble
        (told once, however many scrapes it lasts), one with an answer ends it."""
        if result.outcome in NO_ANSWER:
            run.silent += 1
            run.no_answer = run.no_answer or result
        elif result.outcome is not Outcome.WITHHELD:
            run.silent = 0
            run.answered = True

    def _failed(self, run: _Collection, endpoint: Endpoint, result: EndpointResult) -> None:
        if result.outcome is Outcome.UNSUPPORTED:
            self._mark_unsupported(run, endpoint, "404")
        elif result.outcome is Outcome.WITHHELD:
            run.failed += 1  # the auth module (or the transport) logs each change of state
        elif result.outcome is Outcome.UNAUTHORIZED:
            run.unauthorized.append(endpoint)  # decided once the collection shows whether credentials work
        elif endpoint is DEVICE_DATA and result.outcome is Outcome.BAD_DATA:
            # Typically a list cut at deviceDataLimit (over 50 microinverters): that does not
            # mend itself, and /api/v1/production/inverters stands in for it.
            self._warn(endpoint, result, "detail series; /api/v1/production/inverters stands in")
            self._mark_unsupported(run, endpoint, "an unusable body", hourly=True)
        elif endpoint.family == TARIFF.family and result.outcome is Outcome.BAD_DATA:
            # A settings page that is not JSON (an HTML page on some firmware) stays so; it is
            # asked again with the next /info instead of on every scrape.
            self._warn(endpoint, result)
            self._mark_unsupported(run, endpoint, "an unusable body", hourly=True)
        else:
            run.failed += 1
            if result.outcome not in NO_ANSWER:  # no answer at all: the gateway's condition says it
                self._warn(endpoint, result)

    def _settle_unauthorized(self, run: _Collection) -> None:
        """A 401 beside endpoints that accepted the credentials means this endpoint needs more
        rights (the installer user, an installer token): remember it until the next /info. With
        no endpoint accepting them it is the credentials: the auth judges it (once per
        collection), backs off where its scheme does, and gives the cause to show."""
        rejection: Rejection | None = None
        judged = False
        for endpoint in run.unauthorized:
            result = run.results[endpoint.key]
            if self._auth.installer_only(endpoint.key):
                self._mark_unsupported(
                    run, endpoint, "401 (only the installer user may read it)", hourly=True
                )
            elif run.authorized:
                self._mark_unsupported(run, endpoint, "401", hourly=True)
            else:
                run.failed += 1
                if not judged:
                    rejection, judged = self._auth.rejected(), True
                if rejection is not None:  # else the auth said why, once
                    result = replace(result, detail=rejection.reason)
                    run.record(endpoint.key, result)  # the status page says why, too
                    if rejection.warn:
                        self._warn(endpoint, result)

    def _warn(self, endpoint: Endpoint, result: EndpointResult, left_out: str | None = None) -> None:
        """An endpoint that fails: said when it starts (or its cause changes), and when it ends."""
        self._trouble(endpoint.key).failed(
            f"{self.name}: the {endpoint.title} failed: {result}; left out: {left_out or endpoint.left_out}"
        )

    def _trouble(self, key: str) -> Condition:
        return self._troubles.setdefault(key, Condition(log, clock=self._clock))

    def _note_recoveries(self, run: _Collection) -> None:
        if run.no_answer is not None and not run.answered:
            then = "its last data is served meanwhile" if self._last_good else _NOTHING_ELSE
            self._trouble(_ANSWER).failed(
                f"{self.name}: the gateway does not answer: {run.no_answer}; {then}"
            )
        elif run.answered and _ANSWER in self._troubles:
            self._troubles[_ANSWER].recovered("%s: the gateway answers again", self.name)
        results, _ = run.view()
        if run.answered:  # the gateway answers, but not these: each one's own trouble
            for key, result in results.items():
                if result.outcome in NO_ANSWER and key in BY_KEY:
                    self._warn(BY_KEY[key], result)
        for key, result in results.items():
            if result.ok and key in self._troubles:
                title = BY_KEY[key].title if key in BY_KEY else key
                self._troubles[key].recovered("%s: the %s answers again", self.name, title)
        if _COLLECTION in self._troubles and run.silent < SILENT_LIMIT and self._clock() < run.deadline:
            self._troubles[_COLLECTION].recovered("%s: collections complete again", self.name)


def _powers(snapshot: Snapshot) -> tuple[float, float | None, float | None]:
    production = snapshot.production.total.power_w if snapshot.production else None
    consumption = snapshot.consumption_total.total.power_w if snapshot.consumption_total else None
    return snapshot.collected_at, production, consumption


def _no_production_json(info: GatewayInfo, details: _Outcome, plain: _Outcome) -> bool:
    answers = (details, plain)
    if all(o.result.outcome is Outcome.UNSUPPORTED for o in answers):
        return True
    # Elsewhere HTML is a login or error page for the moment: bad data, not a missing endpoint.
    return info.version < JSON_FROM and all(
        o.html or o.result.outcome is Outcome.UNSUPPORTED for o in answers
    )
