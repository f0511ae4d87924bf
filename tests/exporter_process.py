"""The real exporter as a subprocess, for end-to-end tests.

``running_exporter`` writes the config, starts ``python -m envoy_exporter`` on a free loopback
port with its output in a log file, waits until it answers, and stops it by PID on exit.
``get``, ``wait_for`` and ``stop`` serve other processes the tests start too (Prometheus).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, free_port

START_TIMEOUT_S = 20.0
# Loopback only: never let a proxy from the environment see these requests.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body; ``(0, b"")`` when the request fails or the answer is not a 2xx."""
    try:
        with OPENER.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except OSError:
        return 0, b""


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    process: subprocess.Popen,
    log: Path,
    interval: float = 0.5,
) -> None:
    """Poll ``check`` until it holds; fail with the process log if it dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what}: process exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if check():
            return
        time.sleep(interval)
    pytest.fail(f"{what}: not within {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """Terminate the process by its PID; kill it if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass(frozen=True)
class Exporter:
    process: subprocess.Popen
    address: str  # host:port
    log: Path
    config: Path | None

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    def url(self, path: str) -> str:
        return f"http://{self.address}{path}"


@contextmanager
def running_exporter(
    tmp: Path,
    config: dict | Path | None,
    *flags: str,
    ready: str = "/-/ready",
    ready_text: bytes = b"",
    timeout: float = START_TIMEOUT_S,
) -> Iterator[Exporter]:
    """The exporter with ``config`` (a dict is written to ``tmp/exporter.yml``, a path used as it
    is, None: no ``--config.file``) and ``flags``, logging to ``tmp/exporter.log``; ready once
    ``ready`` answers 2xx with ``ready_text`` in its body."""
    command = [sys.executable, "-m", "envoy_exporter"]
    path = config if isinstance(config, Path) else None
    if isinstance(config, dict):
        path = tmp / "exporter.yml"
        path.write_text(yaml.safe_dump(config))
    if path is not None:
        command += ["--config.file", str(path)]
    address = f"127.0.0.1:{free_port()}"
    log = tmp / "exporter.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*command, "--web.listen-address", address, *flags], stdout=out, stderr=subprocess.STDOUT
        )
    exporter = Exporter(process, address, log, path)

    def answered() -> bool:
        status, body = get(exporter.url(ready), timeout=10)
        return status != 0 and ready_text in body

    try:
        wait_for(
            f"exporter {ready}",
            answered,
            timeout,
            process,
            log,
            interval=0.1,
        )
        yield exporter
    finally:
        stop(process)


@dataclass(frozen=True)
class Prometheus:
    process: subprocess.Popen
    address: str  # host:port
    log: Path


@contextmanager
def running_prometheus(tmp: Path, binary: str, config: dict) -> Iterator[Prometheus]:
    """A real Prometheus with ``config``, its data in ``tmp``, on a free loopback port; ready
    once its /-/ready answers. Stopped by PID on exit."""
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    log = tmp / "prometheus.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={path}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address={address}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            "prometheus ready",
            lambda: get(f"http://{address}/-/ready")[0] == 200,
            START_TIMEOUT_S,
            process,
            log,
        )
        yield Prometheus(process, address, log)
    finally:
        stop(process)


RULE_FILES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))


def prometheus_config(exporter_address: str) -> dict:
    """Prometheus scraping the exporter every second, evaluating the shipped rules every second,
    under the job name the alert rules assume."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in RULE_FILES],
        "scrape_configs": [{"job_name": "envoy", "static_configs": [{"targets": [exporter_address]}]}],
    }


def alerts(prometheus_address: str) -> list[dict]:
    """The labels of every alert Prometheus has pending or firing (``ALERTS``)."""
    query = urllib.parse.urlencode({"query": "ALERTS"})
    body = get(f"http://{prometheus_address}/api/v1/query?{query}")[1]
    return [result["metric"] for result in json.loads(body)["data"]["result"]] if body else []
