"""Accumulates samples into metric families across gateways.

An exposition must hold each family once, with the samples of every gateway under it; building
per gateway and concatenating would repeat ``# TYPE`` lines, which Prometheus rejects. This
builder also enforces the house rule that a ``None`` value produces no sample at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


class Families:
    def __init__(self) -> None:
        self._families: dict[str, tuple[Metric, tuple[str, ...]]] = {}

    def gauge(self, name: str, doc: str, labels: Mapping[str, str], value: float | bool | None) -> None:
        if value is not None:
            self._add(name, doc, labels, float(value), GaugeMetricFamily)

    def counter(self, name: str, doc: str, labels: Mapping[str, str], value: float | None) -> None:
        """``name`` without ``_total``: the client library appends it."""
        if value is not None:
            self._add(name, doc, labels, float(value), CounterMetricFamily)

    def _add(self, name: str, doc: str, labels: Mapping[str, str], value: float, kind: type) -> None:
        entry = self._families.get(name)
        if entry is None:
            entry = (kind(name, doc, labels=list(labels)), tuple(labels))
            self._families[name] = entry
        family, labelnames = entry
        if set(labels) != set(labelnames):
            # A programming error in the collector, not bad gateway data.
            raise ValueError(f"{name}: labels {sorted(labels)} differ from {sorted(labelnames)}")
        family.add_metric([labels[k] for k in labelnames], value)

    def __iter__(self) -> Iterator[Metric]:
        return (family for family, _ in self._families.values())
