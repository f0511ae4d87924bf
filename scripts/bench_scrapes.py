#!/usr/bin/env python3
"""What scrapes of the exporter cost a gateway, measured through the exporter's real HTTP server.

For the project's demo gateway and, when ../shared is beside the repo, a few real captures
replayed by the shared fake gateway (plain HTTP on loopback), this runs the exporter in this
process the way ``envoy-exporter`` runs it (``cli.serve``: one GatewayClient per gateway, a
Fleet, the threaded HTTP server, the warm-up collection) and prints, per gateway, counted on the
gateway's side:

  * the requests per endpoint over the warm-up collection and 10 scrapes of /metrics 1 s apart,
    on the real clock, at the default cache lifetimes, with the seconds (after the start) at which
    each endpoint was asked: production and meter readings show how fresh the data stays;
  * the mean requests per scrape over those 10 scrapes (the warm-up collection apart);
  * p50 / p95 latency of /metrics with a warm cache (scrapes back to back);
  * the requests of 10 concurrent scrapes of /metrics once every cache entry has expired (the
    cache's clock jumps past the longest lifetime instead of waiting an hour), and how long the
    last of them waited for its answer.

Figures, not assertions: tests/test_gateway_load.py asserts the claims, with this harness. The
10-second windows of all gateways run at the same time, so a run takes about 15 s.
scripts/capture_report.py gives the steady state of every capture at Prometheus' 15 s interval,
against pyenphase's 4.8 requests per update.

    python scripts/bench_scrapes.py [--shared ../shared] [--captures NAME ...] [--scrapes 10]
"""

from __future__ import annotations

import argparse
import importlib
import logging
import statistics
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Protocol

from envoy_exporter.config.settings import DEFAULT_CACHE_TTL, GatewaySettings, Secret, Settings
from envoy_exporter.demo.server import DemoGateway, Response
from envoy_exporter.demo.simulator import Plant
from envoy_exporter.fleet.registry import Fleet
from envoy_exporter.gateway.client import GatewayClient
from envoy_exporter.web.server import make_server

ROOT = Path(__file__).resolve().parent.parent
CONCURRENT = 10
CAPTURES = ("3.9.36", "7.6.175_with_cts_3phase", "8.2.4345_with_device_data", "8.3.1598_collar")
# Past this every cache entry, /info's included, has expired.
LONGEST_TTL = max(DEFAULT_CACHE_TTL.values())


# ------------------------------------------------------------------------------------------------
# Gateways that count what they are asked


@dataclass(frozen=True)
class Request:
    t: float  # epoch seconds when the gateway answered
    path: str  # with the query
    status: int


class CountedGateway(Protocol):
    name: str

    def settings(self) -> GatewaySettings: ...

    def seen(self) -> list[Request]: ...

    def stop(self) -> None: ...


class CountingDemo(DemoGateway):
    """The ``--demo`` gateway, logging every request it answers; ``latency`` seconds per answer
    make it slow like a real gateway, so that scrapes surely overlap a collection."""

    name = "demo"

    def __init__(self, latency: float = 0.0) -> None:
        super().__init__(Plant(), "127.0.0.1", 0)  # as start_demo() builds it
        self._latency = latency
        self._log: list[Request] = []
        self._log_lock = threading.Lock()
        self.start()

    def handle(self, target: str, authorization: str, cookie: str) -> Response:
        time.sleep(self._latency)
        response = super().handle(target, authorization, cookie)
        with self._log_lock:
            self._log.append(Request(time.time(), target, response.status))
        return response

    def settings(self) -> GatewaySettings:
        return GatewaySettings(name=self.name, host=self.url, token=Secret(self.token))

    def seen(self) -> list[Request]:
        with self._log_lock:
            return list(self._log)


