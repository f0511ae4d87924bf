"""The code base stays ruff-clean: lint and format are part of the test command."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import ROOT

ruff = shutil.which("ruff")
pytestmark = pytest.mark.skipif(ruff is None, reason="ruff is not installed (pip install '.[test]')")


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["check", "format"])
def test_ruff(args: list[str]) -> None:
    result = subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
