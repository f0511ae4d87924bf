"""A new user's first minutes, end to end: three healthy stand-in gateways, one with a wrong
password, one that nothing answers, the real exporter and a real Prometheus with the shipped rules.

What must hold from the first second: the healthy gateways show no failed endpoint and no error
text; the page shows their power; the wrong password and the dead host each have an alert pending
and a row saying why; the healthy ones raise no alert but the one about reporting to Enlighten
(the captures are old); the dead host is logged at most twice.

And what a newcomer types first: ``--help`` names the ``capture`` subcommand, and
``--check-config`` creates nothing. (That the user docs tell no history is ``test_docs``.)

Needs ``../shared`` (the captures and their stand-in gateway) and Debian's ``prometheus``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import SHARED_FIXTURES, free_port, load_fake_gateway, needs_shared
from exporter_process import Exporter, alerts, get, prometheus_config, running_exporter, running_prometheus

PROMETHEUS_BIN = shutil.which("prometheus")
pytestmark = [
    pytest.mark.e2e,
    needs_shared,
    pytest.mark.skipif(PROMETHEUS_BIN is None, reason="no prometheus (apt-get install prometheus)"),
]

HEALTHY = {"barn": "5.0.62", "collar": "8.3.1598_collar", "older": "7.6.175"}
WATCH_S = 20  # the first seconds, watched one by one
ALLOWED_ON_HEALTHY = {"EnphaseGatewayNotReportingToEnlighten"}


@dataclass
class FirstMinutes:
    exporter: Exporter
    prometheus_address: str
    # Per second of the first WATCH_S: what /metrics and the page said.
    metrics: list[str] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)

    def rows(self, page: str) -> dict[str, str]:
        """gateway name -> the HTML of its row (or card) on the status page."""
        return dict(re.findall(r'<section class="gateway[^"]*" id="gw-([^"]+)"(.*?)</section>', page, re.S))


def _config(gateways: dict[str, object], state_dir: Path) -> dict:
    entries = []
    for name, gateway in gateways.items():
        entry: dict[str, object] = {"name": name, "host": gateway.url}
        if gateway.token_era:
            entry["token"] = gateway.token
        entries.append(entry)
    return {"state_dir": str(state_dir), "gateways": entries}


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstMinutes]:
    tmp = tmp_path_factory.mktemp("first-hour")
    fake = load_fake_gateway()
    gateways = {name: fake.Gateway(SHARED_FIXTURES / capture) for name, capture in HEALTHY.items()}
    gateways["locked"] = fake.Gateway(SHARED_FIXTURES / "5.0.62")
    for gateway in gateways.values():
        gateway.start()
    config = _config(gateways, tmp / "state")
    config["gateways"][3]["password"] = "wrong1"
    config["gateways"].append({"name": "gone", "host": f"http://127.0.0.1:{free_port()}"})
    try:
        with (
            running_exporter(tmp, config, ready="/-/healthy") as exporter,
            running_prometheus(tmp, str(PROMETHEUS_BIN), prometheus_config(exporter.address)) as prometheus,
        ):
            watched = FirstMinutes(exporter, prometheus.address)
            started = time.monotonic()
            for second in range(WATCH_S):
                time.sleep(max(0.0, started + second - time.monotonic()))
                watched.metrics.append(get(exporter.url("/metrics"), timeout=10)[1].decode())
                watched.pages.append(get(exporter.url("/"), timeout=10)[1].decode())
            watched.alerts = _alerts_once_settled(watched.prometheus_address)
            yield watched
    finally:
        for gateway in gateways.values():
            gateway.stop()


def _alerts_once_settled(prometheus_address: str) -> list[dict]:
    """ALERTS once both broken gateways have one pending (at most ~20 s more)."""
    raised: list[dict] = []
    for _ in range(20):
        raised = alerts(prometheus_address)
        if {"locked", "gone"} <= {alert.get("gateway") for alert in raised}:
            break
        time.sleep(1.0)
    return raised


def _failed_endpoints(metrics: str, gateway: str) -> list[str]:
    return re.findall(rf'enphase_endpoint_up\{{[^}}]*gateway="{gateway}"[^}}]*\}} 0', metrics)


@pytest.mark.parametrize("gateway", sorted(HEALTHY))
def test_healthy_gateways_show_no_failed_endpoint_at_any_second(first: FirstMinutes, gateway: str) -> None:
    assert [(second, _failed_endpoints(text, gateway)) for second, text in enumerate(first.metrics)] == [
        (second, []) for second in range(WATCH_S)
    ]


@pytest.mark.parametrize("gateway", sorted(HEALTHY))
def test_healthy_gateways_show_no_error_text_at_any_second(first: FirstMinutes, gateway: str) -> None:
    errors = [(second, first.rows(page).get(gateway, "")) for second, page in enumerate(first.pages)]
    assert [(second, row) for second, row in errors if 'class="error' in row] == []


@pytest.mark.parametrize("gateway", sorted(HEALTHY))
def test_the_page_shows_the_power(first: FirstMinutes, gateway: str) -> None:
    row = first.rows(first.pages[-1])[gateway]
    assert re.search(r"Production.*?\d+(\.\d+)? k?W", row, re.S), row


def test_the_wrong_password_says_why(first: FirstMinutes) -> None:
    row = first.rows(first.pages[-1])["locked"]
    assert "password rejected for user envoy" in row


def test_the_dead_host_says_why(first: FirstMinutes) -> None:
    row = first.rows(first.pages[-1])["gone"]
    assert "connection refused" in row
    assert first.exporter.address not in row and "127.0.0.1:" in row  # the gateway's URL


def test_the_broken_gateways_each_have_an_alert_pending(first: FirstMinutes) -> None:
    by_gateway = {(alert["gateway"], alert["alertname"]) for alert in first.alerts if "gateway" in alert}
    assert ("locked", "EnphaseCredentialsRejected") in by_gateway
    assert ("gone", "EnphaseGatewayDown") in by_gateway


def test_healthy_gateways_raise_no_alert_but_enlighten_reporting(first: FirstMinutes) -> None:
    raised = {
        (alert["gateway"], alert["alertname"])
        for alert in first.alerts
        if alert.get("gateway") in HEALTHY and alert["alertname"] not in ALLOWED_ON_HEALTHY
    }
    assert raised == set()


def test_the_dead_host_is_logged_at_most_twice(first: FirstMinutes) -> None:
    log = first.exporter.log.read_text()
    warnings = [
        line for line in log.splitlines() if "gone" in line and re.search(r"level=(warn|error)", line)
    ]
    assert len(warnings) <= 2, "\n".join(warnings)


def test_help_names_the_capture_subcommand() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "envoy_exporter", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and re.search(r"^  capture\s", result.stdout, re.M), result.stdout


def test_check_config_creates_nothing(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\ngateways:\n  - name: home\n    host: 192.0.2.10\n")
    result = subprocess.run(
        [sys.executable, "-m", "envoy_exporter", "--config.file", str(config), "--check-config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "does not exist yet; the exporter will create it" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exporter.yml"]
