#!/usr/bin/env python3
"""What a fleet of gateways behind ``/probe`` costs the exporter: CPU, memory, latency, requests.

Runs ``--gateways`` stand-in gateways (by default 200: 40 each of five real captures of
``../shared/fixtures/envoy``, replayed by ``../shared/conformance/fake_gateway.py``, imported from
there at run time) in a process of their own, firmware 7 and later over TLS with a token, as the
real ones. Each stand-in answers with a serial of its own (its capture's ``/info`` with the last
digits changed, in a temporary directory; every other file is the capture's own), so the exporter
sees 200 distinct gateways. Then it starts the real exporter (``python -m envoy_exporter``, the
installed package) with a configuration naming them, and, like Prometheus with one scrape job of
``/probe`` targets, probes each gateway once per ``--interval``, the probes spread evenly over the
interval, with Prometheus' request headers (OpenMetrics preferred, gzip, a 10 s scrape timeout),
reusing connections where the exporter keeps them alive (HTTP/1.1), as Prometheus does.
After ``--warm-up-rounds`` rounds it measures ``--rounds`` rounds and prints:

  * the exporter's CPU from ``/proc/PID/stat`` (user + system, all threads) over the measured
    rounds: percent of one core, and milliseconds per probe;
  * its peak resident memory (``VmHWM``), after the rounds and after one ``/metrics`` of all;
  * probe latency percentiles (wall time, loopback);
  * gateway requests per probe, counted by the stand-ins (digest challenges and token checks
    included), for the mix and per capture, and how old the freshest power reading of each
    gateway was when its probe was answered (the newest answer of a production or meter
    readings endpoint);
  * the first collection of all (the exporter's warm-up): CPU from the process start until the
    stand-ins stop being asked, requests per gateway, and when it was over ("ready": every
    gateway read once);
  * the exporter's threads, sampled every 0.1 s from its start to the end of the rounds: the most
    at any sample;
  * the worst probe (the slowest answer of the measured rounds), beside the percentiles.

The goals printed beside the figures are those of the fleet size: 200 gateways (the default) or
800 (``--gateways 800``, ready within 5 s, at most 64 threads, no probe over 50 ms).

The machine may be shared: CPU time from /proc is the figure to trust, wall-clock figures less.

``--time-scale K`` runs K times faster: the interval and every cache lifetime (the exporter's own
defaults, written into the configuration) are divided by K. Requests per probe keep their ratio
to the cache lifetimes, but the CPU percentage is K times the real one (per probe it is not), and
cadences the exporter does not take from its configuration are not scaled.

    python scripts/bench_fleet.py [--gateways 200] [--interval 60] [--rounds 4] [--warm-up-rounds 1]
                                  [--time-scale 1] [--captures NAME ...] [--shared ../shared]
                                  [--json FILE]

A full run at the defaults takes (1 + 4) x 60 s plus the start, about 5.5 minutes.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import importlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = (
    "8.3.1598_collar",
    "7.6.175_with_cts_3phase",
    "8.2.4345_with_device_data",
    "5.0.62",
    "3.9.36",
)
# What Prometheus sends with a scrape (v2.x, scrape_timeout 10 s).
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}
# Endpoints whose answer carries the gateway's power now (production or CT readings).
POWER_PATHS = ("/ivp/meters/readings", "/production.json", "/api/v1/production", "/production")
GOALS = {"memory_mb": 60.0, "cpu_percent": 2.0, "requests_per_probe": 2.2}
# A fleet of 800: the scale check (memory, CPU, start-up, threads, the slowest probe).
GOALS_800 = {**GOALS, "memory_mb": 100.0, "cpu_percent": 6.0, "ready_s": 5.0, "threads": 64, "worst_ms": 50}
# The first collection of all, as it cost before its cost was cut; the goal is half of each.
FIRST_BEFORE = {"cpu_s": 6.7, "requests_per_gateway": 8.4}
CLK_TCK = os.sysconf("SC_CLK_TCK")
EXPORTER = (sys.executable, "-m", "envoy_exporter")  # the package installed beside this Python


# ------------------------------------------------------------------------------------------------
# The stand-in gateways (a process of their own: their CPU is not the exporter's)


def serve_gateways(spec: dict) -> None:
    """The stand-ins' process: starts the gateways, prints them as one JSON line, then answers
    ``log`` on stdin with every gateway's request log (one JSON line); EOF or ``quit`` ends it."""
    shared = Path(spec["shared"])
    sys.path.insert(0, str(shared / "conformance"))
    fake_gateway = importlib.import_module("fake_gateway")
    # One self-signed certificate for every gateway: a fresh RSA key each takes a while.
    context = fake_gateway.self_signed_context()
    fake_gateway.self_signed_context = lambda: context
    workdir = Path(spec["workdir"])
    gateways = []
    for n in range(spec["count"]):
        capture = spec["captures"][n % len(spec["captures"])]
        fixture = _own_serial(shared / "fixtures" / "envoy" / capture, workdir / f"gw{n:03d}", n)
        gw = fake_gateway.Gateway(fixture)
        gw.start(tls=gw.token_era)
        # Its handler writes headers and body apart: with Nagle's algorithm on, every answer
        # waits for the client's delayed ACK, which slows the probes but changes no count.
        gw.server.RequestHandlerClass.disable_nagle_algorithm = True
        gateways.append((f"gw{n:03d}-{capture}", capture, gw))
    listing = [
        {"name": name, "capture": capture, "url": gw.url, "token": gw.token if gw.token_era else None}
        for name, capture, gw in gateways
    ]
    print(json.dumps(listing), flush=True)
    for line in sys.stdin:
        if line.strip() != "log":
            break
        logs = {}
        for name, _, gw in gateways:
            with gw.lock:
                logs[name] = [(r["t"], r["path"], r["status"]) for r in gw.requests]
        print(json.dumps(logs), flush=True)
    for _, _, gw in gateways:
        gw.stop()


