"""Reload through the real process: SIGHUP and POST /-/reload, with a good and a bad config.

The gateway is the demo's simulated IQ Gateway on loopback, started here; the exporter is a
subprocess on a free port, stopped by its PID.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from conftest import free_port
from exporter_fakes import samples, value

from envoy_exporter.demo import start_demo

pytestmark = pytest.mark.e2e


def _config(demo, state: Path, *extra: str) -> str:
    text = f"state_dir: {state}\ngateways:\n  - name: home\n    host: {demo.url}\n    token: {demo.token}\n"
    return text + "".join(extra)


class Exporter:
    def __init__(self, config: Path, log: Path, *flags: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "envoy_exporter", "--config.file", str(config)),
                *("--web.listen-address", f"127.0.0.1:{self.port}", "--log.level", "debug"),
                *flags,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = log

    def get(self, path: str = "/metrics", headers: dict[str, str] | None = None) -> str:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode()

    def post(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.url + path, method="POST", data=b"", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def wait_for(self, predicate, seconds: float = 30.0, headers: dict[str, str] | None = None) -> str:
        deadline = time.monotonic() + seconds
        while True:
            assert self.proc.poll() is None, self.log()
            try:
                body = self.get(headers=headers)
                if predicate(body):
                    return body
            except OSError:
                pass
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.1)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def demo() -> Iterator:
    gateway = start_demo()
    yield gateway
    gateway.stop()


def _requests(body: str, gateway: str, endpoint: str) -> float:
    got = samples(body)
    return sum(
        v
        for (name, labels), v in got.items()
        if name == "enphase_gateway_requests_total"
        and dict(labels).get("gateway") == gateway
        and dict(labels).get("endpoint") == endpoint
    )


def test_reload_keeps_unchanged_gateways_and_refuses_a_bad_config(tmp_path, demo):
    config = tmp_path / "exporter.yml"
    config.write_text(_config(demo, tmp_path / "state"))
    exporter = Exporter(config, tmp_path / "exporter.log")
    try:
        before = exporter.wait_for(lambda body: 'enphase_up{gateway="home"} 1.0' in body)
        info_requests = _requests(before, "home", "info")
        assert info_requests >= 1

        # A good new config with one more gateway (nobody listens there): SIGHUP.
        dead = f"http://127.0.0.1:{free_port()}"
        config.write_text(_config(demo, tmp_path / "state", f"  - name: barn\n    host: {dead}\n"))
        exporter.proc.send_signal(signal.SIGHUP)
        after = exporter.wait_for(lambda body: 'enphase_up{gateway="barn"}' in body)
        assert value(samples(after), "enphase_up", gateway="home") == 1
        # The same client: its request counters go on, and /info (cached for an hour) was not
        # asked again, as a fresh client would have done.
        assert _requests(after, "home", "info") == info_requests
        assert _requests(after, "home", "production_json") >= _requests(before, "home", "production_json")
        assert value(samples(after), "enphase_up", gateway="barn") == 0

        # A bad new config: refused, naming the key; the old one keeps running.
        config.write_text(_config(demo, tmp_path / "state", "  - name: shed\n    hots: 192.0.2.1\n"))
        status, text = exporter.post("/-/reload")
        assert status == 500 and "hots" in text
        exporter.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        body = exporter.get()
        assert 'enphase_up{gateway="barn"}' in body and 'gateway="shed"' not in body
        assert value(samples(body), "enphase_up", gateway="home") == 1
        assert exporter.log().count("reload refused") == 2

        # Back to one gateway, through POST: barn is gone, home still the same client.
        config.write_text(_config(demo, tmp_path / "state"))
        assert exporter.post("/-/reload") == (200, "OK\n")
        body = exporter.get()
        assert 'gateway="barn"' not in body
        assert _requests(body, "home", "info") == info_requests
    finally:
        assert exporter.stop() == 0
    assert demo.token not in exporter.log()


def test_demo_mode_has_nothing_to_reload():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "envoy_exporter", "--demo", "--web.listen-address", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/-/reload", method="POST", data=b"")
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        proc.send_signal(signal.SIGHUP)  # not the default action, which would end the process
        time.sleep(1.0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=10) as response:
            assert response.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _users(path: Path, **passwords: str) -> None:
    lines = [
        f"  {user}: '{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()}'"
        for user, pw in passwords.items()
    ]
    path.write_text("basic_auth_users:\n" + "\n".join(lines) + "\n")


def test_reload_reads_the_web_config_again(tmp_path, demo):
    config, web = tmp_path / "exporter.yml", tmp_path / "web.yml"
    config.write_text(_config(demo, tmp_path / "state"))
    _users(web, alice="first")
    exporter = Exporter(config, tmp_path / "exporter.log", "--web.config.file", str(web))
    try:
        exporter.wait_for(lambda body: True, headers=_basic("alice", "first"))
        _users(web, bob="second")
        assert exporter.post("/-/reload", _basic("alice", "first")) == (200, "OK\n")
        assert exporter.post("/-/reload", _basic("alice", "first"))[0] == 401
        web.write_text("basic_auth_users:\n  bob: not-a-hash\n")  # refused; bob's hash stays
        status, text = exporter.post("/-/reload", _basic("bob", "second"))
        assert status == 500 and "basic_auth_users.bob" in text
        assert exporter.post("/-/reload", _basic("bob", "second"))[0] == 500  # still refused, still bob
    finally:
        assert exporter.stop() == 0
