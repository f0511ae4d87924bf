"""Shared test helpers.

``SHARED_FIXTURES`` is the captures directory of ../shared when it exists; tests that use it
skip cleanly when it does not.
"""

from __future__ import annotations

import importlib.util
import socket
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SHARED_FIXTURES = SHARED / "fixtures" / "envoy"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

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
