"""``revision`` in the build info: from the checkout, from a built wheel, or "unknown"."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT

from envoy_exporter.revision import UNKNOWN, revision

pytestmark = pytest.mark.e2e

needs_git_checkout = pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout"
)


def _head() -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _revision_of(package_parent) -> str:
    code = "from envoy_exporter.revision import revision; print(revision())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=package_parent,
        env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@needs_git_checkout
def test_from_the_checkout():
    assert revision() == _head()


@needs_git_checkout
def test_a_built_wheel_carries_the_revision(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("envoy_exporter-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert z.read("envoy_exporter/REVISION").decode().strip() == _head()
        z.extractall(tmp_path / "installed")
    assert _revision_of(tmp_path / "installed") == _head()


def test_unknown_when_nothing_tells(tmp_path):
    shutil.copytree(ROOT / "envoy_exporter", tmp_path / "envoy_exporter")
    (tmp_path / "envoy_exporter" / "REVISION").unlink(missing_ok=True)
    assert _revision_of(tmp_path) == UNKNOWN


def test_a_garbled_file_is_not_believed(tmp_path):
    shutil.copytree(ROOT / "envoy_exporter", tmp_path / "envoy_exporter")
    (tmp_path / "envoy_exporter" / "REVISION").write_text("<html>not a commit</html>\n")
    assert _revision_of(tmp_path) == UNKNOWN