def _own_serial(capture: Path, into: Path, n: int) -> Path:
    """``capture`` under ``into``, its files linked, ``/info`` with a serial of its own."""
    into.mkdir(parents=True)
    for f in capture.iterdir():
        if f.name != "info":
            (into / f.name).symlink_to(f.resolve())
    info = (capture / "info").read_text(errors="replace")
    serial = re.search(r"<sn>\s*([^<]+?)\s*</sn>", info)
    if serial:
        old = serial.group(1)
        new = old[:-4] + f"{n:04d}"[-min(4, len(old)) :] if len(old) >= 4 else old
        info = info.replace(old, new)
    (into / "info").write_text(info)
    return into


class StandIns:
    def __init__(self, shared: Path, captures: list[str], count: int, workdir: Path):
        spec = {"shared": str(shared), "captures": captures, "count": count, "workdir": str(workdir)}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-gateways", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the stand-in gateways did not start")
        self.gateways: list[dict] = json.loads(line)
        self._lock = threading.Lock()

    def logs(self) -> dict[str, list[tuple[float, str, int]]]:
        """Every gateway's requests so far: (epoch seconds, path with query, status)."""
        with self._lock:
            self.proc.stdin.write("log\n")
            self.proc.stdin.flush()
            return {k: [tuple(r) for r in v] for k, v in json.loads(self.proc.stdout.readline()).items()}

    def total(self) -> int:
        return sum(len(v) for v in self.logs().values())

    def stop(self) -> None:
        _stop(self.proc)


