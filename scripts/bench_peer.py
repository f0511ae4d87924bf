#!/usr/bin/env python3
"""The exporter's CPU against pyenphase 4.2.0 (Home Assistant's library) on the same replays.

pyenphase is installed by this script into a virtualenv of its own (``--venv``, made on first
use with ``pip install pyenphase==4.2.0``); it is never a dependency of the project. Both sides
read the same captures (``--captures``, default the five of ``scripts/bench_fleet.py``), each
from stand-in gateways of its own, replayed by ``../shared/conformance/fake_gateway.py`` in a
separate process (firmware 7 and later over TLS with a token, older ones with digest auth).

Two comparisons, per capture and for the mix (sum of the per-capture means):

  * CPU per full collection: the exporter with every data cache off (``cache_ttl`` 0 but for
    ``info``; pyenphase too reads /info once only), probed back to back, against pyenphase's
    ``Envoy.update()`` called back to back. Goal <= 2.5x through ``/probe``.
  * CPU per scrape at the default cache lifetimes, one ``/probe`` per gateway every
    ``--spacing`` seconds (15, Prometheus' usual interval), against one ``update()`` per gateway
    every ``--spacing`` seconds. Goal <= 1.0x.

The exporter is measured as users run it: the real process (``python -m envoy_exporter``),
answering ``/probe`` over HTTP with Prometheus' headers, its CPU read from ``/proc``: the sum of
its threads' run time in nanoseconds (``/proc/PID/task/*/schedstat``), the very figure the kernel
rounds to 10 ms clock ticks for the user + system time of ``/proc/PID/stat``; at about 4 ms per
probe, ticks would make a figure over a few dozen probes uncertain by several per cent. The
figures from the ticks are printed too.
So its figures also hold the HTTP answer and the rendering of the exposition, which pyenphase
does not do; an in-process call of the client would leave out a cost the user pays, and would
tie the benchmark to the client's internal interface. The per-scrape figure at 15 s is the
process's whole CPU over the measured window (idle threads included) divided by the probes.
pyenphase's CPU is ``time.process_time()`` around each ``update()`` in its own process (asyncio,
one update at a time, so all of it is that update's).

    python scripts/bench_peer.py [--venv /tmp/envoy-exporter-bench-pyenphase] [--full 20]
                                 [--rounds 8] [--spacing 15] [--captures NAME ...] [--json FILE]

A run takes about (1 + rounds) x spacing seconds plus the start: about 2.5 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYENPHASE = "4.2.0"
GOAL_FULL = 2.5  # through /probe, as users run it
GOAL_SCRAPE = 1.0


# ------------------------------------------------------------------------------------------------
# pyenphase's side: this file run by the pyenphase virtualenv's Python with --driver


async def drive(spec: dict) -> dict:
    """Per gateway: CPU ms of the first update (setup, authenticate, probe, update); for those
    marked ``full``, of ``full`` updates back to back; for all, of ``rounds`` updates ``spacing``
    s apart (after one not counted)."""
    from pyenphase import Envoy

    envoys, out = {}, {}
    for g in spec["gateways"]:
        began = time.process_time()
        envoy = Envoy(g["host"])
        await envoy.setup()
        if g["token"]:
            await envoy.authenticate(token=g["token"])
        else:
            await envoy.authenticate(username="envoy")  # password: the serial's last 6 digits
        await envoy.update()
        envoys[g["name"]] = envoy
        out[g["name"]] = {"first_ms": 1000 * (time.process_time() - began), "full_ms": [], "spaced_ms": []}
    for g in spec["gateways"]:
        if not g["full"]:
            continue
        envoy, mine = envoys[g["name"]], out[g["name"]]
        await envoy.update()
        mine["full_from"] = time.time()
        for _ in range(spec["full"]):
            began = time.process_time()
            await envoy.update()
            mine["full_ms"].append(1000 * (time.process_time() - began))
        mine["full_to"] = time.time()
    start = time.monotonic() + 0.5
    window = {}
    for r in range(spec["rounds"] + 1):
        await asyncio.sleep(max(0.0, start + r * spec["spacing"] - time.monotonic()))
        if r == 1:
            window["from"] = time.time()
        for name, envoy in envoys.items():
            began = time.process_time()
            await envoy.update()
            if r:
                out[name]["spaced_ms"].append(1000 * (time.process_time() - began))
    await asyncio.sleep(max(0.0, start + (spec["rounds"] + 1) * spec["spacing"] - time.monotonic()))
    window["to"] = time.time()
    for envoy in envoys.values():
        await envoy.close()
    return {"gateways": out, "window": window}


# ------------------------------------------------------------------------------------------------
# The harness


def ensure_venv(venv: Path) -> Path:
    """The virtualenv's Python, with pyenphase PYENPHASE installed (made on first use)."""
    python = venv / "bin" / "python"
    probe = f"import importlib.metadata as m; assert m.version('pyenphase') == '{PYENPHASE}'"
    check = [str(python), "-c", probe]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"installing pyenphase {PYENPHASE} into {venv} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"pyenphase=={PYENPHASE}"], check=True)
    subprocess.run(check, check=True)
    return python


