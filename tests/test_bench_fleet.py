"""scripts/bench_fleet.py still runs: a few stand-ins, one quick round, figures that add up.

No timing is asserted here (the figures are the script's to print); this keeps the benchmark
from rotting as the exporter changes: it must start the real exporter, probe every gateway and
count what the stand-ins were asked.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, SHARED, needs_shared

pytestmark = [pytest.mark.e2e, needs_shared]


def test_a_short_fleet_run_probes_every_gateway(tmp_path):
    out = tmp_path / "figures.json"
    command = [sys.executable, str(ROOT / "scripts" / "bench_fleet.py"), "--shared", str(SHARED)]
    command += ["--gateways", "5", "--interval", "2", "--rounds", "1", "--warm-up-rounds", "0"]
    run = subprocess.run([*command, "--json", str(out)], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["probes"] == 5
    assert figures["failed_probes"] == 0
    assert figures["down_probes"] == 0
    assert set(figures["requests_per_probe_by_capture"]) == {
        "8.3.1598_collar",
        "7.6.175_with_cts_3phase",
        "8.2.4345_with_device_data",
        "5.0.62",
        "3.9.36",
    }
    # Every gateway was read at least once at the start (its /info and a production endpoint).
    assert figures["first_requests_per_gateway"] >= 2
    assert figures["peak_rss_mb"] > 0 and figures["cpu_s"] >= 0
    assert "| peak memory, 5 gateways" in run.stdout


def test_the_fine_cpu_reading_counts_what_the_clock_ticks_count():
    # Threads that end count too, with what they ran until the last reading before their end
    # (the exporter's threads end after idling: a worker after 30 s without a task).
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_fleet

    burner = (
        "import sys, threading, time\n"
        "def burn(s, burnt=None, idle=None):\n"
        "    t = time.thread_time()\n"
        "    while time.thread_time() - t < s: pass\n"
        "    if idle: burnt.release(); idle.wait()\n"
        "for line in sys.stdin:\n"
        "    burnt, idle = threading.Semaphore(0), threading.Event()\n"
        "    threads = [threading.Thread(target=burn, args=(0.1, burnt, idle)) for _ in range(2)]\n"
        "    [t.start() for t in threads]\n"
        "    burn(0.05)\n"
        "    burnt.acquire(); burnt.acquire()\n"
        "    print('burnt', flush=True)\n"
        "    sys.stdin.readline()\n"
        "    idle.set()\n"
        "    [t.join() for t in threads]\n"
        "    print('ended', flush=True)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", burner], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        fine = bench_fleet.ThreadCPU(child.pid)
        fine0, ticks0 = fine.seconds(), bench_fleet.proc_cpu_s(child.pid)
        for _ in range(3):
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline() == "burnt\n"
            fine.seconds()  # the two threads are done burning, and idle
            child.stdin.write("end\n")
            child.stdin.flush()
            assert child.stdout.readline() == "ended\n"
        used_fine, used_ticks = fine.seconds() - fine0, bench_fleet.proc_cpu_s(child.pid) - ticks0
        assert used_fine >= 3 * (0.05 + 2 * 0.1)
        assert abs(used_fine - used_ticks) <= 0.02 + 0.05 * used_ticks
    finally:
        child.stdin.close()
        child.wait(10)
