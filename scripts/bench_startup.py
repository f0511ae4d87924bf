#!/usr/bin/env python3
"""When a fleet's data is there after a start: the start-up's collection, then every series.

Starts ``--gateways`` stand-in gateways and the real exporter as ``scripts/bench_fleet.py`` does
(the same captures, TLS and tokens, the cache lifetimes divided by ``--time-scale``), waits until
the exporter's CPU stops moving (the start-up's collections are over), then probes every gateway
once, ``--concurrency`` at a time, and prints:

  * the start-up: when the stand-ins were last asked (from the exporter's launch), requests per
    gateway, and the CPU of the exporter and of the stand-ins' process meanwhile (which of the
    two bounds it: a process of Python code gets at most one core); and when they were first
    asked (what the exporter's own start took: imports, configuration, clients);
  * the first probe of each gateway: how long the pass took, the requests per gateway it cost
    (what the start-up left to it), and whether every probe answered ``enphase_up 1``;
  * when every series of every gateway had been read: from the launch to the last probe's answer.

    python scripts/bench_startup.py [--gateways 800] [--concurrency 8] [--time-scale 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bench_fleet as bf

ROOT = Path(__file__).resolve().parent.parent


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / bf.CLK_TCK


def wait_still(exporter: bf.Exporter, launched: float, step: float = 0.25) -> None:
    """Until the exporter's CPU moves less than 20 ms in ``step`` s (its start-up is over)."""
    last = exporter.cpu_s()
    while True:
        time.sleep(step)
        now = exporter.cpu_s()
        if now - last < 0.02 and time.time() - launched > 2:
            return
        last = now


def run(a: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    standins = bf.StandIns(a.shared, list(bf.CAPTURES), a.gateways, work / "gateways")
    exporter = None
    try:
        bf.write_config(work / "exporter.yml", standins.gateways, a.time_scale)
        standins_cpu0 = proc_cpu_s(standins.proc.pid)
        launched = time.time()
        exporter = bf.Exporter(work / "exporter.yml", work / "exporter.log")
        exporter.wait_listening()
        wait_still(exporter, launched)
        logs = standins.logs()
        asked = sum(len(log) for log in logs.values())
        ready = max(r[0] for log in logs.values() for r in log) - launched
        first = min(r[0] for log in logs.values() for r in log) - launched
        exporter_cpu, standins_cpu = exporter.cpu_s(), proc_cpu_s(standins.proc.pid) - standins_cpu0
        ups: list[bool] = []

        def probe(name: str) -> None:
            status, body = exporter.probe("/probe?target=" + name)
            ups.append(status == 200 and bool(bf._UP.search(body)))

        started = time.time()
        with ThreadPoolExecutor(a.concurrency) as pool:
            list(pool.map(probe, [g["name"] for g in standins.gateways]))
        done = time.time()
        more = standins.total() - asked
        n = a.gateways
        load = os.getloadavg()[0]
        print(f"{n} gateways, cache lifetimes / {a.time_scale:g}; load {load:.1f} on {os.cpu_count()} cores")
        print(
            f"start-up over in {ready:.1f} s: {asked / n:.2f} requests per gateway; CPU {exporter_cpu:.2f} s "
            f"exporter, {standins_cpu:.2f} s stand-ins; the first request {first:.2f} s after the launch"
        )
        print(
            f"first probe of each ({a.concurrency} at a time): {done - started:.1f} s, "
            f"{more / n:.2f} requests per gateway, {sum(ups)} of {n} up"
        )
        print(f"every series of every gateway read {done - launched:.1f} s after the launch")
    finally:
        if exporter is not None:
            exporter.stop()
        standins.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateways", type=int, default=800)
    ap.add_argument("--concurrency", type=int, default=8, help="probes at a time (default 8)")
    ap.add_argument("--time-scale", type=float, default=4.0, help="divide every cache lifetime by this")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared", help="the shared directory")
    a = ap.parse_args()
    if not (a.shared / "conformance" / "fake_gateway.py").is_file():
        print(f"no fake gateway at {a.shared / 'conformance'}", file=sys.stderr)
        return 2
    run(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
