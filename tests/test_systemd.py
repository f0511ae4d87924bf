"""The systemd units in ``systemd/``: the service starts the exporter with flags it accepts, on
the socket the socket unit holds, with the state directory the example configuration names,
hardened; and ``systemd-analyze verify`` accepts both units where it is installed."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from envoy_exporter.cli import DEFAULT_LISTEN, parser

UNITS = ROOT / "systemd"
SERVICE = UNITS / "envoy-exporter.service"
SOCKET = UNITS / "envoy-exporter.socket"


def directives(path: Path) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file, by key, in order (systemd allows repeated keys)."""
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_service_starts_the_exporter_on_the_systemd_socket_with_flags_it_accepts() -> None:
    (command,) = directives(SERVICE)["ExecStart"]
    program, *flags = shlex.split(command)
    assert program.endswith("/bin/envoy-exporter")
    args = parser().parse_args(flags)
    assert args.systemd_socket and args.config == "/etc/envoy-exporter/exporter.yml"


def test_the_socket_is_the_default_port() -> None:
    assert directives(SOCKET)["ListenStream"] == [DEFAULT_LISTEN.lstrip(":")]
    assert "envoy-exporter.socket" in directives(SERVICE)["Requires"]


def test_the_state_directory_is_the_example_configurations() -> None:
    example = yaml.safe_load((ROOT / "exporter.yml").read_text())
    assert directives(SERVICE)["StateDirectory"] == [Path(example["state_dir"]).name]
    assert example["state_dir"] == "/var/lib/envoy-exporter"
    assert directives(SERVICE)["StateDirectoryMode"] == ["0700"]


def test_the_service_is_hardened() -> None:
    found = directives(SERVICE)
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictSUIDSGID": "yes",
        "SystemCallArchitectures": "native",
        "UMask": "0077",
        "RestartPreventExitStatus": "2",  # a bad configuration is not restarted in a loop
    }.items():
        assert found[key] == [value], key
    assert found["User"] == ["envoy-exporter"]
    assert "@system-service" in found["SystemCallFilter"]


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verifies_both_units(tmp_path: Path) -> None:
    # The service's program must exist for verify: this Python stands in for the installed one.
    for unit in (SERVICE, SOCKET):
        text = unit.read_text().replace("/opt/envoy-exporter/bin/envoy-exporter", sys.executable)
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / SOCKET.name), str(tmp_path / SERVICE.name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
