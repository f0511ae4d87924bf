"""The deep ``--check-config``: what the file's shape does not show but would fail later, found
offline (no gateway, no Enlighten), each exiting 2 with its key named."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
import requests
import urllib3

from envoy_exporter.cli import main
from envoy_exporter.config.check import offline_problems
from envoy_exporter.config.load import ConfigError, load_config

SERIAL = "122212345678"
KEY = "k" * 32
NOW = 1_800_000_000.0


def token(serial: str | None = SERIAL, exp: float | None = NOW + 86_400) -> str:
    claims: dict[str, object] = {"iss": "Entrez", "enphaseUser": "owner"}
    if serial is not None:
        claims["aud"] = serial
    if exp is not None:
        claims["exp"] = int(exp)
    return jwt.encode(claims, KEY, algorithm="HS256")


@pytest.mark.parametrize(
    ("gateway", "files", "key", "fragment"),
    [
        ("token: eyJhbGciOi.broken", (), "gateways[0].token", "is not a JWT"),
        (f"token: {token(exp=NOW - 60)}", (), "gateways[0].token", "expired at 2027-01-15T07:59:00Z"),
        (f"token: {token(serial='999999999999')}", (), "gateways[0].token", "issued for serial 999999999999"),
        ("token_file: t.jwt", (("t.jwt", "not a token\n"),), "gateways[0].token_file", "is not a JWT"),
        (
            "token_file: t.jwt",
            (("t.jwt", token(exp=NOW - 1) + "\n"),),
            "gateways[0].token_file",
            "expired at",
        ),
    ],
)
def test_token_problems(tmp_path, gateway, files, key, fragment):
    for name, content in files:
        (tmp_path / name).write_text(content)
    config = tmp_path / "exporter.yml"
    config.write_text(f'gateways:\n  - host: 192.0.2.10\n    serial: "{SERIAL}"\n    {gateway}\n')
    (problem,) = offline_problems(load_config(config, env={}), now=NOW)
    assert problem.key == key
    assert fragment in problem.message
    assert "broken" not in str(problem) and "eyJ" not in str(problem)  # never the token itself


def test_good_tokens_pass(tmp_path):
    config = tmp_path / "exporter.yml"
    config.write_text(
        "gateways:\n"
        f'  - {{host: a, serial: "{SERIAL}", token: {token()}}}\n'
        f"  - {{host: b, token: {token(serial='999999999999')}}}\n"  # no serial to compare with
        f'  - {{host: c, serial: "111", token: {token(serial=None, exp=None)}}}\n'  # no claims to compare
    )
    assert offline_problems(load_config(config, env={}), now=NOW) == []


def test_state_dir_that_cannot_be_created(tmp_path):
    (tmp_path / "a-file").write_text("")
    config = tmp_path / "exporter.yml"
    config.write_text("state_dir: a-file/state\ngateways:\n  - host: a\n")
    (problem,) = offline_problems(load_config(config, env={}))
    assert problem.key == "state_dir"
    assert f"{tmp_path / 'a-file' / 'state'} cannot be created or written: Not a directory" in problem.message


def test_a_missing_state_dir_is_not_created(tmp_path):
    config = tmp_path / "exporter.yml"
    config.write_text("state_dir: new/state\ngateways:\n  - host: a\n")
    assert offline_problems(load_config(config, env={})) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exporter.yml"]


def test_an_existing_state_dir_is_left_as_it_was(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "exporter.yml"
    config.write_text("state_dir: state\ngateways:\n  - host: a\n")
    before = state.stat().st_mtime_ns
    assert offline_problems(load_config(config, env={})) == []
    assert list(state.iterdir()) == [] and state.stat().st_mtime_ns == before


def test_a_state_dir_that_cannot_be_written(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o500)
    config = tmp_path / "exporter.yml"
    config.write_text("state_dir: state/sub\ngateways:\n  - host: a\n")
    problems = offline_problems(load_config(config, env={}))
    if os.geteuid() == 0:  # root writes anywhere: nothing to find
        assert problems == []
    else:
        (problem,) = problems
        assert problem.key == "state_dir" and "Permission denied" in problem.message


def test_check_config_says_the_state_dir_would_be_created_and_creates_nothing(tmp_path, capsys):
    config = tmp_path / "exporter.yml"
    config.write_text("state_dir: new/state\ngateways:\n  - host: a\n")
    assert main(["--config.file", str(config), "--check-config"]) == 0
    out = capsys.readouterr().out
    assert f"state_dir {tmp_path / 'new' / 'state'} does not exist yet; the exporter will create it" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exporter.yml"]


def test_cli_exits_2_naming_the_key(tmp_path, capsys):
    expired = token(exp=time.time() - 3600)
    config = tmp_path / "exporter.yml"
    config.write_text(f"gateways:\n  - host: a\n    token: {expired}\n")
    assert main(["--config.file", str(config), "--check-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("envoy-exporter: configuration error: gateways[0].token: expired at ")
    assert err.count("\n") == 1 and expired not in err


def test_cli_starts_anyway_but_says_so(tmp_path, capsys, monkeypatch):
    # An expired token is a warning at start: Enlighten credentials may renew it.
    expired = token(exp=time.time() - 3600)
    config = tmp_path / "exporter.yml"
    config.write_text(f"gateways:\n  - host: a\n    token: {expired}\n")
    served: list[object] = []
    monkeypatch.setattr(
        "envoy_exporter.cli.serve", lambda settings, listen, stop, **_: served.append(settings) or 0
    )
    assert main(["--config.file", str(config)]) == 0
    assert len(served) == 1
    err = capsys.readouterr().err
    assert "configuration problem: expired at " in err and "(gateways[0].token)" in err


@pytest.mark.parametrize(
    ("host", "fragment"),
    [
        ("http://192.0.2.10/foo", "without a path (/foo)"),
        ("https://envoy.local/production.json", "without a path (/production.json)"),
        ("192.0.2.10/api", "without a path (/api)"),
        ("http://192.0.2.10?x=1", "without a query or fragment"),
        ("https://192.0.2.10/?token=eyJsecret", "without a query or fragment"),
        ("https://192.0.2.10#eyJsecret", "without a query or fragment"),
        ("http://user:pw@192.0.2.10", "must not carry credentials"),
        ("http://", "has no address"),
        ("envoy .local", "spaces"),
    ],
)
def test_hosts_with_more_than_an_address(tmp_path, host, fragment):
    config = tmp_path / "exporter.yml"
    config.write_text(f"gateways:\n  - host: '{host}'\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    assert caught.value.key == "gateways[0].host"
    assert fragment in caught.value.message
    assert "secret" not in str(caught.value) and "pw" not in str(caught.value)


def test_hosts_that_are_addresses(tmp_path):
    config = tmp_path / "exporter.yml"
    hosts = ["192.0.2.10", "http://192.0.2.11:8080/", "https://envoy.local", "[fd00::1]:443", "fd00::2"]
    config.write_text("gateways:\n" + "".join(f"  - host: '{h}'\n" for h in hosts))
    assert [g.host for g in load_config(config, env={}).gateways] == hosts


# --------------------------------------------------------------------------------------------
# Five cases a user meets: the real command, exit 2, the key named


def _cli_cases(tmp_path: Path) -> dict[str, tuple[str, str, str]]:
    """case -> (what the gateway entry or file adds, the key, a fragment of the message)."""
    blocked = tmp_path / "blocked"
    blocked.write_text("")  # a file where state_dir wants a directory
    now = time.time()
    return {
        "malformed_token": ("    token: eyJhbGciOi.broken\n", "gateways[0].token", "is not a JWT"),
        "expired_token": (f"    token: {token(exp=now - 3600)}\n", "gateways[0].token", "expired at"),
        "other_serial": (
            f"    token: {token(serial='999999999999', exp=now + 86_400)}\n",
            "gateways[0].token",
            "issued for serial 999999999999",
        ),
        "host_with_path": ("", "gateways[0].host", "without a path (/foo)"),
        "state_dir": (f"state_dir: {blocked}/state\n", "state_dir", "cannot be created or written"),
    }


@pytest.mark.e2e
@pytest.mark.parametrize(
    "case", ["malformed_token", "expired_token", "other_serial", "host_with_path", "state_dir"]
)
def test_check_config_catches_the_five_cases_offline(tmp_path, case):
    extra, key, fragment = _cli_cases(tmp_path)[case]
    with socket.socket() as gateway:  # a listening "gateway" that must never be contacted
        gateway.bind(("127.0.0.1", 0))
        gateway.listen()
        port = gateway.getsockname()[1]
        host = f"http://127.0.0.1:{port}/foo" if case == "host_with_path" else f"127.0.0.1:{port}"
        entry = f'gateways:\n  - host: "{host}"\n    serial: "{SERIAL}"\n'
        text = extra + entry if case == "state_dir" else entry + extra
        config = tmp_path / "exporter.yml"
        config.write_text(text)
        proc = subprocess.run(
            [sys.executable, "-m", "envoy_exporter", "--check-config", "--config.file", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        gateway.settimeout(0)
        with pytest.raises(BlockingIOError):
            gateway.accept()  # nobody connected
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"envoy-exporter: configuration error: {key}: ")
    assert fragment in proc.stderr and proc.stderr.count("\n") == 1
    assert "eyJ" not in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize(
    ("where", "key"),
    [("gateway", "gateways[0].enlighten_url"), ("defaults", "defaults.enlighten_url")],
)
def test_plain_http_enlighten_to_another_host_is_refused_naming_the_key(tmp_path, capsys, where, key):
    url = "enlighten_url: http://enlighten.example.net"
    entry = (
        f"gateways:\n  - host: 192.0.2.10\n    {url}\n" if where == "gateway" else "gateways:\n  - host: a\n"
    )
    prefix = f"defaults:\n  {url}\n" if where == "defaults" else ""
    config = tmp_path / "exporter.yml"
    config.write_text(prefix + entry)
    assert main(["--config.file", str(config), "--check-config"]) == 2
    assert capsys.readouterr().err == (
        f"envoy-exporter: configuration error: {key}: must be https (the Enlighten password would "
        "travel in clear): http://enlighten.example.net\n"
    )


@pytest.mark.parametrize(
    "url",
    [
        # A backslash: loopback to Python's urlsplit, enlighten.example.net to requests.
        "http://enlighten.example.net\\\\@127.0.0.1/",
        "http://enlighten.example.net\\\\@localhost:8080/",
        "http://enlighten.example.net\\\\@[::1]/",
    ],
)
def test_plain_http_enlighten_that_only_looks_like_loopback_is_refused(tmp_path, url):
    """The check reads the URL as requests does: the host it would really connect to."""
    config = tmp_path / "exporter.yml"
    config.write_text(f'defaults:\n  entrez_url: "{url}"\ngateways:\n  - host: a\n')
    settings = load_config(config, env={})
    prepared = requests.Request("GET", settings.defaults["entrez_url"]).prepare()
    # The premise: requests would send the password away from this host.
    assert urllib3.util.parse_url(prepared.url).host == "enlighten.example.net"
    (problem,) = offline_problems(settings)
    assert problem.key == "defaults.entrez_url" and "must be https" in problem.message


def test_plain_http_enlighten_on_loopback_passes(tmp_path):
    config = tmp_path / "exporter.yml"
    config.write_text(
        "defaults:\n  entrez_url: http://127.0.0.1:9/\ngateways:\n  - {host: a, enlighten_url: 'http://localhost:8/'}\n"
    )
    assert offline_problems(load_config(config, env={})) == []
