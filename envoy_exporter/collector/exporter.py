"""The exporter's own series: registered once, they need no gateway."""

from __future__ import annotations

import platform
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from envoy_exporter import __version__
from envoy_exporter.revision import revision


def build_info() -> Metric:
    family = GaugeMetricFamily(
        "enphase_exporter_build_info",
        "The exporter's version, the source revision it was built from, and the Python running it",
        labels=["version", "revision", "python_version"],
    )
    family.add_metric([__version__, revision(), platform.python_version()], 1)
    return family


class ExporterCollector:
    """The exporter's own series; registered once, needs no gateway."""

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        yield build_info()
