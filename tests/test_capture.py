"""``envoy-exporter capture``: the endpoint catalogue, redaction, the redaction check, and a
capture of the demo that replays through the shared fake gateway to the same metrics."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import SHARED, load_fake_gateway
from exporter_process import OPENER, running_exporter
from prometheus_client.parser import text_string_to_metric_families

from envoy_exporter import capture
from envoy_exporter.cli import main
from envoy_exporter.config.settings import GatewaySettings, Secret
from envoy_exporter.demo import DemoGateway
from envoy_exporter.demo.render import SERIAL
from envoy_exporter.demo.simulator import Plant
from envoy_exporter.gateway import endpoints
from envoy_exporter.gateway.endpoints import Endpoint

T0 = 1_790_000_000.0
FAKE_GATEWAY = SHARED / "conformance" / "fake_gateway.py"


class PinnedClock:
    """The demo's sun stands still: every answer is the same, so two collections compare."""

    def __call__(self) -> float:
        return T0


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoGateway]:
    gateway = DemoGateway(Plant(clock=PinnedClock(), start_hour=12.5)).start()
    yield gateway
    gateway.stop()


def demo_settings(demo: DemoGateway) -> GatewaySettings:
    return GatewaySettings(name="demo", host=demo.url, token=Secret(demo.token))


@pytest.fixture(scope="module")
def taken(demo: DemoGateway, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, capture.Capture]:
    out = tmp_path_factory.mktemp("capture") / "demo"
    return out, capture.take(demo_settings(demo), None, out, pause=0)


# ------------------------------------------------------------------------------------------------
# What is asked


def test_catalogue_is_every_path_of_the_catalogue_once_info_first() -> None:
    paths = [path for _, path in capture.catalogue()]
    assert paths[0] == "/info"
    assert len(paths) == len(set(paths))
    assert set(paths) == {path for endpoint in endpoints.CATALOGUE for path in endpoint.paths}
    # the variants the client probes are there too
    assert {"/production.json", "/production.json?details=1", "/production"} <= set(paths)


def test_a_new_endpoint_is_captured_without_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    row = Endpoint("grid_profile", ("/ivp/grid/profile",), bytes, "settings", True, "grid profile series")
    monkeypatch.setattr(endpoints, "CATALOGUE", (*endpoints.CATALOGUE, row))
    assert (row, "/ivp/grid/profile") in capture.catalogue()


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/info", "info"),
        ("/ivp/meters/readings", "ivp_meters_readings"),
        ("/production.json?details=1", "production.json_details_1"),
        ("/inventory.json?deleted=1", "inventory.json_deleted_1"),
        ("/api/v1/production/inverters", "api_v1_production_inverters"),
    ],
)
def test_file_names_follow_the_shared_captures(path: str, name: str) -> None:
    assert capture.file_name(path) == name


@pytest.mark.e2e
def test_requests_are_sequential_with_a_pause(demo: DemoGateway) -> None:
    pauses: list[float] = []
    answers = capture.fetch_all(demo_settings(demo), None, pause=0.25, sleep=pauses.append)
    assert [a.path for a in answers] == [path for _, path in capture.catalogue()]
    assert pauses == [0.25] * (len(answers) - 1)


# ------------------------------------------------------------------------------------------------
# Redaction


def redacted(*texts: str, settings: GatewaySettings | None = None) -> tuple[list[str], capture.Redactor]:
    redactor = capture.Redactor()
    if settings is not None:
        redactor.learn_settings(settings)
    for text in texts:
        redactor.learn(text)
    return [redactor.redact(text) for text in texts], redactor


def test_a_serial_gets_the_same_stand_in_in_json_xml_and_html() -> None:
    xml = "<envoy_info><device><sn>122439017264</sn></device></envoy_info>"
    inventory = json.dumps([{"devices": [{"serial_num": "482301012345"}, {"serial_num": 122439017264}]}])
    html = "<td>Serial 122439017264</td><td>482301012345</td><td>1224390172640</td>"
    (xml2, inventory2, html2), redactor = redacted(xml, inventory, html)
    gateway, inverter = redactor.originals["122439017264"][1], redactor.originals["482301012345"][1]
    assert gateway != inverter
    assert len(gateway) == len(inverter) == 12
    assert gateway.startswith("9000")
    assert f"<sn>{gateway}</sn>" in xml2
    assert json.loads(inventory2) == [{"devices": [{"serial_num": inverter}, {"serial_num": int(gateway)}]}]
    # inside HTML too; a longer number that merely contains the serial is not it
    assert html2 == f"<td>Serial {gateway}</td><td>{inverter}</td><td>1224390172640</td>"