@dataclass
class Side:
    """One side's figures per capture: CPU ms (means) and gateway requests per collection."""

    first_ms: dict[str, float] = field(default_factory=dict)
    collect_ms: dict[str, float] = field(default_factory=dict)  # in-process / pyenphase's update
    collect_requests: dict[str, float] = field(default_factory=dict)
    probe_full_ms: dict[str, float] = field(default_factory=dict)  # ours: /probe, caches off
    probe_full_requests: dict[str, float] = field(default_factory=dict)
    spaced_ms: dict[str, float] = field(default_factory=dict)
    spaced_requests: dict[str, float] = field(default_factory=dict)
    spaced_mean_ms: float = 0.0  # per scrape / update over the spaced window, every gateway
    # Ours, the same from /proc/PID/stat's clock ticks
    probe_full_ms_ticks: dict[str, float] = field(default_factory=dict)
    spaced_mean_ms_ticks: float = 0.0


def _requests(log: list, since: float, until: float) -> int:
    return sum(since <= t <= until for t, _, _ in log)


def _no_cache(bf) -> dict[str, float]:
    # /info stays cached: pyenphase reads it once, at setup.
    return {family: ttl if family == "info" else 0 for family, ttl in bf.default_cache_ttl().items()}


def in_process(bf, standins, gateways: list[dict], a, side: Side) -> None:
    """Full collections by the exporter's gateway client in this process, caches off: the same
    work as pyenphase's update (gateway answers to typed data), without the exposition."""
    from envoy_exporter.config.settings import GatewaySettings, Secret
    from envoy_exporter.gateway.client import GatewayClient

    for g in gateways:
        token = Secret(g["token"]) if g["token"] else None
        settings = GatewaySettings(name=g["name"], host=g["url"], token=token, cache_ttl=_no_cache(bf))
        began = time.process_time()
        client = GatewayClient(settings, None)
        try:
            client.collect(timeout=60)
            side.first_ms[g["capture"]] = 1000 * (time.process_time() - began)
            for _ in range(2):
                client.collect(timeout=60)
            since, began = time.time(), time.process_time()
            for _ in range(a.full):
                client.collect(timeout=60)
            side.collect_ms[g["capture"]] = 1000 * (time.process_time() - began) / a.full
            asked = _requests(standins.logs()[g["name"]], since, time.time())
            side.collect_requests[g["capture"]] = asked / a.full
        finally:
            client.close()


def exporter_side(bf, standins, full: list[dict], cached: list[dict], a, work: Path, side: Side) -> None:
    """The real exporter: /probe with caches off, one gateway at a time (so that the process's
    CPU is that gateway's), then one /probe per gateway every ``spacing`` s at the defaults."""
    exporter = bf.Exporter(work / "exporter.yml", work / "exporter.log")

    def cpu() -> tuple[float, float]:
        """The exporter's CPU seconds: to the nanosecond, and in clock ticks."""
        return exporter.cpu_s_fine(), exporter.cpu_s()

    try:
        exporter.wait_listening()
        bf.wait_quiet(standins, quiet_s=2.0, timeout=120)
        for g in full:
            for _ in range(2):
                exporter.probe("/probe?target=" + g["name"])
            since, cpu0 = time.time(), cpu()
            for _ in range(a.full):
                exporter.probe("/probe?target=" + g["name"])
            cpu1 = cpu()
            side.probe_full_ms[g["capture"]] = 1000 * (cpu1[0] - cpu0[0]) / a.full
            side.probe_full_ms_ticks[g["capture"]] = 1000 * (cpu1[1] - cpu0[1]) / a.full
            asked = _requests(standins.logs()[g["name"]], since, time.time())
            side.probe_full_requests[g["capture"]] = asked / a.full
        start, window = time.monotonic() + 0.5, {}
        per_probe: dict[str, list[float]] = {g["capture"]: [] for g in cached}
        for r in range(a.rounds + 1):
            time.sleep(max(0.0, start + r * a.spacing - time.monotonic()))
            if r == 1:
                window["from"], window["cpu"] = time.time(), cpu()
            for g in cached:
                cpu0 = exporter.cpu_s_fine()
                exporter.probe("/probe?target=" + g["name"])
                if r:
                    per_probe[g["capture"]].append(1000 * (exporter.cpu_s_fine() - cpu0))
        time.sleep(max(0.0, start + (a.rounds + 1) * a.spacing - time.monotonic()))
        (fine, ticks), until = cpu(), time.time()
        # The whole process over whole intervals: idle threads and housekeeping count too.
        side.spaced_mean_ms = 1000 * (fine - window["cpu"][0]) / (a.rounds * len(cached))
        side.spaced_mean_ms_ticks = 1000 * (ticks - window["cpu"][1]) / (a.rounds * len(cached))
        logs = standins.logs()
        asked: dict[str, list[int]] = {g["capture"]: [] for g in cached}
        for g in cached:
            asked[g["capture"]].append(_requests(logs[g["name"]], window["from"], until))
        for capture, probes in per_probe.items():
            side.spaced_ms[capture] = statistics.mean(probes)
            side.spaced_requests[capture] = statistics.mean(asked[capture]) / a.rounds
    finally:
        exporter.stop()


