#!/usr/bin/env python3
"""What an exporter at rest costs: its CPU and its threads' wake-ups while nobody scrapes it.

Starts ``--gateways`` stand-in gateways and the real exporter as ``scripts/bench_fleet.py`` does
(same captures, same process layout), waits until the start-up's collections are over, probes
every gateway once (``--scrapes``, as one Prometheus scrape round; 0 for none), waits
``--settle`` seconds (caches and renderings that outlive a scrape have gone by then, and the
collection workers idle since, which end after 30 s, have ended), and then measures a window of
``--window`` seconds in which nothing asks the exporter anything:

  * the process's CPU to the nanosecond (its threads' run time, ``/proc/PID/task/*/schedstat``),
    in milliseconds over the window and per second;
  * per thread: CPU and the times it was switched to (voluntary + involuntary context switches,
    ``/proc/PID/task/TID/status``), with the Python thread's name where ``py-spy`` (``--py-spy``,
    found beside this Python or on PATH) can tell it; a thread that wakes on a timer shows here.
    A thread that ends within the window is told apart: its last run time cannot be read once it
    is gone, so the process's CPU from ``/proc/PID/stat`` (10 ms clock ticks, ended threads
    included) is printed beside the total.

A thread that sleeps until something happens costs nothing and is never switched to; each
wake-up of an idle exporter costs some microseconds of CPU, and is what this script counts.

With ``--every S`` the window is not idle: every gateway is probed every S seconds from its
start, one after the other, as ``scripts/bench_peer.py`` probes them (``--every 15``: its
per-scrape figure, the process's whole CPU over the window divided by the probes, printed too),
so the table shows what else runs around the scrapes.

    python scripts/bench_idle.py [--gateways 20] [--window 30] [--settle 40] [--scrapes 1]
                                 [--rounds 1] [--every 0] [--captures NAME ...] [--shared ../shared]

A run takes about start + settle + window seconds: about 75 s at the defaults.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _bench_fleet():
    """The stand-ins and the exporter are run as scripts/bench_fleet.py runs them."""
    sys.path.insert(0, str(HERE))
    return importlib.import_module("bench_fleet")


@dataclass
class Task:
    """One thread's run time (ns) and context switches, as read at one moment."""

    ran_ns: int
    switches: int


def read_tasks(pid: int) -> dict[int, Task]:
    tasks = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ran = int((task / "schedstat").read_text().split()[0])
            status = (task / "status").read_text()
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
        switches = sum(int(n) for n in re.findall(r"^(?:non)?voluntary_ctxt_switches:\s+(\d+)", status, re.M))
        tasks[int(task.name)] = Task(ran, switches)
    return tasks


