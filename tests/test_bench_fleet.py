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
