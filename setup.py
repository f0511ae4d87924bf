"""Writes the git revision into the built package, for ``enphase_exporter_build_info``.

Everything else is in pyproject.toml. The revision comes from ``git rev-parse HEAD`` in the
source tree, or from the ``ENVOY_EXPORTER_REVISION`` environment variable where the tree has no
``.git`` (a Docker build, a build from an sdist); without either, no file is written and the
exporter says "unknown".
"""

import os
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


def _revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("ENVOY_EXPORTER_REVISION") or None


class BuildWithRevision(build_py):
    def run(self) -> None:
        super().run()
        revision = _revision()
        if revision:
            target = Path(self.build_lib) / "envoy_exporter" / "REVISION"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(revision + "\n")


setup(cmdclass={"build_py": BuildWithRevision})