def thread_names(pid: int) -> dict[int, str]:
    """Native thread id -> Python thread name, from ``py-spy dump`` (empty without py-spy)."""
    py_spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if py_spy is None:
        return {}
    try:
        out = subprocess.run(
            [py_spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    # Lines such as: Thread 12345 (idle): "http"
    return {int(tid): name for tid, name in re.findall(r'^Thread (\d+) \([^)]*\): "([^"]*)"', out, re.M)}


def measure(
    pid: int, window: float, meanwhile: Callable[[float], None]
) -> tuple[float, list[tuple[int, float, int]]]:
    """Wall seconds of the window, and per thread (tid, CPU ms, switches) over it;
    ``meanwhile(until)`` runs during the window, until the monotonic time ``until``."""
    before, began = read_tasks(pid), time.monotonic()
    meanwhile(began + window)
    after, ended = read_tasks(pid), time.monotonic()
    rows = []
    for tid, now in after.items():
        then = before.get(tid, Task(0, 0))
        rows.append((tid, (now.ran_ns - then.ran_ns) / 1e6, now.switches - then.switches))
    for tid in before.keys() - after.keys():
        rows.append((tid, float("nan"), -1))  # ended during the window
    return ended - began, rows


def run(a: argparse.Namespace) -> int:
    bf = _bench_fleet()
    work = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    print(f"starting {a.gateways} stand-in gateways in {work}", file=sys.stderr)
    standins = bf.StandIns(a.shared, a.captures, a.gateways, work / "gateways")
    exporter = None
    try:
        bf.write_config(work / "exporter.yml", standins.gateways, 1.0)
        exporter = bf.Exporter(work / "exporter.yml", work / "exporter.log")
        exporter.wait_listening()
        bf.wait_quiet(standins, quiet_s=2.0, timeout=300)
        for _ in range(a.scrapes):
            for g in standins.gateways:
                exporter.probe("/probe?target=" + g["name"])
        if getattr(exporter._local, "conn", None) is not None:
            exporter._local.conn.close()  # Prometheus keeps its connection; its thread would wait
        print(f"settling {a.settle:g} s, then {a.rounds} window(s) of {a.window:g} s ...", file=sys.stderr)
        time.sleep(a.settle)

        def meanwhile(until: float) -> None:
            """Nothing, or (``--every``) a probe of every gateway every ``--every`` s from the
            window's start, as bench_peer.py probes them."""
            probes, at = 0, until - a.window
            while a.every and at < until:
                time.sleep(max(0.0, at - time.monotonic()))
                for g in standins.gateways:
                    exporter.probe("/probe?target=" + g["name"])
                probes, at = probes + len(standins.gateways), at + a.every
            time.sleep(max(0.0, until - time.monotonic()))
            done.append(probes)

        names = thread_names(exporter.proc.pid) if a.py_spy else {}
        for r in range(a.rounds):
            load, done = os.getloadavg(), []
            ticks = exporter.cpu_s()
            wall, rows = measure(exporter.proc.pid, a.window, meanwhile)
            ticks_ms = 1000 * (exporter.cpu_s() - ticks)
            if a.py_spy:
                names |= thread_names(exporter.proc.pid)
            total = sum(ms for _, ms, _ in rows if ms == ms)
            per_probe = f", {total / done[0]:.3f} ms per probe ({done[0]} probes)" if done[0] else ""
            print(
                f"\nwindow {r + 1}: {wall:.1f} s, {a.gateways} gateways, load {load[0]:.2f} {load[1]:.2f} "
                f"{load[2]:.2f}: exporter CPU {total:.2f} ms ({1000 * total / wall:.1f} us/s){per_probe}, "
                f"{sum(s for _, _, s in rows if s > 0)} thread switches; in clock ticks, ended threads "
                f"included: {ticks_ms:.0f} ms"
            )
            print(f"  {'thread':>8}  {'name':<24} {'CPU ms':>8} {'switches':>8}")
            for tid, ms, switches in sorted(rows, key=lambda row: -row[1] if row[1] == row[1] else 0):
                if ms == ms and (switches or ms):
                    print(f"  {tid:>8}  {names.get(tid, '?'):<24} {ms:8.3f} {switches:8d}")
            ended = sum(1 for _, ms, _ in rows if ms != ms)
            if ended:
                print(f"  ({ended} threads ended within the window; their run time in it is not read)")
            quiet = sum(1 for _, ms, s in rows if s == 0 and ms == ms)
            print(f"  ({quiet} more threads never switched to)")
    finally:
        if exporter is not None:
            exporter.stop()
        standins.stop()
    return 0


def main() -> int:
    bf = _bench_fleet()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gateways", type=int, default=20)
    p.add_argument("--window", type=float, default=30.0, help="seconds measured (default 30)")
    p.add_argument("--settle", type=float, default=40.0, help="seconds between the scrape and the window")
    p.add_argument("--scrapes", type=int, default=1, help="probes of every gateway before settling")
    p.add_argument("--rounds", type=int, default=1, help="windows measured one after the other")
    p.add_argument(
        "--every", type=float, default=0.0, help="probe every gateway every EVERY s in the window (0: never)"
    )
    p.add_argument("--captures", nargs="+", default=list(bf.CAPTURES))
    p.add_argument("--shared", type=Path, default=bf.ROOT.parent / "shared")
    p.add_argument("--py-spy", action=argparse.BooleanOptionalAction, default=True, help="name threads")
    return run(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
