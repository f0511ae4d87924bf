"""docs/ARCHITECTURE.md tells the code as it is: every endpoint with its paths and parser, every
module in the module table."""

from __future__ import annotations

import re

from conftest import ROOT

from envoy_exporter.gateway import endpoints
from envoy_exporter.gateway.client import PARSERS

DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
PACKAGE = ROOT / "envoy_exporter"


def table_rows(heading: str) -> dict[str, list[str]]:
    """The rows of the table under ``heading``, by the text of their first cell."""
    section = DOC.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [re.split(r"(?<!\\)\|", line)[1:-1] for line in section.splitlines() if line.startswith("| `")]
    return {row[0].strip(" `"): [cell.strip() for cell in row] for row in rows}


def test_every_endpoint_is_listed_with_its_paths_and_parser():
    rows = table_rows("Endpoints and their parsers")
    catalogue = [e for e in vars(endpoints).values() if isinstance(e, endpoints.Endpoint)]
    assert set(rows) == set(endpoints.BY_KEY)
    for key, row in rows.items():
        paths = {e.path for e in catalogue if e.key == key}
        assert set(re.findall(r"`([^`]+)`", row[1])) == paths, key
        parser = PARSERS[key]
        module = parser.__module__.removeprefix("envoy_exporter.").replace(".", "/") + ".py"
        assert row[2] == f"`{module}` `{parser.__name__}`", key
        assert row[3].split()[0] == endpoints.BY_KEY[key].family, key


def test_every_module_is_in_the_module_table():
    named = set(table_rows("Modules and their contracts"))
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        folder = module.split("/", 1)[0] + "/"
        if module.endswith("/__init__.py") and len(path.read_text().splitlines()) < 5:
            continue  # an empty package marker
        assert module in named or folder in named, f"{module} is not in docs/ARCHITECTURE.md's module table"
