"""The user documentation speaks to users: no issue numbers, commit ids or team history in the
README, docs/ or the code's comments; links that lead somewhere; the test command CI reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT

USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE = sorted((ROOT / "envoy_exporter").rglob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))
HISTORY = re.compile(r"\b(issue|wave)s? #?\d+|\bbefore \(main\b|\bgoal\b.*\bnot met\b", re.IGNORECASE)
# A commit id: 7 to 40 hex digits with at least one letter and one digit, standing alone.
COMMIT = re.compile(r"(?<![\w./-])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}(?![\w./-])")


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", USER_DOCS, ids=_relative)
def test_user_docs_tell_no_history(path: Path) -> None:
    text = path.read_text()
    assert HISTORY.findall(text) == []
    assert COMMIT.findall(text) == []


@pytest.mark.parametrize("path", CODE, ids=_relative)
def test_code_comments_tell_no_history(path: Path) -> None:
    comments = [line for line in path.read_text().splitlines() if "#" in line or '"""' in line]
    assert [line for line in comments if HISTORY.search(line)] == []


@pytest.mark.parametrize("path", USER_DOCS, ids=_relative)
def test_relative_links_lead_somewhere(path: Path) -> None:
    targets = re.findall(r"\]\((?!https?://|#|mailto:)([^)#\s]+)", path.read_text())
    assert [t for t in targets if not (path.parent / t).exists()] == []


def test_the_readme_keeps_the_test_command_where_ci_reads_it() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    marker = lines.index("<!-- test-command -->")
    command = lines[marker + 2]
    assert command.startswith("python3 -m venv .venv && ") and command.endswith("python -m pytest")
