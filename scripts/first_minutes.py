#!/usr/bin/env python3
"""What a new user sees in the exporter's first 20 seconds, as figures.

Starts three healthy stand-in gateways (5.0.62 by digest, 8.3.1598_collar and 7.6.175 by token,
from ``../shared``), one with a wrong digest password and one that nothing answers, runs the
exporter found on ``PYTHONPATH`` (or installed) with them, scrapes ``/metrics`` once a second for
20 seconds, and prints how many ``enphase_endpoint_up`` 0 samples the healthy gateways showed,
how many warning or error lines the log gave for the dead host, and whether the status page
shows power. ``tests/test_first_hour.py`` asserts the same, and more, with a real Prometheus.

    python scripts/first_minutes.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
HEALTHY = {"barn": "5.0.62", "collar": "8.3.1598_collar", "older": "7.6.175"}
SECONDS = 20
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> str:
    with OPENER.open(url, timeout=10) as response:
        return response.read().decode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location(
        "fake_gateway", args.shared / "conformance" / "fake_gateway.py"
    )
    assert spec and spec.loader
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    fixtures = args.shared / "fixtures" / "envoy"
    gateways = {name: fake.Gateway(fixtures / capture) for name, capture in HEALTHY.items()}
    gateways["locked"] = fake.Gateway(fixtures / "5.0.62")
    entries = []
    for name, gateway in gateways.items():
        gateway.start()
        entry = {"name": name, "host": gateway.url}
        if gateway.token_era:
            entry["token"] = gateway.token
        entries.append(entry)
    entries[-1]["password"] = "wrong1"
    entries.append({"name": "gone", "host": f"http://127.0.0.1:{free_port()}"})
    with tempfile.TemporaryDirectory() as tmp:
        config, log = Path(tmp) / "exporter.yml", Path(tmp) / "exporter.log"
        config.write_text(yaml.safe_dump({"gateways": entries}))
        url = f"http://127.0.0.1:{free_port()}"
        with log.open("w") as out:
            command = [sys.executable, "-m", "envoy_exporter", "--config.file", str(config)]
            exporter = subprocess.Popen([*command, "--web.listen-address", url[7:]], stderr=out)
        try:
            zeros, page = watch(url)
        finally:
            exporter.terminate()
            exporter.wait(timeout=10)
            for gateway in gateways.values():
                gateway.stop()
        warnings = [
            line
            for line in log.read_text().splitlines()
            if "gone" in line and re.search(r"level=(warn|error)", line)
        ]
    print(f"enphase_endpoint_up 0 samples of the healthy gateways over {SECONDS} scrapes: {zeros}")
    print(f"warning or error lines for the dead host over {SECONDS} scrapes: {len(warnings)}")
    print(f"the status page shows power: {'yes' if re.search(r'[0-9] k?W<', page) else 'no'}")
    return 0


def watch(url: str) -> tuple[int, str]:
    for _ in range(100):
        try:
            get(url + "/-/healthy")
            break
        except OSError:
            time.sleep(0.1)
    zeros, started = 0, time.monotonic()
    healthy = "|".join(HEALTHY)
    for second in range(SECONDS):
        time.sleep(max(0.0, started + second - time.monotonic()))
        body = get(url + "/metrics")
        zeros += len(re.findall(rf'enphase_endpoint_up\{{[^}}]*gateway="(?:{healthy})"[^}}]*\}} 0', body))
    return zeros, get(url + "/")


if __name__ == "__main__":
    sys.exit(main())
