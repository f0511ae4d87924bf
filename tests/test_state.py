"""State files: the previous generation kept, a broken file moved aside and never
overwritten, and no state file, however hostile, fails a collection."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import jwt
import pytest

from envoy_exporter.config.settings import GatewaySettings, Secret
from envoy_exporter.gateway.auth.scheme import Auth
from envoy_exporter.snapshot.counters import CounterKeeper
from envoy_exporter.snapshot.model import WRAP_J, GatewayInfo
from envoy_exporter.state import read_state, safe_name, write_atomic

KEY = ("gw1", "production", "inverters", "")
T0 = 1_750_000_000.0
KWH = 3_600_000.0
NESTED = b"[" * 100_000 + b"]" * 100_000
SERIAL = "482301000042"


def kwh(value: float) -> float:
    return value * KWH


# --------------------------------------------------------------------------------------------
# The helper


def test_write_atomic_keeps_the_previous_generation_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "state" / "x.json"
    write_atomic(path, b"one")
    write_atomic(path, b"two")
    assert path.read_bytes() == b"two"
    assert (tmp_path / "state" / "x.json.prev").read_bytes() == b"one"
    for p in (path, tmp_path / "state" / "x.json.prev"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.json", "x.json.prev"]


def test_the_state_dir_is_created_0700_when_the_first_file_is_a_token(tmp_path: Path) -> None:
    # The token cache lives in state_dir/tokens/: creating it created state_dir with the
    # default mode (0755 under the usual umask), the subdirectory alone 0700.
    old_umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "state" / "tokens" / "122302045041.json", b"{}")
    finally:
        os.umask(old_umask)
    for directory in (tmp_path / "state", tmp_path / "state" / "tokens"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_read_state_falls_back_to_prev_and_moves_the_bad_file_aside(tmp_path: Path, caplog) -> None:
    path = tmp_path / "x.json"
    write_atomic(path, b'{"n": 1}')
    write_atomic(path, b'{"n": 2}')
    path.write_bytes(b"\x00garbage")
    with caplog.at_level(logging.WARNING):
        assert read_state(path, json.loads) == {"n": 1}
    (aside,) = tmp_path.glob("x.json.bad-*")
    assert aside.read_bytes() == b"\x00garbage"
    assert "moved aside" in caplog.text
    assert read_state(tmp_path / "missing.json") is None


def test_read_state_never_raises(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(NESTED)
    assert read_state(path, json.loads) is None
    (tmp_path / "dir.json").mkdir()  # unreadable: a directory where the file belongs
    assert read_state(tmp_path / "dir.json") is None


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("122300000001", "122300000001"),
        ("https://[fe80::1]/x", "https____fe80__1__x"),
        ("..", "_."),
        ("", "_"),
    ],
)
def test_safe_name(text: str, name: str) -> None:
    assert safe_name(text) == name


# --------------------------------------------------------------------------------------------
# Counter state


def test_a_deeply_nested_counter_state_does_not_fail_collections(tmp_path: Path) -> None:
    path = tmp_path / "counters-gw1.json"
    path.write_bytes(NESTED)
    keeper = CounterKeeper(path)  # was a RecursionError, at every collection
    assert keeper.observe(KEY, kwh(3), T0) == kwh(3)
    keeper.save()
    assert json.loads(path.read_text())["series"][0]["good"] == kwh(3)
    assert len(list(tmp_path.glob("counters-gw1.json.bad-*"))) == 1


def test_a_broken_counter_state_keeps_its_offsets_from_the_previous_generation(tmp_path: Path) -> None:
    path = tmp_path / "counters-gw1.json"
    keeper = CounterKeeper(path)
    keeper.observe(KEY, WRAP_J - kwh(1), T0)
    keeper.observe(KEY, kwh(0.5), T0 + 3600)  # wrapped: the offset is 2^32 J from now on
    keeper.save()
    keeper.observe(KEY, kwh(0.6), T0 + 3700)
    keeper.save()
    path.write_bytes(b"{not json")  # a stray edit, a disk error
    restarted = CounterKeeper(path)
    assert restarted.observe(KEY, kwh(0.8), T0 + 3800) == pytest.approx(WRAP_J + kwh(0.8))
    restarted.save()
    (aside,) = tmp_path.glob("counters-gw1.json.bad-*")
    assert aside.read_bytes() == b"{not json"  # not overwritten


def test_a_garbage_state_after_a_wrap_does_not_make_the_counter_fall(tmp_path: Path) -> None:
    path = tmp_path / "counters-gw1.json"
    keeper = CounterKeeper(path)
    near = WRAP_J - kwh(1)
    assert keeper.observe(KEY, near, T0) == near
    keeper.save()
    wrapped = keeper.observe(KEY, kwh(0.5), T0 + 3600)  # 1.5 kWh in an hour, across the wrap
    assert wrapped == pytest.approx(WRAP_J + kwh(0.5))
    keeper.save()
    path.write_bytes(b"garbage")
    restarted = CounterKeeper(path)
    after = restarted.observe(KEY, kwh(0.7), T0 + 3900)
    assert after is not None and after >= wrapped  # was 2^32 J lower


# --------------------------------------------------------------------------------------------
# Token cache


def _auth_with_enlighten(requests_mock, state_dir: Path) -> Auth:
    """Auth for a gateway whose token comes from Enlighten (a stand-in), cached in ``state_dir``."""
    token = jwt.encode({"aud": SERIAL, "exp": int(T0) + 86400 * 365}, "k" * 32, algorithm="HS256")
    requests_mock.post("https://enlighten.test/login/login.json", json={"session_id": "s"})
    requests_mock.post("https://entrez.test/tokens", text=token)
    settings = GatewaySettings(
        name="roof",
        host="192.0.2.10",
        enlighten_username="owner@example.net",
        enlighten_password=Secret("pw"),
        enlighten_url="https://enlighten.test",
        entrez_url="https://entrez.test",
    )
    return Auth(settings, state_dir, lambda endpoint, code: None, wall=lambda: T0)


def test_a_deeply_nested_token_cache_is_moved_aside_without_an_error(requests_mock, tmp_path, caplog) -> None:
    cache = tmp_path / "tokens" / f"{SERIAL}.json"
    cache.parent.mkdir()
    cache.write_bytes(NESTED)
    auth = _auth_with_enlighten(requests_mock, tmp_path)
    with caplog.at_level(logging.WARNING):
        auth.configure(GatewayInfo(serial=SERIAL, firmware="D7.6.175", web_tokens=True))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert len(list(cache.parent.glob(f"{SERIAL}.json.bad-*"))) == 1
    assert auth.scheme == "token"


# --------------------------------------------------------------------------------------------
# Only regular files: a FIFO, device, directory or link in a state file's place never blocks


def _within(seconds: float, work):
    """``work()``'s result, failing (not hanging) when it takes longer than ``seconds``."""
    import threading

    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(work()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still blocked after {seconds} s"
    return result[0]


def _odd_file(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        target = path.with_name("elsewhere.json")
        target.write_text('{"version": 1, "series": []}')
        path.symlink_to(target)
    else:
        path.mkdir()


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory"])
@pytest.mark.parametrize("which", ["current", "prev"])
def test_a_counter_state_that_is_not_a_regular_file_is_moved_aside_without_blocking(
    tmp_path: Path, caplog, kind: str, which: str
) -> None:
    path = tmp_path / "counters-gw1.json"
    keeper = CounterKeeper(path)
    keeper.observe(KEY, kwh(3), T0)
    keeper.save()
    keeper.observe(KEY, kwh(4), T0 + 60)
    keeper.save()
    odd = path if which == "current" else path.with_name(path.name + ".prev")
    if which == "current":
        path.unlink()
    else:
        odd.unlink()
        path.write_bytes(b"garbage")  # so that the reader falls back to .prev
    _odd_file(odd, kind)
    with caplog.at_level(logging.WARNING):
        restarted = _within(5, lambda: CounterKeeper(path))
        _within(5, lambda: restarted.observe(KEY, kwh(5), T0 + 120))
    asides = list(tmp_path.glob(f"{odd.name}.bad-*"))
    assert len(asides) == 1
    warnings = [r.getMessage() for r in caplog.records if odd.name + " is unusable" in r.getMessage()]
    assert len(warnings) == 1
    assert ("a symbolic link" if kind == "symlink" else "not a regular file") in warnings[0]
    restarted.save()
    assert stat.S_ISREG(os.lstat(path).st_mode)


def test_a_fifo_as_the_token_cache_never_holds_the_gateway(requests_mock, tmp_path, caplog) -> None:
    cache = tmp_path / "tokens" / f"{SERIAL}.json"
    cache.parent.mkdir()
    os.mkfifo(cache)
    auth = _auth_with_enlighten(requests_mock, tmp_path)
    _within(5, lambda: auth.configure(GatewayInfo(serial=SERIAL, firmware="D7.6.175", web_tokens=True)))
    assert len(list(cache.parent.glob(f"{SERIAL}.json.bad-*"))) == 1
    assert auth.scheme == "token"


# --------------------------------------------------------------------------------------------
# A full disk is said once per change of state, not once per collection


def test_a_full_disk_is_one_warning_until_it_recovers(tmp_path: Path, caplog, monkeypatch) -> None:
    import errno

    from envoy_exporter.snapshot import counters

    full = {"on": True}
    real_write = counters.write_atomic

    def write(path: Path, data: bytes) -> None:
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(path, data)

    monkeypatch.setattr(counters, "write_atomic", write)
    keeper = CounterKeeper(tmp_path / "counters-gw1.json")

    def collections(n: int, start: int) -> None:
        for i in range(start, start + n):
            keeper.observe(KEY, kwh(3 + i * 0.01), T0 + 60 * i)
            keeper.save()

    caplog.clear()  # what the saves say, not the keeper's start (logged where an earlier test left INFO on)
    with caplog.at_level(logging.INFO, logger="envoy_exporter.snapshot.counters"):
        collections(10, 0)
        full["on"] = False
        collections(3, 10)
        full["on"] = True
        collections(5, 13)
    said = [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.getMessage().startswith(("cannot save counter state", "counter state saved"))
    ]
    path = tmp_path / "counters-gw1.json"
    assert said == [
        ("WARNING", f"cannot save counter state to {path}: No space left on device"),
        ("INFO", f"counter state saved to {path} again"),
        ("WARNING", f"cannot save counter state to {path}: No space left on device"),
    ]


# --------------------------------------------------------------------------------------------
# Files the configuration names (token_file, password_file, ...) never hold a thread either


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_token_file_that_is_not_a_regular_file_never_holds_the_gateway(tmp_path, caplog, kind) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(jwt.encode({"aud": SERIAL, "exp": int(T0) + 86400}, "k" * 32, algorithm="HS256"))
    settings = GatewaySettings(name="roof", host="192.0.2.10", token_file=token_file)
    auth = Auth(settings, None, lambda endpoint, code: None, wall=lambda: T0)
    token_file.unlink()
    if kind == "fifo":
        os.mkfifo(token_file)  # replaced while the exporter runs
    else:
        token_file.symlink_to("/dev/zero")  # endless
    with caplog.at_level(logging.WARNING):
        _within(5, lambda: auth.configure(GatewayInfo(serial=SERIAL, firmware="D7.6.175", web_tokens=True)))
    assert "not a regular file" in caplog.text


@pytest.mark.parametrize("key", ["token_file", "password_file", "enlighten_password_file"])
def test_a_secret_file_that_is_a_fifo_is_a_config_error_at_once(tmp_path, key) -> None:
    from envoy_exporter.config.load import ConfigError, load_config

    os.mkfifo(tmp_path / "secret")
    extra = "\n    enlighten_username: owner@example.net" if key.startswith("enlighten") else ""
    config = tmp_path / "exporter.yml"
    config.write_text(f"gateways:\n  - host: 192.0.2.10\n    {key}: secret{extra}\n")

    def load() -> object:
        try:
            return load_config(config, env={})
        except ConfigError as e:
            return e

    refused = _within(5, load)
    assert isinstance(refused, ConfigError)
    assert refused.key.endswith(key) and "not a regular file" in refused.message


def test_check_config_with_a_fifo_token_file_answers_at_once(tmp_path, capsys) -> None:
    from envoy_exporter.cli import main
    from envoy_exporter.config.check import offline_problems
    from envoy_exporter.config.load import load_config

    token_file = tmp_path / "token"
    token_file.write_text(jwt.encode({"aud": SERIAL, "exp": int(T0) + 86400}, "k" * 32, algorithm="HS256"))
    config = tmp_path / "exporter.yml"
    config.write_text(f"gateways:\n  - host: 192.0.2.10\n    token_file: {token_file}\n")
    settings = load_config(config, env={})
    token_file.unlink()
    os.mkfifo(token_file)
    (problem,) = _within(5, lambda: offline_problems(settings))
    assert "not a regular file" in problem.message
    assert _within(5, lambda: main(["--config.file", str(config), "--check-config"])) == 2