def pyenphase_side(result: dict, standins, peers: list[dict], a) -> Side:
    side = Side()
    logs, window = standins.logs(), result["window"]
    spaced: dict[str, list[float]] = {g["capture"]: [] for g in peers}
    asked: dict[str, list[int]] = {g["capture"]: [] for g in peers}
    for g in peers:
        r = result["gateways"][g["name"]]
        if r["full_ms"]:
            side.first_ms[g["capture"]] = r["first_ms"]
            side.collect_ms[g["capture"]] = statistics.mean(r["full_ms"])
            full = _requests(logs[g["name"]], r["full_from"], r["full_to"])
            side.collect_requests[g["capture"]] = full / a.full
        spaced[g["capture"]] += r["spaced_ms"]
        asked[g["capture"]].append(_requests(logs[g["name"]], window["from"], window["to"]))
    for capture, updates in spaced.items():
        side.spaced_ms[capture] = statistics.mean(updates)
        side.spaced_requests[capture] = statistics.mean(asked[capture]) / a.rounds
    side.spaced_mean_ms = statistics.mean(ms for updates in spaced.values() for ms in updates)
    return side


def run(bf, a: argparse.Namespace) -> dict:
    python = ensure_venv(a.venv)
    work = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    n, k = len(a.captures), a.per_capture
    # Stand-ins, each capture in turn: k per capture for our exporter at the default cache,
    # k for pyenphase, one for our exporter with caches off, one for our client in-process.
    standins = bf.StandIns(a.shared, a.captures, (2 * k + 2) * n, work / "gateways")
    try:
        gws = standins.gateways
        cached, peers = gws[: k * n], gws[k * n : 2 * k * n]
        probe_full, collect_full = gws[2 * k * n : (2 * k + 1) * n], gws[(2 * k + 1) * n :]
        ours = Side()
        print("our client in-process, caches off ...", file=sys.stderr)
        in_process(bf, standins, collect_full, a, ours)
        no_cache = _no_cache(bf)
        bf.write_config(
            work / "exporter.yml", cached + [{**g, "cache_ttl": no_cache} for g in probe_full], 1.0
        )
        spec = {
            "gateways": [
                {
                    "name": g["name"],
                    "host": g["url"].split("://", 1)[1],
                    "token": g["token"],
                    "full": i < n,  # one per capture collects back to back
                }
                for i, g in enumerate(peers)
            ],
            "full": a.full,
            "rounds": a.rounds,
            "spacing": a.spacing,
        }
        print(
            f"pyenphase and our exporter side by side: {a.rounds + 1} rounds {a.spacing:g} s apart ...",
            file=sys.stderr,
        )
        driver = subprocess.Popen(
            [str(python), __file__, "--driver", json.dumps(spec)], stdout=subprocess.PIPE, text=True
        )
        # Each side in its own process and on its own stand-ins; this thread only sends probes.
        thread = threading.Thread(
            target=exporter_side, args=(bf, standins, probe_full, cached, a, work, ours), daemon=True
        )
        thread.start()
        out, _ = driver.communicate()
        thread.join()
        if driver.returncode != 0 or not ours.spaced_ms:
            raise RuntimeError(f"a side failed (pyenphase driver exit {driver.returncode}); see {work}")
        peer = pyenphase_side(json.loads(out), standins, peers, a)
    finally:
        standins.stop()
    return {"ours": ours, "pyenphase": peer}


def _ratio(ours: dict[str, float], peer: dict[str, float]) -> tuple[float, float, float]:
    """Ratio of the mix (sums over captures), and the lowest and highest per capture."""
    per = [ours[c] / peer[c] for c in ours if peer.get(c)]
    return sum(ours.values()) / sum(peer[c] for c in ours), min(per), max(per)


