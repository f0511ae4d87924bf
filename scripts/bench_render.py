#!/usr/bin/env python3
"""What rendering a new snapshot costs, against the plain f-string floor for the same lines.

One real capture (``--capture``, default the collar one: 424 data lines) is replayed by
``../shared/conformance/fake_gateway.py`` in this process; the exporter's gateway client collects
it once, and the snapshot is rendered the way the server renders a new snapshot for a scrape
(the data series of one gateway, as served). The floor writes the very same sample lines (each
line's name with its labels, and its value, taken from that rendering beforehand) with one
f-string each and joins them: what any renderer must at least spend building the text.

Both are timed ``--repeat`` times over ``--loops`` renderings; the best and the median of the
per-rendering times are printed, with their ratio (goal: within 2x of the floor).

The floor writes each value with ``{value}``, which goes through ``float.__format__``; the same
text written with ``{value!r}`` costs about a third less. That second, lower floor is printed too,
with the ratio against it, for a reader who wants the stricter figure; the goal is still read
against the first.

    python scripts/bench_render.py [--capture 8.3.1598_collar] [--shared ../shared]
                                   [--loops 200] [--repeat 15]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from envoy_exporter.collector.exposition import gateway_labels
from envoy_exporter.collector.scrape import render_data
from envoy_exporter.config.settings import GatewaySettings, Secret
from envoy_exporter.gateway.client import GatewayClient
from envoy_exporter.snapshot.model import Snapshot

ROOT = Path(__file__).resolve().parent.parent
GOAL = 2.0


def collect(shared: Path, capture: str) -> Snapshot:
    """One collection of the capture, replayed by the shared stand-in gateway."""
    sys.path.insert(0, str(shared / "conformance"))
    fake_gateway = importlib.import_module("fake_gateway")
    gateway = fake_gateway.Gateway(shared / "fixtures" / "envoy" / capture)
    gateway.start(tls=gateway.token_era)
    token = Secret(gateway.token) if gateway.token_era else None
    client = GatewayClient(GatewaySettings(name="site", host=gateway.url, token=token), None)
    try:
        return client.collect(timeout=60)
    finally:
        client.close()
        gateway.stop()


def sample_lines(body: bytes) -> list[tuple[str, float]]:
    """(name with labels, value) of every sample line."""
    lines = []
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            lines.append((series, float(value)))
    return lines


def floor(lines: list[tuple[str, float]]) -> str:
    return "".join([f"{series} {value}\n" for series, value in lines])


def repr_floor(lines: list[tuple[str, float]]) -> str:
    return "".join([f"{series} {value!r}\n" for series, value in lines])


def timed(fn: Callable[[], object], loops: int, repeat: int) -> list[float]:
    """Seconds per call, one figure per repeat."""
    figures = []
    for _ in range(repeat):
        began = time.perf_counter()
        for _ in range(loops):
            fn()
        figures.append((time.perf_counter() - began) / loops)
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", default="8.3.1598_collar")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--loops", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=15)
    a = ap.parse_args()
    if not (a.shared / "conformance" / "fake_gateway.py").is_file():
        print(f"no fake gateway at {a.shared / 'conformance'}", file=sys.stderr)
        return 2
    snapshot = collect(a.shared, a.capture)
    # The gateway's labels as the server renders them once per scrape, before it renders the
    # gateway's data series; every narrower label set is made by the rendering timed here.
    labels = gateway_labels("site")
    body = b"".join(samples for _, samples in render_data(labels, snapshot))
    lines = sample_lines(body)
    ours = timed(lambda: render_data(labels, snapshot), a.loops, a.repeat)
    least = timed(lambda: floor(lines), a.loops, a.repeat)
    stricter = timed(lambda: repr_floor(lines), a.loops, a.repeat)
    assert floor(lines) == repr_floor(lines)
    best, median = min(ours) / min(least), statistics.median(ours) / statistics.median(least)
    print(f"{a.capture}: {len(lines)} sample lines")
    figures_by_name = (
        ("rendering a new snapshot", ours),
        ("f-string floor", least),
        ("floor with !r", stricter),
    )
    for what, figures in figures_by_name:
        best_ms, median_ms = 1e3 * min(figures), 1e3 * statistics.median(figures)
        print(f"{what + ':':<26}best {best_ms:.3f} ms, median {median_ms:.3f} ms")
    print(f"ratio: {best:.2f}x (best), {median:.2f}x (median); goal <= {GOAL:g}x")
    print(f"ratio to the floor with !r: {min(ours) / min(stricter):.2f}x (best)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
