#!/usr/bin/env python3
"""What clients guessing basic-auth passwords cost the exporter, and what an authorised client
then waits. Loopback only; bounded in time.

The exporter runs as users run it (``python -m envoy_exporter --demo --web.config.file ...``),
with one user whose password is hashed at bcrypt cost 12 (as ``htpasswd -nBC 12`` makes it).
``--guessers`` clients (16) send wrong passwords back to back for ``--seconds`` (20), each on
its own connection per request; meanwhile one authorised client asks ``/-/healthy`` every 0.2 s.
Printed: the exporter's CPU over the window in cores (from ``/proc/PID/stat``), the guesses
answered by status, and the authorised client's latency (median, 95th percentile, worst).

    python scripts/bench_basic_auth.py [--source DIR] [--guessers 16] [--seconds 20]

``--source`` runs the exporter from another checkout's source tree (its ``envoy_exporter``
package, on PYTHONPATH), to compare a change against what came before it.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import bcrypt

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "prometheus", "a-long-and-right-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ask(port: int, password: str) -> tuple[int, float]:
    token = base64.b64encode(f"{USER}:{password}".encode()).decode()
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/-/healthy", headers={"Authorization": f"Basic {token}"})
        status = conn.getresponse().status
    finally:
        conn.close()
    return status, time.monotonic() - started


def wait_ready(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the exporter exited with {proc.returncode}")
        try:
            ask(port, PASSWORD)
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("the exporter did not start within 60 s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, default=ROOT, help="checkout whose envoy_exporter to run")
    p.add_argument("--guessers", type=int, default=16)
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=12)).decode()
        web = Path(tmp) / "web.yml"
        web.write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
        env = {**os.environ, "PYTHONPATH": str(args.source.resolve())}
        command = [sys.executable, "-m", "envoy_exporter", "--demo", "--web.config.file", str(web)]
        command += ["--web.listen-address", f"127.0.0.1:{port}", "--log.level", "error"]
        proc = subprocess.Popen(command, env=env, cwd=tmp)
        try:
            wait_ready(port, proc)
            run(proc.pid, port, args.guessers, args.seconds)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def run(pid: int, port: int, guessers: int, seconds: float) -> None:
    stop = threading.Event()
    answers: Counter[int] = Counter()
    lock = threading.Lock()

    def guess(n: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                status, _ = ask(port, f"guess-{n}-{i}")
            except OSError:
                status = 0
            with lock:
                answers[status] += 1
            i += 1

    threads = [threading.Thread(target=guess, args=(n,), daemon=True) for n in range(guessers)]
    latencies: list[float] = []
    refused = 0
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    for t in threads:
        t.start()
    while time.monotonic() - t0 < seconds:
        status, took = ask(port, PASSWORD)
        latencies.append(took)
        refused += status != 200
        time.sleep(0.2)
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    stop.set()
    for t in threads:
        t.join(timeout=35)
    cores = (cpu1 - cpu0) / (t1 - t0)
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"guessers: {guessers}, window: {t1 - t0:.1f} s, exporter CPU: {cores:.2f} cores")
    print("guesses answered: " + ", ".join(f"{code}: {n}" for code, n in sorted(answers.items())))
    median, worst = statistics.median(latencies), latencies[-1]
    print(
        f"authorised client: {len(latencies)} requests, {refused} not 200, latency median "
        f"{median * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, worst {worst * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
