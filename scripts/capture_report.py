#!/usr/bin/env python3
"""What the exporter asks of each real gateway capture, and how often.

For every capture in ``../shared/fixtures/envoy`` this starts the shared fake gateway, collects it
with a ``GatewayClient`` at the default cache lifetimes, and scrapes it ``--scrapes`` times
``--interval`` seconds apart on an injected clock (no waiting). It prints, per capture, the
endpoints the first collection asked and how each fared, and the HTTP requests the gateway
answered per collection: the first one (detection), and the mean of the others (steady state).
Digest challenges and ``/auth/check_jwt`` count, as the gateway serves them too. The last lines
compare the mean with pyenphase's (Home Assistant's) 4.8 requests per update over the captures.

    python scripts/capture_report.py [--shared ../shared] [--scrapes 10] [--interval 15] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from envoy_exporter.config.settings import GatewaySettings, Secret
from envoy_exporter.gateway.client import GatewayClient

ROOT = Path(__file__).resolve().parent.parent
PYENPHASE_MEAN = 4.8  # requests per update, pyenphase over the same captures


@dataclass
class Clocks:
    """The client's monotonic and wall clocks, moved by hand between scrapes."""

    mono: float = 1000.0
    wall: float = 1_750_000_000.0

    def clock(self) -> float:
        return self.mono

    def now(self) -> float:
        return self.wall


@dataclass
class Report:
    capture: str
    endpoints: dict[str, str]  # endpoint key -> status in the first collection
    first: list[str]  # "path status" of every request of the first collection
    per_scrape: list[int]

    @property
    def steady(self) -> float:
        rest = self.per_scrape[1:]
        return statistics.mean(rest) if rest else float(self.per_scrape[0])


def _settle(gw) -> None:
    """The fake gateway logs a request after answering it: wait until its log stops growing."""
    count, stable_since = len(gw.requests), time.monotonic()
    while time.monotonic() - stable_since < 0.1:
        time.sleep(0.02)
        if len(gw.requests) != count:
            count, stable_since = len(gw.requests), time.monotonic()


def run_capture(fake_gateway, fixture: Path, scrapes: int, interval: float) -> Report:
    gw = fake_gateway.Gateway(fixture)
    gw.start(tls=gw.token_era)
    clocks = Clocks()
    settings = GatewaySettings(
        name=fixture.name, host=gw.url, token=Secret(gw.token) if gw.token_era else None
    )
    client = GatewayClient(settings, None, clock=clocks.clock, wall=clocks.now)
    per_scrape, first, endpoints = [], [], {}
    try:
        for n in range(scrapes):
            seen = len(gw.requests)
            snapshot = client.collect(timeout=60)
            _settle(gw)
            asked = gw.requests[seen:]
            per_scrape.append(len(asked))
            if n == 0:
                first = [f"{r['path']} {r['status']}" for r in asked]
                endpoints = {key: result.outcome.value for key, result in snapshot.endpoints.items()}
            clocks.mono += interval
            clocks.wall += interval
    finally:
        client.close()
        gw.stop()
    return Report(fixture.name, endpoints, first, per_scrape)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--scrapes", type=int, default=10)
    ap.add_argument("--interval", type=float, default=15.0)
    ap.add_argument("--only", nargs="*", default=None)
    a = ap.parse_args()
    fixtures = a.shared / "fixtures" / "envoy"
    if not fixtures.is_dir():
        print(f"no captures at {fixtures}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.ERROR)
    sys.path.insert(0, str(a.shared / "conformance"))
    import fake_gateway

    # One self-signed certificate for every gateway: a fresh RSA key each takes a while.
    context = fake_gateway.self_signed_context()
    fake_gateway.self_signed_context = lambda: context

    names = sorted(p.name for p in fixtures.iterdir() if (p / "info").is_file())
    reports = [
        run_capture(fake_gateway, fixtures / name, a.scrapes, a.interval)
        for name in names
        if not a.only or name in a.only
    ]
    for r in reports:
        print(f"== {r.capture}")
        print("   endpoints: " + ", ".join(f"{key}={status}" for key, status in r.endpoints.items()))
        print(f"   first collection, {len(r.first)} requests: " + ", ".join(r.first))
        print(
            f"   requests per collection over {a.scrapes} scrapes {a.interval:g} s apart: "
            f"{r.per_scrape} (steady state {r.steady:.2f})"
        )
    if reports:
        first = statistics.mean(r.per_scrape[0] for r in reports)
        steady = statistics.mean(r.steady for r in reports)
        overall = statistics.mean(statistics.mean(r.per_scrape) for r in reports)
        print(f"\nrequests per collection, mean over {len(reports)} captures:")
        print(f"  first (detection) {first:.2f}, steady state {steady:.2f}")
        print(f"  all {a.scrapes} scrapes {overall:.2f}")
        print(f"  pyenphase (Home Assistant): {PYENPHASE_MEAN} per update")
    return 0


if __name__ == "__main__":
    sys.exit(main())
