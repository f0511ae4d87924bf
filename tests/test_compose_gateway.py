"""The container path for a real gateway, checked without a Docker engine: the compose override,
the one-gateway template and its env file agree with each other, with the Dockerfile and with the
docs, and the exporter starts with them as written instead of exiting 2 (and restarting for ever)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
import yaml
from conftest import ROOT, free_port
from exporter_process import get

from envoy_exporter.config.load import load_config

OVERRIDE_FILE = ROOT / "docker-compose.gateway.yml"
OVERRIDE = yaml.safe_load(OVERRIDE_FILE.read_text())
TEMPLATE = ROOT / "docker" / "exporter.yml"
ENV_EXAMPLE = ROOT / "docker" / "envoy.env.example"
CONTAINER_CONFIG = "/etc/envoy-exporter/exporter.yml"


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as compose's env_file reads them."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def container_template(tmp_path: Path) -> Path:
    """The template with its state_dir moved into tmp_path: a test must not write /var/lib."""
    text = TEMPLATE.read_text().replace("/var/lib/envoy-exporter", str(tmp_path / "state"))
    path = tmp_path / "exporter.yml"
    path.write_text(text)
    return path


def test_override_runs_the_template_with_the_env_file_and_a_state_volume():
    (exporter,) = OVERRIDE["services"].values()
    assert list(OVERRIDE["services"]) == ["exporter"]
    assert exporter["command"] == [f"--config.file={CONTAINER_CONFIG}"]
    assert exporter["env_file"] == "envoy.env"
    sources = {volume.split(":")[1]: volume.split(":")[0] for volume in exporter["volumes"]}
    assert (ROOT / sources[CONTAINER_CONFIG]).resolve() == TEMPLATE
    assert sources["/var/lib/envoy-exporter"] in OVERRIDE["volumes"]
    # The secrets stay out of git and out of the image's build context.
    assert "envoy.env" in (ROOT / ".gitignore").read_text().split()
    assert "envoy.env" in (ROOT / ".dockerignore").read_text().split()


def test_env_example_sets_exactly_what_the_template_uses():
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", TEMPLATE.read_text()))
    assert used == set(env_file(ENV_EXAMPLE)) == {"ENVOY_NAME", "ENVOY_HOST", "ENVOY_TOKEN"}


def test_template_loads_with_the_example_values(tmp_path):
    settings = load_config(container_template(tmp_path), env=env_file(ENV_EXAMPLE))
    (gateway,) = settings.gateways
    assert (gateway.name, gateway.host, gateway.token) == ("home", "192.168.1.50", "paste-your-token-here")
    assert settings.state_dir == tmp_path / "state"
    assert "state_dir: /var/lib/envoy-exporter" in TEMPLATE.read_text()  # the image's state volume


def test_the_image_uses_the_template_by_default():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"COPY docker/exporter.yml {CONTAINER_CONFIG}" in dockerfile
    assert f'CMD ["--config.file={CONTAINER_CONFIG}"]' in dockerfile
    assert "docker" not in (ROOT / ".dockerignore").read_text().split()


def test_docs_give_the_override_as_written():
    docs = (ROOT / "docs" / "dashboards.md").read_text()
    assert "cp docker/envoy.env.example envoy.env" in docs
    assert "docker compose -f docker-compose.yml -f docker-compose.gateway.yml up -d" in docs
    assert (
        "./exporter.yml:/etc/envoy-exporter/exporter.yml" not in docs
    )  # the example that restarted for ever


@pytest.mark.e2e
@pytest.mark.parametrize("token", ["placeholder", "jwt"])
def test_exporter_starts_with_the_template(tmp_path, token):
    """What the container runs: a placeholder token is a warning and enphase_up 0, not exit 2
    (which compose's restart policy would turn into a restart loop); a real one passes
    --check-config."""
    env = {**os.environ, **env_file(ENV_EXAMPLE)}
    env["ENVOY_HOST"] = f"127.0.0.1:{free_port()}"  # nothing listens there: no real network
    if token == "jwt":
        env["ENVOY_TOKEN"] = jwt.encode(
            {"aud": "122212345678", "exp": 4102444800}, "k" * 32, algorithm="HS256"
        )
    config = container_template(tmp_path)
    command = [sys.executable, "-m", "envoy_exporter", "--config.file", str(config)]
    check = subprocess.run([*command, "--check-config"], env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode == (0 if token == "jwt" else 2), check.stderr
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [*command, "--web.listen-address", address], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while get(f"http://{address}/-/healthy")[0] != 200:
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "not healthy within 20 s"
            time.sleep(0.2)
        assert b'enphase_up{gateway="home"} 0.0' in get(f"http://{address}/metrics", timeout=30)[1]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