def test_emails_macs_ips_tokens_and_secret_keys_are_replaced() -> None:
    token = "eyJhbGciOiJFUzI1NiJ9.eyJhdWQiOiIxMjI0MzkwMTcyNjQifQ.c2lnbmF0dXJl"
    home = json.dumps(
        {
            "network": {
                "interfaces": [
                    {"mac": "00:1D:C0:73:5C:04", "ip": "192.168.5.96", "netmask": "255.255.255.0"},
                    {"mac": "00:1d:c0:73:5c:04", "ip": "fe80::21d:c0ff:fe73:5c04"},
                ]
            },
            "owner": "jane.doe@mail.example.org",
            "session_id": "5f1e2d3c4b5a69788796a5b4",
            "site_id": 4211234,
            "jwt": token,
            "gateway": "http://192.168.5.96/home",
        }
    )
    header = "openresty/1.17.8.1"
    (home2, header2), redactor = redacted(home, header)
    out = json.loads(home2)
    first, second = out["network"]["interfaces"]
    assert first["mac"] == second["mac"] == "02:00:00:00:00:01"  # the same MAC, whatever its case
    assert first["ip"] == "192.0.2.1"
    assert first["netmask"] == "255.255.255.0"
    assert second["ip"].startswith("2001:db8::")
    assert out["owner"] == "user1@example.invalid"
    assert out["session_id"] == "redacted-secret-1"
    assert out["site_id"] == 90000001
    assert out["jwt"] == "redacted-token-1"
    assert out["gateway"] == "http://192.0.2.1/home"
    assert header2 == header  # a product version is not an address
    assert set(redactor.summary()) == {"email", "ip", "mac", "secret", "site", "token"}


def test_the_configured_credentials_and_host_are_replaced() -> None:
    settings = GatewaySettings(
        name="home",
        host="https://envoy.lan",
        serial="122439017264",
        password=Secret("017264"),
        enlighten_username="owner@example.com",
        enlighten_password=Secret("hunter2-but-longer"),
    )
    text = "owner@example.com at envoy.lan said hunter2-but-longer; 017264 but not 10172640"
    (out,), _ = redacted(text, settings=settings)
    assert out == (
        "user1@example.invalid at gateway1.example.invalid said redacted-secret-2; "
        "redacted-secret-1 but not 10172640"
    )


# ------------------------------------------------------------------------------------------------
# The folder and the check


def test_the_demo_capture_has_the_shared_layout_and_no_original(taken: tuple[Path, capture.Capture]) -> None:
    out, result = taken
    names = {p.name for p in out.iterdir()}
    for _, path in capture.catalogue():
        name = capture.file_name(path)
        assert f"{name}_log.json" in names
        log = json.loads((out / f"{name}_log.json").read_text())
        assert set(log) >= {"headers", "code"}
    assert json.loads((out / "info_log.json").read_text())["code"] == 200
    assert json.loads((out / "info_log.json").read_text())["headers"]["content-type"] == "text/xml"
    # the demo has no HTML production page: captured as the 404 it is
    assert json.loads((out / "production_log.json").read_text())["code"] == 404
    assert "_readme" in names
    everything = b"".join(p.read_bytes() for p in out.iterdir())
    assert SERIAL.encode() not in everything
    assert result.redactor.summary()["serial"] >= 20  # the gateway, its inverters, batteries, relays
    for original in result.redactor.originals:
        assert original.encode() not in everything
    assert capture.check_folder(out, [(k, o) for o, (k, _) in result.redactor.originals.items()]) == []


def _copy(folder: Path, to: Path) -> Path:
    """A copy of a capture folder, to damage without touching the module's capture."""
    to.mkdir()
    for path in folder.iterdir():
        (to / path.name).write_bytes(path.read_bytes())
    return to