class CountingCapture:
    """The shared fake gateway replaying one capture, over plain HTTP (TLS changes no count)."""

    def __init__(self, fake_gateway: ModuleType, fixture: Path) -> None:
        self.name = fixture.name
        self._gw = fake_gateway.Gateway(fixture)
        self._gw.start()
        # Its handler writes headers and body apart: with Nagle's algorithm on, every answer
        # waits for the client's delayed ACK (0.04 to 1 s here), which only slows the runs down.
        self._gw.server.RequestHandlerClass.disable_nagle_algorithm = True

    def settings(self) -> GatewaySettings:
        token = Secret(self._gw.token) if self._gw.token_era else None
        return GatewaySettings(name=self.name, host=self._gw.url, token=token)

    def seen(self) -> list[Request]:
        self._settle()
        with self._gw.lock:
            return [Request(r["t"], r["path"], r["status"]) for r in self._gw.requests]

    def stop(self) -> None:
        self._gw.stop()

    def _settle(self) -> None:
        """The fake gateway logs a request after answering it: wait until its log stops growing."""
        count, since = len(self._gw.requests), time.monotonic()
        while time.monotonic() - since < 0.05:
            time.sleep(0.01)
            if len(self._gw.requests) != count:
                count, since = len(self._gw.requests), time.monotonic()


def load_fake_gateway(shared: Path) -> ModuleType:
    """``fake_gateway`` of ``shared/conformance``, imported from there (never copied)."""
    conformance = str(shared / "conformance")
    if conformance not in sys.path:
        sys.path.insert(0, conformance)
    return importlib.import_module("fake_gateway")


# ------------------------------------------------------------------------------------------------
# The exporter


class Clocks:
    """The clients' monotonic and wall clocks: real time plus an offset that only jumps, so that
    a cache lifetime passes without waiting for it. ``frozen``: the monotonic clock moves by the
    jumps only, which makes the age of every cache entry exact (for tests)."""

    def __init__(self, frozen: bool = False) -> None:
        self._frozen = frozen
        self.offset = 0.0

    def monotonic(self) -> float:
        # 1000.0: whole seconds add up exactly, so an entry is exactly as old as the jumps say
        return self.offset + (1000.0 if self._frozen else time.monotonic())

    def wall(self) -> float:
        return time.time() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += seconds


