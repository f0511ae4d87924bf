"""The code base stays ruff-clean: lint and format are part of the test command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

# The ruff of the interpreter running the tests first (a virtualenv's, on PATH or not), then PATH's.
ruff = shutil.which(
    "ruff", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
)
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(ruff is None, reason="ruff is not installed (pip install '.[test]')"),
]


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["check", "format"])
def test_ruff(args: list[str]) -> None:
    result = subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
