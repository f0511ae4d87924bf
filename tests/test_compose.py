"""docker-compose.yml and everything it mounts, checked without a Docker engine: the YAML
parses, every local file and directory it uses exists, the Prometheus configuration passes
``promtool check config``, Grafana's provisioning files have the keys Grafana needs, and the
services find each other by the names and ports the files use."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import ROOT
from promql_helpers import DASHBOARDS

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
EXPORTER_PORT = 9433  # the Dockerfile's entrypoint listens here
promtool = shutil.which("promtool")


def mounts(service: str) -> dict[PurePosixPath, Path]:
    """Container path -> local path, for the bind mounts (named volumes left out)."""
    found = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            found[PurePosixPath(target)] = (ROOT / source).resolve()
    return found


def local(service: str, container_path: str) -> Path:
    """The local file behind a path inside a service's container (longest mount wins)."""
    path = PurePosixPath(container_path)
    for target, source in sorted(mounts(service).items(), key=lambda m: len(m[0].parts), reverse=True):
        if path == target or target in path.parents:
            return source / path.relative_to(target)
    raise AssertionError(f"{container_path} is not mounted into {service}")


def flag(service: str, name: str) -> str:
    prefix = f"--{name}="
    (value,) = [arg[len(prefix) :] for arg in SERVICES[service]["command"] if arg.startswith(prefix)]
    return value


def test_services() -> None:
    assert set(SERVICES) == {"exporter", "prometheus", "grafana"}
    assert set(COMPOSE["volumes"]) == {"prometheus-data", "grafana-data"}
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(".") or source in COMPOSE["volumes"], f"{name}: {volume}"


def test_every_bind_mount_exists() -> None:
    for service in SERVICES:
        for target, source in mounts(service).items():
            assert source.exists(), f"{service}: {source} (for {target}) is missing"
            assert ROOT in source.parents, f"{service}: {source} is outside the repository"


def test_exporter_is_built_from_the_repository_in_demo_mode() -> None:
    exporter = SERVICES["exporter"]
    assert (ROOT / exporter["build"]).resolve() == ROOT
    assert (ROOT / "Dockerfile").is_file()
    assert "--demo" in exporter["command"]
    assert any(port.endswith(f":{EXPORTER_PORT}") for port in exporter["ports"])


def test_prometheus_config_is_mounted_and_scrapes_the_exporter() -> None:
    config_path = local("prometheus", flag("prometheus", "config.file"))
    assert config_path == ROOT / "prometheus" / "prometheus.yml"
    config = yaml.safe_load(config_path.read_text())
    targets = [t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]]
    assert targets == [f"exporter:{EXPORTER_PORT}"]
    assert sorted(config_path.parent.glob(config["rule_files"][0])) == sorted(
        (ROOT / "prometheus" / "rules").glob("*.yml")
    )


@pytest.mark.e2e
@pytest.mark.skipif(promtool is None, reason="no promtool (apt-get install prometheus)")
def test_promtool_check_config() -> None:
    config_path = local("prometheus", flag("prometheus", "config.file"))
    result = subprocess.run(
        [promtool, "check", "config", str(config_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rule_files = len(list((ROOT / "prometheus" / "rules").glob("*.yml")))
    assert f"{rule_files} rule files found" in result.stdout + result.stderr


def provisioning(kind: str) -> list[dict]:
    folder = local("grafana", "/etc/grafana/provisioning") / kind
    files = sorted(folder.glob("*.yml"))
    assert files, f"no {kind} provisioning files"
    return [yaml.safe_load(path.read_text()) for path in files]


def test_grafana_datasource_points_at_the_prometheus_service() -> None:
    (document,) = provisioning("datasources")
    assert document["apiVersion"] == 1
    (source,) = document["datasources"]
    assert source["type"] == "prometheus"
    assert source["access"] == "proxy"
    assert source["isDefault"] is True
    assert {"name", "uid", "url"} <= set(source)
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus"
    assert url.port == 9090
    scrape_interval = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())["global"]
    # Grafana's $__rate_interval is only right when it knows the scrape interval.
    assert source["jsonData"]["timeInterval"] == scrape_interval["scrape_interval"]


def test_grafana_dashboard_provider_loads_the_generated_dashboards() -> None:
    (document,) = provisioning("dashboards")
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    assert {"name", "orgId", "folder", "options"} <= set(provider)
    folder = local("grafana", provider["options"]["path"])
    assert folder == DASHBOARDS
    assert {"enphase-overview.json", "enphase-exporter.json"} <= {p.name for p in folder.glob("*.json")}
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert local("grafana", home).is_file()
