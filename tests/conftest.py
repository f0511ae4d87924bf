"""Shared test helpers, and the line between the unit suite and the end-to-end tests.

``SHARED_FIXTURES`` is the captures directory of ../shared when it exists; tests that use it
skip cleanly when it does not.

A test that starts a server (anything that listens on a socket), a process (the exporter,
Prometheus, Chromium, a tool) or zeroconf on the network is marked ``e2e``; everything else is
the fast unit suite, ``python -m pytest -m "not e2e"``. ``_unit_tests_stay_in_process`` keeps
the line true: a test without the mark that listens on a socket or starts a process fails,
naming what it started.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from envoy_exporter.revision import revision

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SHARED_FIXTURES = SHARED / "fixtures" / "envoy"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# The exporter reads its revision once per process (``git rev-parse`` in a checkout): read here,
# outside any test, no unit test is the one that starts git.
revision()

needs_shared = pytest.mark.skipif(not SHARED_FIXTURES.is_dir(), reason="../shared is not beside the repo")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_fake_gateway() -> ModuleType:
    """The conformance suite's fake gateway (``../shared``; callers are marked ``needs_shared``)."""
    spec = importlib.util.spec_from_file_location("fake_gateway", SHARED / "conformance" / "fake_gateway.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Clock:
    """A settable clock, called as ``clock()``; tests move ``now`` by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Clocks:
    """A client's two clocks, moved together: ``clock`` (monotonic) and ``now`` (wall)."""

    mono: float = 1000.0
    wall: float = 1_750_000_000.0

    def clock(self) -> float:
        return self.mono

    def now(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


class Recorder:
    """Stands in for the client's request counter: ``record(endpoint, code)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, endpoint: str, code: str) -> None:
        self.calls.append((endpoint, code))

    def count(self, endpoint: str) -> int:
        return sum(1 for e, _ in self.calls if e == endpoint)


@pytest.fixture(autouse=True)
def _unit_tests_stay_in_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    if request.node.get_closest_marker("e2e") is not None:
        yield
        return
    started: list[str] = []
    own_thread = threading.get_ident()  # servers left running by an earlier test are not this one's
    listen, popen = socket.socket.listen, subprocess.Popen.__init__

    def watched_listen(sock: socket.socket, *args: Any) -> None:
        if threading.get_ident() == own_thread:
            started.append(f"a server on {sock.getsockname()}")
        listen(sock, *args)

    def watched_popen(process: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
        started.append(f"the process {args!r}")
        popen(process, args, *rest, **kwargs)

    monkeypatch.setattr(socket.socket, "listen", watched_listen)
    monkeypatch.setattr(subprocess.Popen, "__init__", watched_popen)
    yield
    assert not started, f"a unit test started {', '.join(started)}: mark it e2e"
