"""docs/ARCHITECTURE.md tells the code as it is: the endpoint table is the catalogue, row for
row; every module is in the module table and every module the table names exists; and each
endpoint's parsed answer fills a `Readings` field of its parser's type."""

from __future__ import annotations

import re
import typing

from conftest import ROOT

from envoy_exporter.gateway.endpoints import BY_KEY, CATALOGUE, Endpoint
from envoy_exporter.snapshot.model import Readings

DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
PACKAGE = ROOT / "envoy_exporter"


def table_rows(heading: str) -> dict[str, list[str]]:
    """The rows of the table under ``heading``, by the text of their first cell."""
    section = DOC.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [re.split(r"(?<!\\)\|", line)[1:-1] for line in section.splitlines() if line.startswith("| `")]
    return {row[0].strip(" `"): [cell.strip() for cell in row] for row in rows}


def type_name(annotation: object) -> str:
    """``GatewayInfo``, ``tuple[MeterConfig, ...]``: a type as the source spells it."""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("envoy_exporter.snapshot.model.", "")


def parsed_type(endpoint: Endpoint) -> object:
    return typing.get_type_hints(endpoint.parse)["return"]


def doc_row(endpoint: Endpoint) -> list[str]:
    """The endpoint's row as docs/ARCHITECTURE.md should show it."""
    module = endpoint.parse.__module__.removeprefix("envoy_exporter.").replace(".", "/") + ".py"
    return [
        f"`{endpoint.key}`",
        ", ".join(f"`{path}`" for path in endpoint.paths),
        f"`{module}` `{endpoint.parse.__name__}`",
        f"`{type_name(parsed_type(endpoint))}`",
        endpoint.family,
        ".".join(map(str, endpoint.since)) or "any",
        "yes" if endpoint.digest else "no",
        endpoint.left_out,
    ]


def test_the_endpoint_table_is_the_catalogue() -> None:
    rows = table_rows("Endpoints and their parsers")
    assert list(rows) == [endpoint.key for endpoint in CATALOGUE]
    for endpoint in CATALOGUE:
        assert rows[endpoint.key] == doc_row(endpoint), endpoint.key


def test_each_endpoint_fills_a_readings_field_of_its_parsers_type() -> None:
    fields = typing.get_type_hints(Readings)
    assert set(fields) == set(BY_KEY)
    for endpoint in CATALOGUE:
        assert fields[endpoint.key] == parsed_type(endpoint) | None, endpoint.key


def test_the_module_table_names_every_module_and_only_modules_that_exist() -> None:
    named = set(table_rows("Modules and their contracts"))
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        folder = module.split("/", 1)[0] + "/"
        if module.endswith("/__init__.py") and len(path.read_text().splitlines()) < 5:
            continue  # an empty package marker
        assert module in named or folder in named, f"{module} is not in docs/ARCHITECTURE.md's module table"
    for name in named:
        assert (PACKAGE / name).exists(), f"docs/ARCHITECTURE.md names {name}, which is not there"


def test_only_the_auth_package_tells_the_schemes_apart() -> None:
    comparison = re.compile(r"""scheme\s*[!=]=\s*["'](token|digest|none)["']""")
    for path in sorted(PACKAGE.rglob("*.py")):
        if not path.is_relative_to(PACKAGE / "gateway" / "auth"):
            assert not comparison.search(path.read_text()), f"{path} compares auth scheme names"