class Exporter:
    """The exporter as ``cli.serve`` runs it, on a free loopback port, in this process; its
    gateway clients run on ``clocks``."""

    def __init__(self, settings: Settings, clocks: Clocks) -> None:
        fleet = Fleet(
            settings.gateways,
            lambda g: GatewayClient(g, settings.state_dir, clock=clocks.monotonic, wall=clocks.wall),
        )
        self.clients = fleet.clients()
        self._server = make_server("127.0.0.1:0", fleet)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="http", daemon=True
        ).start()
        for client in self.clients:
            client.start()  # the warm-up collection, as cli.serve starts it
        self._server.ready.set()
        self.url = self._server.url

    def wait_warm(self, timeout: float = 60.0) -> None:
        """Returns once the warm-up collection of every gateway is over (each has a duration)."""
        deadline = time.monotonic() + timeout
        while any(c.last_duration is None for c in self.clients):
            if time.monotonic() > deadline:
                raise TimeoutError("the warm-up collection did not finish")
            time.sleep(0.01)

    def get(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return response.status, response.read().decode()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for client in self.clients:
            client.close()


def start(gateway: CountedGateway, clocks: Clocks) -> Exporter:
    """An exporter for ``gateway`` at the default cache lifetimes, its warm-up collection done."""
    exporter = Exporter(Settings(gateways=(gateway.settings(),)), clocks)
    exporter.wait_warm()
    return exporter


def burst(exporter: Exporter, paths: list[str]) -> list[tuple[int, str]]:
    """GET every path at once, one thread each, released together."""
    barrier = threading.Barrier(len(paths))

    def one(path: str) -> tuple[int, str]:
        barrier.wait()
        return exporter.get(path)

    with ThreadPoolExecutor(len(paths)) as pool:
        return list(pool.map(one, paths))


# ------------------------------------------------------------------------------------------------
# The figures


@dataclass
class Figures:
    name: str
    window: list[Request]  # the warm-up and the spaced scrapes
    warm_up: int  # requests of the warm-up collection
    started: float  # epoch seconds when the exporter started
    latencies: list[float] = field(default_factory=list)  # seconds
    concurrent: list[Request] = field(default_factory=list)
    concurrent_s: float = 0.0  # until the last of the concurrent scrapes was answered


def spaced_scrapes(
    gateway: CountedGateway, scrapes: int, interval: float
) -> tuple[Exporter, Clocks, Figures]:
    """The warm-up, then ``scrapes`` scrapes ``interval`` s apart on the real clock."""
    clocks, started = Clocks(), time.time()
    exporter = start(gateway, clocks)
    warm_up = len(gateway.seen())
    ready = time.monotonic()
    for n in range(1, scrapes + 1):
        time.sleep(max(0.0, ready + n * interval - time.monotonic()))
        exporter.get("/metrics")
    return exporter, clocks, Figures(gateway.name, gateway.seen(), warm_up, started)


def finish(gateway: CountedGateway, exporter: Exporter, clocks: Clocks, figures: Figures, n: int) -> None:
    """Warm-cache latency over ``n`` scrapes, then concurrent scrapes once the cache expired."""
    for _ in range(n):
        began = time.perf_counter()
        exporter.get("/metrics")
        figures.latencies.append(time.perf_counter() - began)
    clocks.jump(LONGEST_TTL)
    before, began = len(gateway.seen()), time.perf_counter()
    burst(exporter, ["/metrics"] * CONCURRENT)
    figures.concurrent_s = time.perf_counter() - began
    figures.concurrent = gateway.seen()[before:]


def report(f: Figures, scrapes: int, interval: float) -> None:
    print(f"== {f.name}")
    print(f"   warm-up + {scrapes} scrapes {interval:g} s apart, default TTLs: requests per endpoint")
    asked: dict[str, list[Request]] = {}
    for r in f.window:
        asked.setdefault(r.path, []).append(r)
    for path, requests in asked.items():
        at = ", ".join(f"{r.t - f.started:.1f}{_status(r)}" for r in requests)
        print(f"     {path:<32} {len(requests):>2}  at {at} s after the start")
    steady = len(f.window) - f.warm_up
    print(f"   warm-up collection {f.warm_up} requests; then {steady / scrapes:.2f} per scrape")
    q = statistics.quantiles(f.latencies, n=20)
    print(
        f"   /metrics latency, warm cache, {len(f.latencies)} scrapes: "
        f"p50 {q[9] * 1000:.1f} ms, p95 {q[18] * 1000:.1f} ms"
    )
    most = max(Counter(r.path for r in f.concurrent).values(), default=0)
    print(
        f"   {CONCURRENT} concurrent scrapes, cache expired, all answered in {f.concurrent_s:.2f} s: "
        f"{len(f.concurrent)} requests, none asked more than {most}x: "
        + ", ".join(f"{r.path}{_status(r)}" for r in f.concurrent)
    )


def _status(r: Request) -> str:
    return "" if r.status == 200 else f" ({r.status})"


def gateways(a: argparse.Namespace) -> list[Callable[[], CountedGateway]]:
    makers: list[Callable[[], CountedGateway]] = [CountingDemo]
    fixtures = a.shared / "fixtures" / "envoy"
    if not fixtures.is_dir():
        print(f"no captures at {fixtures}: the demo gateway only", file=sys.stderr)
        return makers
    fake_gateway = load_fake_gateway(a.shared)
    makers += [lambda name=name: CountingCapture(fake_gateway, fixtures / name) for name in a.captures]
    return makers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared", help="the shared directory")
    ap.add_argument(
        "--captures", nargs="*", default=list(CAPTURES), help="capture names under fixtures/envoy"
    )
    ap.add_argument("--scrapes", type=int, default=10, help="spaced scrapes (default 10)")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between them (default 1)")
    ap.add_argument("--latency-scrapes", type=int, default=50, help="back-to-back scrapes timed (default 50)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    targets = [make() for make in gateways(a)]
    try:
        # The spaced windows mostly sleep: run them side by side; time the latencies one by one.
        with ThreadPoolExecutor(len(targets)) as pool:
            runs = list(pool.map(lambda g: spaced_scrapes(g, a.scrapes, a.interval), targets))
        for gateway, (exporter, clocks, figures) in zip(targets, runs, strict=True):
            try:
                finish(gateway, exporter, clocks, figures, a.latency_scrapes)
            finally:
                exporter.close()
            report(figures, a.scrapes, a.interval)
    finally:
        for gateway in targets:
            gateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
