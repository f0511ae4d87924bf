"""Accumulates samples into metric families, rendered as they are added.

An exposition must hold each family once, with the samples of every gateway under it; building
per gateway and concatenating would repeat ``# TYPE`` lines, which Prometheus rejects (see
``exposition.join``). This builder also enforces the house rule that a ``None`` value produces
no sample at all.

Labels are passed rendered (``name="value",...``, made with ``exposition.with_label``): a set of
series that shares them (a gateway's, an inverter's) has them rendered once, not once per series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from math import isfinite
from operator import attrgetter

from prometheus_client.core import Metric

from envoy_exporter.collector.exposition import Group, Header, escape, number, render_labels

# A series of an object: its family's header, the start of its sample lines (the sample name
# and ``{``) and the attribute of the object that holds its value. Made once per metric
# (``column``), so a table neither builds headers nor minds the kind.
Column = tuple[Header, str, str]


def column(name: str, kind: str, doc: str, attr: str) -> Column:
    """The column of the ``kind`` ("gauge" or "counter") family ``name`` (a counter's without
    ``_total``) taking its values from ``attr``."""
    return (name, kind, doc), (f"{name}_total{{" if kind == "counter" else f"{name}{{"), attr


@dataclass(frozen=True, slots=True)
class Columns:
    """The columns of one type of object, as ``Families.gauges`` and ``Families.table`` take
    them: per column its family's name, header and sample opening, and ``values``, which reads
    every column's value of an object in one call (one call per object, not one per series)."""

    written: tuple[tuple[str, Header, str], ...]
    values: Callable[[object], tuple[object, ...]]


def columns(*each: Column) -> Columns:
    attrs = [attr for _, _, attr in each]
    # ``attrgetter`` of one attribute gives the value, not a tuple of it.
    values = attrgetter(*attrs) if len(attrs) > 1 else lambda obj: (getattr(obj, attrs[0]),)
    return Columns(tuple((header[0], header, opening) for header, opening, _ in each), values)