def report(bf, ours: Side, peer: Side, a: argparse.Namespace) -> dict[str, float]:
    print(f"\nCPU ms per collection (gateway requests), per capture; pyenphase {PYENPHASE}")
    print(
        f"{'capture':<26} {'ours in-process':>19} {'ours /probe':>19} {'pyenphase':>19} {'ratio':>13}"
        f"   {f'{a.spacing:g} s apart: ours':>21} {'pyenphase':>19} {'ratio':>6}"
    )
    for c in ours.collect_ms:
        print(
            f"{c:<26} {ours.collect_ms[c]:>7.1f} ({ours.collect_requests[c]:>4.1f} req) "
            f"{ours.probe_full_ms[c]:>7.1f} ({ours.probe_full_requests[c]:>4.1f} req) "
            f"{peer.collect_ms[c]:>7.1f} ({peer.collect_requests[c]:>4.1f} req) "
            f"{ours.collect_ms[c] / peer.collect_ms[c]:>5.2f}x "
            f"{ours.probe_full_ms[c] / peer.collect_ms[c]:>5.2f}x   "
            f"{ours.spaced_ms[c]:>9.1f} ({ours.spaced_requests[c]:>4.1f} req) "
            f"{peer.spaced_ms[c]:>7.1f} ({peer.spaced_requests[c]:>4.1f} req) "
            f"{ours.spaced_ms[c] / peer.spaced_ms[c]:>5.2f}x"
        )
    print(
        "first collection, CPU ms: ours "
        + ", ".join(f"{c} {v:.0f}" for c, v in ours.first_ms.items())
        + "; pyenphase (setup, authenticate, probe, update) "
        + ", ".join(f"{c} {v:.0f}" for c, v in peer.first_ms.items())
    )
    full, lo, hi = _ratio(ours.collect_ms, peer.collect_ms)
    probe_full, probe_lo, probe_hi = _ratio(ours.probe_full_ms, peer.collect_ms)
    scrape = ours.spaced_mean_ms / peer.spaced_mean_ms
    probe_full_ticks, _, _ = _ratio(ours.probe_full_ms_ticks, peer.collect_ms)
    scrape_ticks = ours.spaced_mean_ms_ticks / peer.spaced_mean_ms
    print(
        f"at {a.spacing:g} s: ours {ours.spaced_mean_ms:.1f} ms per probe (the process's CPU over the "
        f"window / probes), pyenphase {peer.spaced_mean_ms:.1f} ms per update; {a.rounds} rounds of "
        f"{a.per_capture} gateways per capture on each side"
    )
    print(
        f"ours from /proc/PID/stat's 10 ms clock ticks instead: {probe_full_ticks:.2f}x per full "
        f"collection through /probe, {ours.spaced_mean_ms_ticks:.2f} ms per probe at {a.spacing:g} s "
        f"({scrape_ticks:.2f}x)\n"
    )
    rows = [
        (
            "CPU per full collection vs pyenphase per update",
            f"{full:.2f}x in-process (per capture {lo:.2f}-{hi:.2f}x); through /probe with caches off "
            f"{probe_full:.2f}x ({probe_lo:.2f}-{probe_hi:.2f}x)",
            f"<= {GOAL_FULL:g}x through /probe",
        ),
        (
            f"CPU per scrape at the default cache vs pyenphase per update, both {a.spacing:g} s apart",
            f"{scrape:.2f}x",
            f"<= {GOAL_SCRAPE:g}x",
        ),
    ]
    bf.print_table(rows)
    load = os.getloadavg()[1]
    print(f"\nmachine load {load:.1f} on {os.cpu_count()} cores (both sides ran at the same time)")
    return {
        "full_ratio": full,
        "probe_full_ratio": probe_full,
        "scrape_ratio": scrape,
        "probe_full_ratio_ticks": probe_full_ticks,
        "scrape_ratio_ticks": scrape_ticks,
        "load_average": load,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    venv = Path(tempfile.gettempdir()) / "envoy-exporter-bench-pyenphase"
    ap.add_argument("--venv", type=Path, default=venv, help=f"pyenphase's virtualenv (default {venv})")
    ap.add_argument("--full", type=int, default=40, help="back-to-back full collections per capture")
    ap.add_argument("--per-capture", type=int, default=4, help="gateways per capture at the spacing")
    ap.add_argument("--rounds", type=int, default=8, help="spaced rounds measured (one more before)")
    ap.add_argument("--spacing", type=float, default=15.0, help="seconds between scrapes / updates")
    ap.add_argument("--captures", nargs="+", default=None, help="default: bench_fleet.py's five")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--driver", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.driver:
        print(json.dumps(asyncio.run(drive(json.loads(a.driver)))))
        return 0
    # The stand-ins and the exporter are run as scripts/bench_fleet.py runs them.
    sys.path.insert(0, str(HERE))
    bf = importlib.import_module("bench_fleet")
    a.captures = a.captures or list(bf.CAPTURES)
    result = run(bf, a)
    ratios = report(bf, result["ours"], result["pyenphase"], a)
    if a.json:
        a.json.write_text(
            json.dumps({"ratios": ratios, **{k: asdict(v) for k, v in result.items()}}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
