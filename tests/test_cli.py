"""The command line: flags, exit codes, serving until stopped, and the log formats."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import urllib.request
from pathlib import Path

import jwt
import pytest
from conftest import ROOT, free_port
from exporter_fakes import FakeClient, samples
from exporter_process import get, running_exporter

from envoy_exporter import __version__, cli
from envoy_exporter.cli import main, serve
from envoy_exporter.config.load import load_config
from envoy_exporter.logs import redact, setup_logging

# A well-formed token for the shipped example's serial, valid until 2100: --check-config reads it.
VALID_TOKEN = jwt.encode({"aud": "122212345678", "exp": 4102444800}, "k" * 32, algorithm="HS256")
GOOD = 'gateways:\n  - name: home\n    host: 192.0.2.10\n    token: "${TOKEN}"\n'


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"envoy-exporter {__version__} (Python ")


def test_check_config_good(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TOKEN", VALID_TOKEN)
    (tmp_path / "exporter.yml").write_text(GOOD)
    assert main(["--config.file", str(tmp_path / "exporter.yml"), "--check-config"]) == 0
    assert "OK, 1 gateway(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("gateways:\n  - host: a\n    cache_ttl: {readings: -1}\n", "gateways[0].cache_ttl.readings"),
        ("gateways:\n  - host: a\n    token: ${UNSET_FOR_THIS_TEST}\n", "gateways[0].token"),
        ("gateways:\n  - host: a\n    port: 80\n", "gateways[0].port"),
    ],
)
def test_bad_config_exits_2_naming_the_key(tmp_path, capsys, monkeypatch, text, key):
    monkeypatch.delenv("UNSET_FOR_THIS_TEST", raising=False)
    path = tmp_path / "exporter.yml"
    path.write_text(text)
    for flags in (["--check-config"], []):  # the same error whether checking or starting
        assert main(["--config.file", str(path), *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"envoy-exporter: configuration error: {key}: ")
        assert err.count("\n") == 1  # one clear line, no traceback


def test_missing_config_file_exits_2(tmp_path, capsys):
    assert main(["--config.file", str(tmp_path / "absent.yml")]) == 2
    assert "cannot read the config file" in capsys.readouterr().err


def test_missing_config_file_points_at_the_flag_and_the_demo(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "exporter.yml" in err and "--config.file" in err and "--demo" in err


def test_help_names_the_capture_subcommand(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert re.search(r"^  capture\s+\S", out, re.M), out
    assert "envoy-exporter capture --help" in out


def test_an_unknown_key_gets_did_you_mean(tmp_path, capsys):
    path = tmp_path / "exporter.yml"
    path.write_text("gateways:\n  - name: barn\n    host: a\n  - name: roof\n    host: b\n    tokn_file: t\n")
    assert main(["--config.file", str(path), "--check-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("envoy-exporter: configuration error: gateways[1].tokn_file: unknown key")
    assert 'did you mean "token_file"?' in err and '(gateway "roof")' in err


def test_bad_flags_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--log.level", "loud"])
    assert caught.value.code == 2
    assert main(["--web.listen-address", "9433", "--check-config"]) == 2
    assert "--web.listen-address: '9433' is not host:port" in capsys.readouterr().err


@pytest.mark.e2e
def test_python_dash_m_version():
    result = subprocess.run(
        [sys.executable, "-m", "envoy_exporter", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.strip().startswith(f"envoy-exporter {__version__}")


def test_shipped_example_passes_check_config(capsys, monkeypatch):
    monkeypatch.setenv("ENVOY_HOME_TOKEN", VALID_TOKEN)
    monkeypatch.setenv("BARN_ENVOY_PASSWORD", "123456")
    assert main(["--config.file", str(ROOT / "exporter.yml"), "--check-config"]) == 0


@pytest.mark.e2e
def test_serve_until_stopped(tmp_path, monkeypatch):
    made: list[FakeClient] = []

    def fake_client(settings, state_dir, **shared):
        made.append(FakeClient(settings.label))
        return made[-1]

    monkeypatch.setattr("envoy_exporter.gateway.client.GatewayClient", fake_client)
    monkeypatch.setenv("TOKEN", "eyJok")
    (tmp_path / "exporter.yml").write_text(GOOD)
    settings = load_config(tmp_path / "exporter.yml")
    port = free_port()
    stop = threading.Event()
    outcome: list[int] = []
    thread = threading.Thread(target=lambda: outcome.append(serve(settings, f"127.0.0.1:{port}", stop)))
    thread.start()
    try:
        body = _wait_for(f"http://127.0.0.1:{port}/metrics")
        assert 'enphase_up{gateway="home"} 1.0' in body
    finally:
        stop.set()
        thread.join(timeout=10)
    assert outcome == [0]
    assert made[0].closed
    assert made[0].calls >= 1  # the warm-up collection at start, at least
    # The start-up's collection reads the live series first; a scrape always wants it whole.
    assert made[0].firsts[0] is True and False in made[0].firsts[1:]


@pytest.mark.e2e
def test_serve_fails_cleanly_when_the_port_is_taken(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(
        "envoy_exporter.gateway.client.GatewayClient", lambda s, d, **shared: FakeClient(s.label)
    )
    monkeypatch.setenv("TOKEN", "eyJok")
    (tmp_path / "exporter.yml").write_text(GOOD)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve(load_config(tmp_path / "exporter.yml"), f"127.0.0.1:{port}", threading.Event()) == 1
    assert "cannot listen" in caplog.text


@pytest.mark.e2e
def test_demo_serves_and_stops_on_sigterm(tmp_path):
    with running_exporter(tmp_path, None, "--demo", ready="/probe?target=demo", timeout=30) as exporter:
        status, body = get(exporter.url("/probe?target=demo"), timeout=10)
        assert status == 200
        assert b'enphase_up{gateway="demo"} 1.0' in body
        info = [labels for name, labels in samples(body.decode()) if name == "enphase_gateway_info"]
        assert [dict(labels)["auth"] for labels in info] == ["token"]
        exporter.process.send_signal(signal.SIGTERM)
        assert exporter.process.wait(timeout=20) == 0
    log = exporter.log.read_text()
    assert "shutting down" in log
    assert "eyJ" not in log  # the demo token never reaches the log


@pytest.mark.e2e
def test_the_main_thread_sleeps_until_a_signal_comes(tmp_path):
    # It waits on the signal wakeup descriptor, not in a timed loop: an idle exporter's main
    # thread is not switched to, and SIGTERM still ends it at once.
    with running_exporter(tmp_path, None, "--demo", ready="/probe?target=demo", timeout=30) as exporter:
        status = Path(f"/proc/{exporter.process.pid}/status")

        def switches() -> int:
            return int(status.read_text().split("voluntary_ctxt_switches:")[1].split()[0])

        idle = switches()
        time.sleep(1.6)
        assert switches() - idle <= 1
        began = time.monotonic()
        exporter.process.send_signal(signal.SIGTERM)
        assert exporter.process.wait(timeout=20) == 0
        assert time.monotonic() - began < 3.0


def test_on_the_main_thread_the_wait_for_a_signal_has_no_timer(monkeypatch):
    # Not even a rare look at ``stop`` on its own: the signal's handler sets it, and the signal
    # (handed to any thread) wakes the wait.
    assert threading.current_thread() is threading.main_thread()
    timeouts: list[float | None] = []

    def recording_select(*args):
        timeouts.append(args[3] if len(args) > 3 else None)
        return select.select(*args)

    monkeypatch.setattr(cli, "select", types.SimpleNamespace(select=recording_select))
    stop = threading.Event()
    previous = signal.signal(signal.SIGUSR1, lambda _signum, _frame: stop.set())
    sender = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))  # from another thread
    began = time.monotonic()
    try:
        sender.start()
        cli._wait_for(stop, signals_only=True)
    finally:
        sender.join()
        signal.signal(signal.SIGUSR1, previous)
    assert stop.is_set() and time.monotonic() - began < 2.0
    assert timeouts and set(timeouts) == {None}


@pytest.mark.e2e
def test_serve_on_the_main_thread_ends_when_another_thread_sets_stop(tmp_path):
    # ``serve`` runs until ``stop`` is set, whoever sets it: an embedding (or a test) may run it
    # on the main thread and set ``stop`` from another thread, without a signal.
    assert threading.current_thread() is threading.main_thread()
    (tmp_path / "exporter.yml").write_text("gateways:\n  - name: home\n    host: http://127.0.0.1:9\n")
    stop, timed_out = threading.Event(), []

    def alarm(_signum, _frame) -> None:  # ends a wait that never would, so the test fails, not hangs
        timed_out.append(True)
        stop.set()

    previous = signal.signal(signal.SIGALRM, alarm)
    setter = threading.Timer(0.3, stop.set)
    began = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 8.0)
        setter.start()
        status = serve(load_config(tmp_path / "exporter.yml"), f"127.0.0.1:{free_port()}", stop)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        setter.join()
    assert (status, timed_out) == (0, [])
    assert time.monotonic() - began < 3.0


def _wait_for(url: str, proc: subprocess.Popen | None = None, seconds: float = 30.0) -> str:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
                raise
            time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# Logging


def _log_line(fmt: str, message: str, *args: object) -> str:
    stream = io.StringIO()
    setup_logging("debug", fmt, stream)
    try:
        logging.getLogger("envoy_exporter.test").warning(message, *args)
    finally:
        setup_logging("info", "logfmt", io.StringIO())
    return stream.getvalue()


def test_logfmt_lines():
    line = _log_line("logfmt", 'gateway %s said "%s"', "home", "hi there")
    assert line.startswith("ts=") and line.endswith("\n")
    assert ' level=warn logger=envoy_exporter.test msg="gateway home said \\"hi there\\""' in line


def test_json_lines():
    record = json.loads(_log_line("json", "gateway %s down", "barn"))
    assert record["level"] == "warn" and record["logger"] == "envoy_exporter.test"
    assert record["msg"] == "gateway barn down" and record["ts"].endswith("Z")


def test_secrets_are_scrubbed_from_every_record():
    jwt = "eyJhbGciOiJFUzI1NiJ9.eyJhdWQiOiIxMjM0In0.c2lnbmF0dXJl"
    line = _log_line(
        "logfmt", "sent headers %s with password=%s", {"Authorization": f"Bearer {jwt}"}, "hunter2"
    )
    assert jwt not in line and "hunter2" not in line and "Bearer" not in line
    assert "password=***" in line


def test_tracebacks_are_scrubbed_too():
    stream = io.StringIO()
    setup_logging("info", "json", stream)
    try:
        raise RuntimeError("401 for token eyJabcdefgh.ijklmnop.qrstuv")
    except RuntimeError:
        logging.getLogger("envoy_exporter.test").exception("request failed")
    finally:
        setup_logging("info", "logfmt", io.StringIO())
    record = json.loads(stream.getvalue())
    assert "RuntimeError" in record["err"] and "eyJabcdefgh" not in record["err"]


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ('Authorization: Digest username="envoy", response="9f8e"', "Authorization: ***"),
        ("{'authorization': 'Bearer abc.def'}", "{'authorization': '***'}"),
        ('{"password": "s3cret", "user": "me"}', '{"password": "***", "user": "me"}'),
        ("Cookie: sessionId=0123abcd", "Cookie: sessionId=***"),
        ("nothing to hide here", "nothing to hide here"),
        # values are redacted, not the words of a sentence that follow "token:"
        (
            "firmware D8.2.4345 needs a token: set token, token_file, or enlighten_username and "
            "enlighten_password (username and password are the gateway's own login before "
            "firmware 7, unused here)",
            "firmware D8.2.4345 needs a token: set token, token_file, or enlighten_username and "
            "enlighten_password (username and password are the gateway's own login before "
            "firmware 7, unused here)",
        ),
        ("password: hunter2", "password: ***"),
        ("token: 0123abcdef", "token: ***"),
        ('password = "two words"', 'password = "***"'),
        ("GET /x?token=abc&n=1", "GET /x?token=***&n=1"),
    ],
)
def test_redact(text, scrubbed):
    assert redact(text) == scrubbed


@pytest.mark.e2e
@pytest.mark.parametrize("level", ["warn", "warning"])
def test_log_level_warning_is_accepted(level, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "envoy_exporter",
            "--log.level",
            level,
            "--check-config",
            "--config.file",
            str(tmp_path / "missing.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "missing.yml" in proc.stderr  # the config, not the flag
    assert "--log.level" not in proc.stderr


def test_warning_level_drops_info_and_names_warnings_warn():
    stream = io.StringIO()
    setup_logging("warning", "logfmt", stream)
    try:
        logging.getLogger("envoy_exporter.test").info("quiet")
        logging.getLogger("envoy_exporter.test").warning("loud")
    finally:
        setup_logging("info", "logfmt", io.StringIO())
    assert "quiet" not in stream.getvalue() and "level=warn " in stream.getvalue()