class Families:
    """Families in the order they first got a sample, each its sample lines as written.

    A family is its list of lines, looked up by name: no object is made per family, and a
    gauge's samples go by the family's name (a counter's by the name with ``_total``)."""

    __slots__ = ("_headers", "_lines")

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {}
        self._headers: dict[str, Header] = {}

    # Called for every series of every gateway: the line is written here, in one go, and a new
    # family is made in place (a call per family costs more than these two lines repeated).
    def gauge(self, name: str, doc: str, labels: str, value: float | bool | None) -> None:
        if value is not None:
            lines = self._lines.get(name)
            if lines is None:
                lines = self._lines[name] = []
                self._headers[name] = (name, "gauge", doc)
            value = float(value)
            if value - value == 0.0:  # finite: not inf, -inf, nan, which the formats spell otherwise
                lines.append(f"{name}{{{labels}}} {value!r}\n")
            else:
                lines.append(f"{name}{{{labels}}} {number(value)}\n")

    def counter(self, name: str, doc: str, labels: str, value: float | None) -> None:
        """``name`` without ``_total``: the exposition appends it."""
        if value is not None:
            lines = self._lines.get(name)
            if lines is None:
                lines = self._lines[name] = []
                self._headers[name] = (name, "counter", doc)
            value = float(value)
            if value - value == 0.0:  # finite: not inf, -inf, nan, which the formats spell otherwise
                lines.append(f"{name}_total{{{labels}}} {value!r}\n")
            else:
                lines.append(f"{name}_total{{{labels}}} {number(value)}\n")

    def one(self, name: str, doc: str, labels: str) -> None:
        """A gauge that is 1 while the series exists: an info series, or a state set's state
        in force."""
        lines = self._lines.get(name)
        if lines is None:
            lines = self._lines[name] = []
            self._headers[name] = (name, "gauge", doc)
        lines.append(f"{name}{{{labels}}} 1.0\n")

    def state(self, name: str, doc: str, labels: str, label: str, value: str) -> None:
        """A state set's state in force: a gauge that is 1 with ``value`` in the label ``label``
        (the labels ``labels`` and that one, written into the line, not made first)."""
        if "\\" in value or "\n" in value or '"' in value:  # ``exposition.escaped``, without a call
            value = escape(value)
        lines = self._lines.get(name)
        if lines is None:
            lines = self._lines[name] = []
            self._headers[name] = (name, "gauge", doc)
        if labels:
            lines.append(f'{name}{{{labels},{label}="{value}"}} 1.0\n')
        else:
            lines.append(f'{name}{{{label}="{value}"}} 1.0\n')

    def gauges(self, columns: Columns, labels: str, obj: object) -> None:
        """One series per column, each the value of the column's attribute of ``obj``, all with
        ``labels``."""
        found, headers = self._lines, self._headers
        for (name, header, opening), value in zip(columns.written, columns.values(obj)):
            if value is not None:
                lines = found.get(name)
                if lines is None:
                    lines = found[name] = []
                    headers[name] = header
                value = float(value)
                if value - value == 0.0:  # finite: not inf, -inf, nan, which the formats spell otherwise
                    lines.append(f"{opening}{labels}}} {value!r}\n")
                else:
                    lines.append(f"{opening}{labels}}} {number(value)}\n")

    def table(self, columns: Columns, items: Sequence[tuple[str, object]]) -> None:
        """Per column, a series for each item (its labels, the object whose column attribute
        holds the value). The bulk of the series (a dozen per microinverter) go through here:
        a family is looked up once per column, and no call is made per line."""
        if not items:
            return
        found, headers = self._lines, self._headers
        labelled = [labels for labels, _ in items]
        # Column by column, the values of every item: one read per item.
        by_column = zip(*[columns.values(obj) for _, obj in items])
        # Compared as a whole, a column without values is skipped at once (tuples compare items
        # by identity first): as many inverters' DC side, which the gateway does not report.
        absent = (None,) * len(items)
        for (name, header, opening), values in zip(columns.written, by_column):
            if values == absent:
                continue
            lines = found.get(name)
            if lines is None:
                lines = found[name] = []
                headers[name] = header
            if _all_finite(values):  # as nearly always: the lines written in one go
                lines += [
                    f"{opening}{labels}}} {value!r}\n" for labels, value in zip(labelled, map(float, values))
                ]
                continue
            for labels, value in zip(labelled, values):
                if value is not None:
                    value = float(value)
                    if value - value == 0.0:  # finite: not inf, -inf, nan, which the formats spell otherwise
                        lines.append(f"{opening}{labels}}} {value!r}\n")
                    else:
                        lines.append(f"{opening}{labels}}} {number(value)}\n")

    def family(self, name: str, doc: str, kind: str) -> list[str]:
        """The lines of the family ``name``, a ``kind`` ("gauge" or "counter") family made now
        if it has none yet (a family that may stay without samples)."""
        lines = self._lines.get(name)
        if lines is None:
            lines = self._lines[name] = []
            self._headers[name] = (name, kind, doc)
        return lines

    def groups(self) -> list[Group]:
        """The families rendered, as pieces for ``exposition.join``."""
        # Both dictionaries get a family's entry at once, so their orders match; mapped rather
        # than looped over, as a snapshot has some seventy families.
        texts = map("".join, self._lines.values())
        return list(zip(self._headers.values(), map(str.encode, texts)))


def _all_finite(values: tuple[object, ...]) -> bool:
    """Whether every one of ``values`` is a finite number: none is ``None``, inf or NaN (a sum
    holding any of these is not finite, or cannot be made)."""
    try:
        return isfinite(sum(values))  # type: ignore[arg-type]
    except TypeError:
        return False


def from_library(metrics: Iterable[Metric]) -> Families:
    """prometheus-client's gauge and counter families (the process collector's) as ours."""
    families = Families()
    for metric in metrics:
        if metric.type not in ("gauge", "counter"):
            raise ValueError(f"{metric.name}: {metric.type} families are not rendered here")
        lines = families.family(metric.name, metric.documentation, metric.type)
        sample = metric.name + "_total" if metric.type == "counter" else metric.name
        for each in metric.samples:
            if each.name == sample:  # not a counter's _created
                labels, value = render_labels(each.labels), number(float(each.value))
                lines.append(f"{sample}{{{labels}}} {value}\n" if labels else f"{sample} {value}\n")
    return families