def test_redact_check_lists_a_leak_and_fails(
    taken: tuple[Path, capture.Capture], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = taken
    copy = _copy(out, tmp_path / "copy")
    assert main(["capture", "--redact-check", "--out", str(copy)]) == 0
    inventory = copy / "inventory.json"
    inventory.write_text(inventory.read_text().replace('"serial_num": "9000', '"serial_num": "1224', 1))
    (copy / "home.json").write_text('{"owner": "jane@mail.example.org", "ip": "10.1.2.3"}')
    capsys.readouterr()
    assert main(["capture", "--redact-check", "--out", str(copy)]) == 1
    report = capsys.readouterr().err
    assert "inventory.json: serial 122…" in report
    assert "home.json: email jan…rg" in report
    assert "home.json: ip 10.…" in report
    assert "jane@mail.example.org" not in report  # the report does not republish what leaked


def test_redact_check_finds_the_configured_token(
    taken: tuple[Path, capture.Capture], demo: DemoGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = taken
    copy = _copy(out, tmp_path / "copy")
    (copy / "_readme").write_text(f"token was {demo.token[:20]}x and {demo.token}\n")
    config = tmp_path / "exporter.yml"
    config.write_text(yaml.safe_dump({"gateways": [{"name": "demo", "host": demo.url, "token": demo.token}]}))
    args = ["capture", "--redact-check", "--config.file", str(config), "--target", "demo", "--out", str(copy)]
    assert main(args) == 1
    assert "_readme: token eyJ…" in capsys.readouterr().err


def test_cli_capture_of_the_demo(
    demo: DemoGateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "exporter.yml"
    config.write_text(yaml.safe_dump({"gateways": [{"name": "demo", "host": demo.url, "token": demo.token}]}))
    out = tmp_path / "cap"
    args = ["capture", "--config.file", str(config), "--target", "demo", "--out", str(out), "--pause", "0"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "/ivp/meters/readings: 200" in printed
    assert "no serial, token, cookie, e-mail, site id, MAC or IP address left" in printed
    assert main(args) == 2  # never into a folder that holds something
    assert "is not empty" in capsys.readouterr().err
    assert main([*args[:3], "--target", "elsewhere", "--out", str(tmp_path / "x")]) == 2
    assert "no gateway 'elsewhere'" in capsys.readouterr().err
    config.write_text(yaml.safe_dump({"gateways": [{"host": "192.0.2.1"}, {"host": "192.0.2.2"}]}))
    assert main([*args[:3], "--out", str(tmp_path / "y")]) == 2
    assert "--target: which gateway? (configured: 192.0.2.1, 192.0.2.2)" in capsys.readouterr().err


def test_a_gateway_that_does_not_answer_gives_no_capture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = GatewaySettings(name="gone", host=f"http://127.0.0.1:{port}", timeout=1.0)
    assert capture.capture(settings, None, tmp_path / "cap", pause=0) == 1
    assert "/info gave no usable answer" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "cap").iterdir() if p.name != "_readme"] == ["info_log.json"]


# ------------------------------------------------------------------------------------------------
# Round trip: the demo, and its capture replayed by the shared fake gateway, give the same metrics

# What describes the exporter's own requests to each gateway rather than the gateway's data:
# timings, request counts, and the token (each gateway issues its own).
NOT_COMPARED = frozenset(
    {
        "enphase_scrape_duration_seconds",
        "enphase_data_age_seconds",
        "enphase_gateway_requests_total",
        "enphase_token_expiry_timestamp_seconds",
    }
)


def metrics_of(text: str, gateway: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            if labels.pop("gateway", None) == gateway and sample.name not in NOT_COMPARED:
                out[(sample.name, frozenset(labels.items()))] = sample.value
    return out


@pytest.mark.e2e
@pytest.mark.skipif(not FAKE_GATEWAY.is_file(), reason="../shared is not beside the repo")
def test_the_demo_capture_replays_to_the_same_metrics(
    demo: DemoGateway, taken: tuple[Path, capture.Capture], tmp_path: Path
) -> None:
    """The demo's clock is pinned (its sun stands still), so every answer it gives is the same
    and the two gateways' metrics must match exactly, value for value, once the serials are
    mapped to their stand-ins. Only what describes the exporter's requests is left out."""
    out, result = taken
    replay = load_fake_gateway().Gateway(out)
    replay.start()
    gateways = [
        {"name": "demo", "host": demo.url, "token": demo.token},
        {"name": "replay", "host": replay.url, "token": replay.token},
    ]
    redact = result.redactor.redact

    def compared(text: str) -> tuple[dict, dict]:
        want = {
            (name, frozenset((k, redact(v)) for k, v in labels)): value
            for (name, labels), value in metrics_of(text, "demo").items()
        }
        return want, metrics_of(text, "replay")

    # The first collection of each gateway also probes endpoints the demo lacks (404, then left
    # alone): scrape until both have settled on the same series, or time runs out.
    want: dict = {}
    got: dict = {}
    try:
        with running_exporter(tmp_path, {"gateways": gateways}) as exporter:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    with OPENER.open(exporter.url("/metrics"), timeout=10) as response:
                        want, got = compared(response.read().decode())
                except OSError:
                    pass
                up = ("enphase_up", frozenset())
                if want.get(up) == got.get(up) == 1 and set(want) == set(got):
                    break
                time.sleep(0.3)
    finally:
        replay.stop()

    assert len(want) > 300  # every family of the demo, per inverter, phase and battery
    assert set(got) == set(want)
    assert got == pytest.approx(want, rel=1e-9)


# ------------------------------------------------------------------------------------------------
# The shared captures of real gateways, redacted as the tool would

SHARED_CAPTURES = SHARED / "fixtures" / "envoy"


def shared_captures() -> list[Path]:
    if not SHARED_CAPTURES.is_dir():
        return []
    return sorted(p for p in SHARED_CAPTURES.iterdir() if p.is_dir())


def redact_shared(source: Path, out: Path) -> capture.Redactor:
    """What ``capture`` would have written had it read these answers from the gateway."""
    answers = []
    for path in sorted(source.iterdir()):
        if path.name.endswith(capture.LOG_SUFFIX) or path.name.startswith("_"):
            continue
        log = source / f"{path.name}{capture.LOG_SUFFIX}"
        meta = json.loads(log.read_text()) if log.is_file() else {}
        answers.append(
            capture.Answer(
                f"/{path.name}", int(meta.get("code", 200)), path.read_bytes(), meta.get("headers", {})
            )
        )
    redactor = capture.Redactor()
    capture.write_capture(out, answers, redactor, None)
    return redactor


@pytest.mark.skipif(not shared_captures(), reason="../shared is not beside the repo")
@pytest.mark.parametrize("source", shared_captures(), ids=lambda p: p.name)
def test_every_shared_capture_redacts_clean(source: Path, tmp_path: Path) -> None:
    redactor = redact_shared(source, tmp_path)
    serials = [o for o, (kind, _) in redactor.originals.items() if kind == "serial"]
    assert serials  # at least the gateway's own, from /info
    everything = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for original in redactor.originals:
        assert original.encode() not in everything, original
    assert capture.check_folder(tmp_path, [(k, o) for o, (k, _) in redactor.originals.items()]) == []


@pytest.mark.e2e
@pytest.mark.skipif(not FAKE_GATEWAY.is_file(), reason="../shared is not beside the repo")
def test_redacted_shared_captures_give_the_same_metrics(tmp_path: Path) -> None:
    """A legacy HTML gateway with digest auth, a three-phase CT system and a Meter Collar with
    batteries: original and redacted replays give the same series and values."""
    fake = load_fake_gateway()
    names = ("3.9.36", "7.6.175_with_cts_3phase", "8.3.1598_collar")
    gateways, redactors, servers = [], {}, []
    for name in names:
        redacted_dir = tmp_path / name
        redactors[name] = redact_shared(SHARED_CAPTURES / name, redacted_dir)
        for label, folder in (
            (f"{name}-original", SHARED_CAPTURES / name),
            (f"{name}-redacted", redacted_dir),
        ):
            server = fake.Gateway(folder)
            server.start()
            servers.append(server)
            entry = {"name": label, "host": server.url}
            if server.token_era:
                entry["token"] = server.token
            gateways.append(entry)
    try:
        with running_exporter(tmp_path, {"gateways": gateways}) as exporter:
            text = ""
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and text.count("enphase_up{") < len(gateways):
                try:
                    with OPENER.open(exporter.url("/metrics"), timeout=10) as response:
                        text = response.read().decode()
                except OSError:
                    time.sleep(0.3)
    finally:
        for server in servers:
            server.stop()
    for name in names:
        redact = redactors[name].redact
        want = {
            (metric, frozenset((k, redact(v)) for k, v in labels)): value
            for (metric, labels), value in metrics_of(text, f"{name}-original").items()
        }
        got = metrics_of(text, f"{name}-redacted")
        assert len(want) > 20, name
        assert set(got) == set(want), name
        assert got == pytest.approx(want, rel=1e-9), name
