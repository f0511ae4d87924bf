"""Accumulates samples into metric families across gateways.

An exposition must hold each family once, with the samples of every gateway under it; building
per gateway and concatenating would repeat ``# TYPE`` lines, which Prometheus rejects. This
builder also enforces the house rule that a ``None`` value produces no sample at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import Metric

from envoy_exporter.collector.exposition import Family


class Families:
    def __init__(self) -> None:
        self._families: dict[str, tuple[Family, frozenset[str]]] = {}

    def gauge(self, name: str, doc: str, labels: Mapping[str, str], value: float | bool | None) -> None:
        if value is not None:
            self._add(name, doc, labels, float(value), "gauge")

    def counter(self, name: str, doc: str, labels: Mapping[str, str], value: float | None) -> None:
        """``name`` without ``_total``: the exposition appends it."""
        if value is not None:
            self._add(name, doc, labels, float(value), "counter")

    def _add(self, name: str, doc: str, labels: Mapping[str, str], value: float, kind: str) -> None:
        entry = self._families.get(name)
        if entry is None:
            entry = (Family(name, doc, kind, tuple(labels)), frozenset(labels))
            self._families[name] = entry
        family, known = entry
        if labels.keys() != known:
            # A programming error in the collector, not bad gateway data.
            raise ValueError(f"{name}: labels {sorted(labels)} differ from {sorted(family.labelnames)}")
        family.samples.append((tuple([labels[k] for k in family.labelnames]), value))

    def tables(self) -> Iterator[Family]:
        """The families as built, for the exposition to render from."""
        return (family for family, _ in self._families.values())

    def __iter__(self) -> Iterator[Metric]:
        """prometheus-client's families, for a collector's ``collect``."""
        return (family.metric() for family, _ in self._families.values())
