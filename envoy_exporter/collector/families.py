"""Accumulates samples into metric families, rendered as they are added.

An exposition must hold each family once, with the samples of every gateway under it; building
per gateway and concatenating would repeat ``# TYPE`` lines, which Prometheus rejects (see
``exposition.join``). This builder also enforces the house rule that a ``None`` value produces
no sample at all.

Labels are passed as ``exposition.Labels`` where a set of series shares them (a gateway's, an
inverter's): their text is rendered once, not once per series. A plain dict works too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from envoy_exporter.collector.exposition import Family, labels_text, number

# A series of an object: its metric name, its help, and the attribute that holds its value.
Row = tuple[str, str, str]


class Families:
    def __init__(self) -> None:
        self._families: dict[str, Family] = {}

    # Both are called for every series of every gateway: the line is written here, in one go.
    def gauge(self, name: str, doc: str, labels: Mapping[str, str], value: float | bool | None) -> None:
        if value is not None:
            family = self._families.get(name) or self._family(name, doc, "gauge")
            text = repr(float(value))
            if text[-1] in "fn":  # inf, -inf, nan: spelt otherwise in the formats
                text = number(float(value))
            family.lines.append(f"{family.sample}{{{labels_text(labels)}}} {text}\n")

    def counter(self, name: str, doc: str, labels: Mapping[str, str], value: float | None) -> None:
        """``name`` without ``_total``: the exposition appends it."""
        if value is not None:
            family = self._families.get(name) or self._family(name, doc, "counter")
            text = repr(float(value))
            if text[-1] in "fn":  # inf, -inf, nan: spelt otherwise in the formats
                text = number(float(value))
            family.lines.append(f"{family.sample}{{{labels_text(labels)}}} {text}\n")

    def gauges(self, rows: Sequence[Row], labels: Mapping[str, str], obj: object) -> None:
        """One gauge per row, each the value of the row's attribute of ``obj``, all with ``labels``."""
        self.table(rows, "gauge", [(labels, obj)])

    def counters(self, rows: Sequence[Row], labels: Mapping[str, str], obj: object) -> None:
        """As ``gauges``, counters (names without ``_total``)."""
        self.table(rows, "counter", [(labels, obj)])

    def table(
        self, rows: Sequence[Row], kind: str, items: Sequence[tuple[Mapping[str, str], object]]
    ) -> None:
        """Per row, a series of that ``kind`` for each item (its labels, the object whose row
        attribute holds the value). The bulk of the series (a dozen per microinverter) go
        through here: a family is looked up once per row, and no call is made per line."""
        texts = [(labels_text(labels), obj) for labels, obj in items]
        families = self._families
        for name, doc, attr in rows:
            family = families.get(name)
            for text, obj in texts:
                value = getattr(obj, attr)
                if value is not None:
                    if family is None:
                        family = self._family(name, doc, kind)
                    shown = repr(float(value))
                    if shown[-1] in "fn":  # inf, -inf, nan: spelt otherwise in the formats
                        shown = number(float(value))
                    family.lines.append(f"{family.sample}{{{text}}} {shown}\n")

    def _family(self, name: str, doc: str, kind: str) -> Family:
        family = self._families[name] = Family(name, doc, kind)
        return family

    def __iter__(self) -> Iterator[Family]:
        return iter(self._families.values())