def _stop(proc: subprocess.Popen) -> None:
    """Ends a process this script started, by its process group (it was started in a new one)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


# ------------------------------------------------------------------------------------------------
# The exporter, a real process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_cache_ttl(scale: float = 1.0) -> dict[str, float]:
    # The installed exporter's own defaults, so that new cache families are scaled too.
    from envoy_exporter.config.settings import DEFAULT_CACHE_TTL

    return {family: seconds / scale for family, seconds in DEFAULT_CACHE_TTL.items()}


def write_config(path: Path, gateways: list[dict], time_scale: float) -> None:
    lines = []
    if time_scale != 1:
        lines.append("cache_ttl:")
        lines += [f"  {family}: {seconds:g}" for family, seconds in default_cache_ttl(time_scale).items()]
    lines.append("gateways:")
    for g in gateways:
        lines.append(f"  - name: {json.dumps(g['name'])}")
        lines.append(f"    host: {json.dumps(g['url'])}")
        if g["token"]:
            lines.append(f"    token: {json.dumps(g['token'])}")
        if g.get("cache_ttl"):
            lines.append("    cache_ttl:")
            lines += [f"      {family}: {seconds:g}" for family, seconds in g["cache_ttl"].items()]
    path.write_text("\n".join(lines) + "\n")


def _answer(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path, headers=PROMETHEUS_HEADERS)
    response = conn.getresponse()
    body = response.read()
    if response.getheader("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return response.status, body


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, every thread, in clock ticks (10 ms)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


class ThreadCPU:
    """A process's CPU seconds to the nanosecond. The kernel derives the user + system time of
    /proc/PID/stat (``proc_cpu_s``) from its threads' run time, and rounds it to clock ticks;
    /proc/PID/task/TID/schedstat shows each thread's unrounded. A thread's last reading is kept
    once it has ended (what it ran after that reading is lost: read often, as around every
    probe); a thread id used again starts from zero."""

    def __init__(self, pid: int) -> None:
        self._tasks = Path(f"/proc/{pid}/task")
        self._ran: dict[str, int] = {}  # nanoseconds each thread ran, as last read
        self._ended_ns = 0

    def seconds(self) -> float:
        for task in self._tasks.iterdir():
            try:
                ns = int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue  # ended meanwhile
            before = self._ran.get(task.name, 0)
            if ns < before:  # the id of a thread that ended, now another thread's
                self._ended_ns += before
            self._ran[task.name] = ns
        return (self._ended_ns + sum(self._ran.values())) / 1e9


class Exporter:
    def __init__(self, config: Path, log: Path):
        self.port = _free_port()
        self._local = threading.local()  # each probing thread's connection
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [*EXPORTER, "--config.file", str(config), "--web.listen-address", f"127.0.0.1:{self.port}"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=config.parent,
            start_new_session=True,
        )
        self._cpu = ThreadCPU(self.proc.pid)

    def cpu_s(self) -> float:
        """User + system CPU seconds of the process, every thread, in clock ticks (10 ms)."""
        return proc_cpu_s(self.proc.pid)

    def cpu_s_fine(self) -> float:
        """``cpu_s`` to the nanosecond (``ThreadCPU``)."""
        return self._cpu.seconds()

    def status_kb(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def sample_threads(self, every: float = 0.1) -> Callable[[], int]:
        """Samples the process's thread count every ``every`` s on a thread of its own, from
        now until the returned function is called; that returns the most at any sample."""
        most, stop = [0], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    most[0] = max(most[0], self.status_kb("Threads"))
                except (OSError, KeyError):
                    return  # the process is gone
                stop.wait(every)

        thread = threading.Thread(target=sample, name="thread-sampler", daemon=True)
        thread.start()

        def done() -> int:
            stop.set()
            thread.join()
            return most[0]

        return done

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
        """GET ``path`` on a new connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            return _answer(conn, path)
        finally:
            conn.close()

    def probe(self, path: str) -> tuple[int, bytes]:
        """GET ``path`` as Prometheus does: on this thread's connection, kept alive where the
        exporter allows it (HTTP/1.1), a new one where it does not or when it was dropped."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                return _answer(conn, path)
            except (http.client.HTTPException, OSError):
                conn.close()  # the exporter closed an idle connection: one more try, afresh
        self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30.0)
        return _answer(self._local.conn, path)

    def wait_listening(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the exporter exited with {self.proc.returncode}: see {self._log.name}")
            try:
                self.get("/-/healthy", timeout=2)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        _stop(self.proc)
        self._log.close()


# ------------------------------------------------------------------------------------------------
# The run


@dataclass
class Probe:
    gateway: str
    sent: float  # epoch seconds
    answered: float
    status: int
    up: bool


@dataclass
class Figures:
    gateways: int
    interval_s: float
    rounds: int
    time_scale: float
    probes: int = 0
    failed_probes: int = 0
    down_probes: int = 0  # answered, but enphase_up 0
    cpu_s: float = 0.0
    window_s: float = 0.0
    cpu_percent: float = 0.0
    cpu_ms_per_probe: float = 0.0
    peak_rss_mb: float = 0.0
    peak_rss_after_metrics_mb: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    requests_per_probe: float = 0.0
    requests_per_probe_by_capture: dict[str, float] = field(default_factory=dict)
    power_age_s: dict[str, float] = field(default_factory=dict)
    start_cpu_s: float = 0.0  # until the HTTP server first answered
    first_cpu_s: float = 0.0  # from the process start until the first collection of all was over
    first_s: float = 0.0
    first_requests_per_gateway: float = 0.0
    max_threads: int = 0  # the exporter's threads, the most at any sample from its start
    load_average: float = 0.0  # the machine's 5-minute load average at the end of the rounds
    cores: int = 0


def wait_quiet(standins: StandIns, quiet_s: float, timeout: float) -> float:
    """Waits until the stand-ins have not been asked anything for ``quiet_s``; returns the epoch
    time of the last request."""
    deadline = time.monotonic() + timeout
    count, since = standins.total(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            raise TimeoutError("the gateways never went quiet")
        time.sleep(0.2)
        now = standins.total()
        if now != count:
            count, since = now, time.monotonic()
    return max((r[0] for log in standins.logs().values() for r in log), default=time.time())


_UP = re.compile(rb"^enphase_up\{[^}]*\} 1(\.0)?$", re.MULTILINE)


def probe_rounds(exporter: Exporter, names: list[str], interval: float, rounds: int) -> list[Probe]:
    """``rounds`` rounds of one probe per gateway, spread evenly over each interval."""
    step = interval / len(names)
    start = time.monotonic() + 0.1
    probes: list[Probe] = []
    lock = threading.Lock()

    def one(name: str) -> None:
        sent = time.time()
        try:
            status, body = exporter.probe("/probe?target=" + name)
        except OSError:
            status, body = 0, b""
        probe = Probe(name, sent, time.time(), status, bool(_UP.search(body)))
        with lock:
            probes.append(probe)

    with ThreadPoolExecutor(max_workers=32) as pool:
        for n in range(rounds * len(names)):
            time.sleep(max(0.0, start + n * step - time.monotonic()))
            pool.submit(one, names[n % len(names)])
    return probes


def _quantiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    if not values:
        return {}

    def at(q: float) -> float:
        return values[min(len(values) - 1, round(q * (len(values) - 1)))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": values[-1]}


def _power_ages(
    probes: list[Probe], logs: dict[str, list[tuple[float, str, int]]], interval: float
) -> list[float]:
    """Per probe: seconds between the newest answered power request of its gateway and the answer.
    A stand-in logs a request after it has sent the answer, at times after the exporter has
    already answered the probe: requests logged up to ``slack`` s after the answer count."""
    slack = min(1.0, interval / 2)
    ages = []
    for p in probes:
        times = [
            t
            for t, path, status in logs.get(p.gateway, [])
            if status == 200 and t <= p.answered + slack and path.split("?")[0] in POWER_PATHS
        ]
        if times:
            ages.append(max(0.0, p.answered - max(times)))
    return ages


def run(a: argparse.Namespace) -> Figures:
    f = Figures(a.gateways, a.interval, a.rounds, a.time_scale)
    interval = a.interval / a.time_scale
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    print(f"starting {a.gateways} stand-in gateways ({', '.join(a.captures)}) in {work}", file=sys.stderr)
    standins = StandIns(a.shared, a.captures, a.gateways, work / "gateways")
    exporter = None
    try:
        names = [g["name"] for g in standins.gateways]
        capture_of = {g["name"]: g["capture"] for g in standins.gateways}
        write_config(work / "exporter.yml", standins.gateways, a.time_scale)
        started = time.time()
        exporter = Exporter(work / "exporter.yml", work / "exporter.log")
        threads = exporter.sample_threads()
        exporter.wait_listening()
        f.start_cpu_s = exporter.cpu_s()
        print("first collection (the exporter's warm-up) ...", file=sys.stderr)
        last = wait_quiet(standins, quiet_s=3.0, timeout=600)
        f.first_cpu_s = exporter.cpu_s()
        f.first_s = last - started
        f.first_requests_per_gateway = standins.total() / a.gateways

        print(
            f"{a.warm_up_rounds} warm-up + {a.rounds} measured rounds of {a.gateways} probes, "
            f"{interval:g} s each ...",
            file=sys.stderr,
        )
        if a.warm_up_rounds:
            probe_rounds(exporter, names, interval, a.warm_up_rounds)
        before_logs = standins.logs()
        cpu0, t0 = exporter.cpu_s(), time.time()
        probes = probe_rounds(exporter, names, interval, a.rounds)
        cpu1, t1 = exporter.cpu_s(), time.time()
        f.max_threads = threads()
        f.load_average, f.cores = os.getloadavg()[1], os.cpu_count() or 0
        f.peak_rss_mb = exporter.status_kb("VmHWM") / 1024
        logs = standins.logs()

        f.probes = len(probes)
        f.failed_probes = sum(p.status != 200 for p in probes)
        f.down_probes = sum(p.status == 200 and not p.up for p in probes)
        f.cpu_s, f.window_s = cpu1 - cpu0, t1 - t0
        f.cpu_percent = 100 * f.cpu_s / f.window_s
        f.cpu_ms_per_probe = 1000 * f.cpu_s / f.probes
        f.latency_ms = {k: 1000 * v for k, v in _quantiles([p.answered - p.sent for p in probes]).items()}
        asked = {name: len(logs[name]) - len(before_logs[name]) for name in names}
        f.requests_per_probe = sum(asked.values()) / f.probes
        per_capture: dict[str, list[int]] = defaultdict(list)
        for name in names:
            per_capture[capture_of[name]].append(asked[name])
        f.requests_per_probe_by_capture = {
            c: sum(v) / (len(v) * a.rounds) for c, v in sorted(per_capture.items())
        }
        f.power_age_s = _quantiles(_power_ages(probes, logs, interval))

        status, _ = exporter.get("/metrics", timeout=120)
        if status != 200:
            print(f"/metrics answered {status}", file=sys.stderr)
        f.peak_rss_after_metrics_mb = exporter.status_kb("VmHWM") / 1024
    finally:
        if exporter is not None:
            exporter.stop()
        standins.stop()
    return f


def report(f: Figures) -> None:
    goals = GOALS_800 if f.gateways >= 800 else GOALS
    first_goal_cpu = FIRST_BEFORE["cpu_s"] / 2
    first_goal_req = FIRST_BEFORE["requests_per_gateway"] / 2
    scaled = ""
    if f.time_scale != 1:
        scaled = f" (time scale {f.time_scale:g}: CPU % is that many times the real one)"
    rows = [
        (
            f"peak memory, {f.gateways} gateways",
            f"{f.peak_rss_mb:.1f} MB ({f.peak_rss_after_metrics_mb:.1f} MB after one /metrics of all)",
            f"<= {goals['memory_mb']:.0f} MB",
        ),
        (
            f"CPU, {f.gateways} gateways at {f.interval_s:g} s",
            f"{f.cpu_percent:.2f} % of one core, {f.cpu_ms_per_probe:.1f} ms per probe",
            f"<= {goals['cpu_percent']:g} %",
        ),
        (
            f"gateway requests per probe at {f.interval_s:g} s (the mix)",
            f"{f.requests_per_probe:.2f} ("
            + ", ".join(f"{c} {v:.2f}" for c, v in f.requests_per_probe_by_capture.items())
            + f"); freshest power reading at the answer: max {f.power_age_s.get('max', math.nan):.1f} s old",
            f"<= {GOALS['requests_per_probe']:g}, no power value older than the scrape interval",
        ),
        (
            f"first collection of all {f.gateways}",
            f"{f.first_cpu_s:.2f} s CPU (of it {f.start_cpu_s:.2f} s before the server answered), "
            f"{f.first_requests_per_gateway:.2f} requests per gateway, over in {f.first_s:.1f} s",
            f"<= {first_goal_cpu:.2f} s CPU, <= {first_goal_req:.1f} requests (half of "
            f"{FIRST_BEFORE['cpu_s']:g} s, {FIRST_BEFORE['requests_per_gateway']:g})"
            + (f"; ready <= {goals['ready_s']:g} s" if "ready_s" in goals else ""),
        ),
        (
            "threads, the most at any sample (every 0.1 s from the start)",
            f"{f.max_threads}",
            f"<= {goals['threads']}" if "threads" in goals else "",
        ),
        (
            "probe latency (loopback, wall); the worst probe is max",
            ", ".join(f"{k} {v:.0f} ms" for k, v in f.latency_ms.items()),
            f"max <= {goals['worst_ms']} ms" if "worst_ms" in goals else "",
        ),
    ]
    print(
        f"\n{f.gateways} gateways, /probe each every {f.interval_s:g} s, {f.rounds} measured rounds: "
        f"{f.probes} probes, {f.failed_probes} failed, {f.down_probes} with enphase_up 0; "
        f"{f.cpu_s:.2f} s CPU over {f.window_s:.0f} s{scaled}; machine load {f.load_average:.1f} "
        f"on {f.cores} cores (a busy machine inflates CPU time too)\n"
    )
    print_table(rows)


def print_table(rows: list[tuple[str, str, str]]) -> None:
    """The figures as a Markdown table: what | figure | goal."""
    table = [("what", "figure", "goal"), *rows]
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for n, r in enumerate(table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateways", type=int, default=200, help="stand-in gateways (default 200)")
    ap.add_argument("--interval", type=float, default=60.0, help="seconds between probes of one gateway")
    ap.add_argument("--rounds", type=int, default=4, help="measured rounds (default 4)")
    ap.add_argument("--warm-up-rounds", type=int, default=1, help="rounds before measuring (default 1)")
    ap.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="divide the interval and every cache lifetime by this, for a quicker run (default 1)",
    )
    ap.add_argument("--captures", nargs="+", default=list(CAPTURES), help="capture names, used in turn")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared", help="the shared directory")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--serve-gateways", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve_gateways:
        serve_gateways(json.loads(a.serve_gateways))
        return 0
    if not (a.shared / "conformance" / "fake_gateway.py").is_file():
        print(f"no fake gateway at {a.shared / 'conformance'}", file=sys.stderr)
        return 2
    figures = run(a)
    report(figures)
    if a.json:
        a.json.write_text(json.dumps(asdict(figures), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
