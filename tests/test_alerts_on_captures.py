"""Every shipped alert against every shared capture, as a real Prometheus sees them.

The captures are healthy systems recorded by their owners: one exporter serves all of them
(each replayed by the conformance stand-in gateway), a real Prometheus with the shipped rules
scrapes it every second, and after the first evaluations no alert may be pending or firing
except the one about reporting to Enlighten (the captures are old, so their last report is).
A ``for:`` longer than the test does not hide anything here: a pending alert is in ``ALERTS``
from the first evaluation whose expression matches.

Needs ``../shared`` and Debian's ``prometheus``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SHARED_FIXTURES, load_fake_gateway, needs_shared
from exporter_process import alerts, prometheus_config, running_exporter, running_prometheus

PROMETHEUS_BIN = shutil.which("prometheus")
pytestmark = [
    pytest.mark.e2e,
    needs_shared,
    pytest.mark.skipif(PROMETHEUS_BIN is None, reason="no prometheus (apt-get install prometheus)"),
]
# The captures are months or years old: their gateway's last report to Enlighten is too.
ALLOWED = {"EnphaseGatewayNotReportingToEnlighten"}
# Recorded from a gateway that refused the password (401 on the one endpoint that needs it):
# not healthy, and the alert for it must speak.
REFUSING = {"3.9.36_bad_auth"}
EVALUATIONS_S = 12


def _captures() -> list[str]:
    if not SHARED_FIXTURES.is_dir():
        return []
    return sorted(p.name for p in SHARED_FIXTURES.iterdir() if (p / "info").is_file())


def _watch(tmp: Path, config: dict | None, *flags: str) -> list[dict]:
    """Every alert Prometheus had pending or firing at any evaluation of the first seconds."""
    seen: dict[tuple, dict] = {}
    exporter = running_exporter(tmp, config, *flags, ready="/metrics", ready_text=b"enphase_up", timeout=60)
    with exporter as running:
        prometheus = running_prometheus(tmp, str(PROMETHEUS_BIN), prometheus_config(running.address))
        with prometheus as server:
            for _ in range(EVALUATIONS_S):
                time.sleep(1.0)
                for alert in alerts(server.address):
                    seen[(alert.get("gateway"), alert["alertname"])] = alert
    return list(seen.values())


@pytest.fixture(scope="module")
def capture_alerts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict]]:
    fake = load_fake_gateway()
    gateways = {name: fake.Gateway(SHARED_FIXTURES / name) for name in _captures()}
    entries = []
    for name, gateway in gateways.items():
        gateway.start()
        entry = {"name": name, "host": gateway.url}
        if gateway.token_era:
            entry["token"] = gateway.token
        entries.append(entry)
    tmp = tmp_path_factory.mktemp("alerts-on-captures")
    try:
        yield _watch(tmp, {"state_dir": str(tmp / "state"), "gateways": entries})
    finally:
        for gateway in gateways.values():
            gateway.stop()


@pytest.mark.parametrize("capture", _captures())
def test_a_healthy_capture_raises_no_alert_but_enlighten_reporting(capture_alerts: list[dict], capture: str):
    raised = {alert["alertname"] for alert in capture_alerts if alert.get("gateway") == capture}
    if capture in REFUSING:
        assert "EnphaseCredentialsRejected" in raised
        raised.discard("EnphaseCredentialsRejected")
    assert raised - ALLOWED == set()


def test_the_captures_raise_nothing_exporter_wide(capture_alerts: list[dict]) -> None:
    assert [alert for alert in capture_alerts if "gateway" not in alert] == []


def test_the_demo_raises_no_alert(tmp_path: Path) -> None:
    assert _watch(tmp_path, None, "--demo") == []
