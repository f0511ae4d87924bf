"""The source revision the exporter was built from, for ``enphase_exporter_build_info``.

In order: the git commit of the checkout the package runs from (an editable install, or running
from the sources), else the ``REVISION`` file that ``setup.py`` writes into a built wheel, else
"unknown". Never guessed.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

UNKNOWN = "unknown"
_PACKAGE = Path(__file__).resolve().parent
_COMMIT = re.compile(r"[0-9a-f]{7,64}")


@functools.cache
def revision() -> str:
    return _from_checkout() or _from_file() or UNKNOWN


def _from_checkout() -> str | None:
    # Only the checkout the package itself sits in: never an unrelated repository around a
    # site-packages directory.
    root = _PACKAGE.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return _valid(out.stdout) if out.returncode == 0 else None


def _from_file() -> str | None:
    try:
        return _valid((_PACKAGE / "REVISION").read_text())
    except OSError:
        return None


def _valid(text: str) -> str | None:
    text = text.strip()
    return text if _COMMIT.fullmatch(text) else None
