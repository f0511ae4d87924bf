"""The exposition: each gateway's data rendered once per snapshot, served as bytes until the next.

Rendering is where a scrape answered from cache spent its time: prometheus-client escapes and
validates every label of every sample on every scrape, for data that only changes when a new
snapshot arrives. So the data of a snapshot is rendered once per exposition format (the content
type names the format, its version and escaping) and kept with the snapshot; the series that
change on every scrape (``enphase_up``, ``enphase_data_age_seconds``, the request counters ...)
are rendered per scrape, and the pieces are joined.

Rendering a new snapshot is quick too: for the content types Prometheus and curl get (the text
format 0.0.4, OpenMetrics 1.0.0), gauge and counter families with valid names are written here,
byte for byte as prometheus-client writes them (tests hold the two equal), without its per-label
validation; anything else (other types, units, timestamps, exemplars, other escapings) is left to
the library's encoder.

Joining must keep the exposition valid: a family's ``# HELP`` / ``# TYPE`` lines appear once,
with the samples of every gateway under them. The library's own encoder renders everything, and
its output is cut into groups at each ``# HELP`` line (every family starts with one, in both
formats); groups with the same header lines are merged, in the order they first appear, which
is the order a single rendering of all the families at once would have. OpenMetrics' ``# EOF``
is dropped from each piece and written once at the end.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

# One family's header (HELP, TYPE, UNIT lines) and its sample lines, as rendered.
Group = tuple[bytes, bytes]
Encoder = Callable[..., bytes]

# Seconds a gateway's rendering is kept after the last scrape that took it: Prometheus' default
# interval, so an HA pair or a second dashboard within it finds it rendered.
KEEP_SECONDS = 15.0
_EOF = b"# EOF\n"
_OPENMETRICS = "application/openmetrics-text"
# The content types (as prometheus-client's choose_encoder names them) rendered here; the value
# says whether the format is OpenMetrics. For valid metric and label names these escapings all
# leave names as they are.
_QUICK = {
    "text/plain; version=0.0.4; charset=utf-8": False,
    "application/openmetrics-text; version=1.0.0; charset=utf-8": True,
    "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores": True,
    "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8": True,
}
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class _Families:
    """What an encoder of prometheus-client reads: anything with ``collect()``."""

    def __init__(self, families: Iterable[Metric]):
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


@dataclass
class Family:
    """A gauge or counter family as the collector builds it: each sample's label values in the
    order of ``labelnames``. Cheaper to build than prometheus-client's, and rendered from as is."""

    name: str  # a counter's without ``_total``
    documentation: str
    type: str  # "gauge" or "counter"
    labelnames: tuple[str, ...]
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    def metric(self) -> Metric:
        """The same family as prometheus-client's (for its encoders and registries)."""
        kind = GaugeMetricFamily if self.type == "gauge" else CounterMetricFamily
        metric = kind(self.name, self.documentation, labels=list(self.labelnames))
        for values, value in self.samples:
            metric.add_metric(list(values), value)
        return metric


def render(encoder: Encoder, content_type: str, families: Iterable[Metric | Family]) -> list[Group]:
    """``families`` rendered as ``encoder`` renders them (``content_type`` names its format), one
    group per family."""
    openmetrics = _QUICK.get(content_type)
    groups: list[Group] = []
    for family in families:
        group = None
        if openmetrics is not None:
            quick = _quick_family if isinstance(family, Family) else _quick
            group = quick(family, openmetrics)
        if group is not None:
            groups.append(group)
        else:
            groups += _library(encoder, family.metric() if isinstance(family, Family) else family)
    return groups


def _header(name: str, kind: str, documentation: str, openmetrics: bool) -> tuple[str, str]:
    """The sample name and the HELP and TYPE lines of a gauge or counter family."""
    sample_name = name + "_total" if kind == "counter" else name
    shown = name if openmetrics else sample_name  # the text format names a counter by its samples
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    if openmetrics:
        doc = doc.replace('"', r"\"")
    return sample_name, f"# HELP {shown} {doc}\n# TYPE {shown} {kind}\n"


def _quick_family(family: Family, openmetrics: bool) -> Group | None:
    """``family`` written as prometheus-client writes it; None when a name is not a valid one."""
    names = family.labelnames
    if not _METRIC_NAME.fullmatch(family.name) or not all(_LABEL_NAME.fullmatch(k) for k in names):
        return None
    sample_name, header = _header(family.name, family.type, family.documentation, openmetrics)
    order = sorted(range(len(names)), key=names.__getitem__)  # the library sorts labels by name
    if not order:
        lines = [f"{sample_name} {floatToGoString(value)}\n" for _, value in family.samples]
    else:
        prefixes = [(f'{names[i]}="', i) for i in order]
        lines = []
        for values, value in family.samples:
            pairs = '",'.join([prefix + _escape(values[i]) for prefix, i in prefixes])
            lines.append(f'{sample_name}{{{pairs}"}} {floatToGoString(value)}\n')
    return header.encode(), "".join(lines).encode()


def _quick(family: Metric, openmetrics: bool) -> Group | None:
    """A gauge or counter family written as prometheus-client writes it; None for anything else."""
    kind, name = family.type, family.name
    if kind not in ("gauge", "counter") or family.unit or not _METRIC_NAME.fullmatch(name):
        return None
    sample_name, header = _header(name, kind, family.documentation, openmetrics)
    lines = [header]
    names: list[str] = []
    known: set[str] = set()
    for sample in family.samples:
        if sample.name != sample_name or sample.timestamp is not None or sample.exemplar is not None:
            return None
        if getattr(sample, "native_histogram", None) is not None or sample.value is None:
            return None
        labels = sample.labels
        if labels.keys() != known:
            names, known = sorted(labels), set(labels)
            if not all(isinstance(k, str) and _LABEL_NAME.fullmatch(k) for k in names):
                return None
        value = floatToGoString(sample.value)
        if names:
            pairs = ",".join(f'{k}="{_escape(labels[k])}"' for k in names)
            lines.append(f"{sample_name}{{{pairs}}} {value}\n")
        else:
            lines.append(f"{sample_name} {value}\n")
    return lines[0].encode(), "".join(lines[1:]).encode()


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _library(encoder: Encoder, family: Metric) -> list[Group]:
    """``family`` rendered by the library's ``encoder``, cut into groups (a text-format counter
    with ``_created`` samples makes two)."""
    groups: list[Group] = []
    header: list[bytes] = []
    samples: list[bytes] = []
    for line in encoder(_Families([family])).splitlines(keepends=True):
        if line.startswith(b"#"):
            if line == _EOF:
                continue
            if line.startswith(b"# HELP ") and (header or samples):
                groups.append((b"".join(header), b"".join(samples)))
                header, samples = [], []
            header.append(line)
        else:
            samples.append(line)
    if header or samples:
        groups.append((b"".join(header), b"".join(samples)))
    return groups


def join(parts: Iterable[Sequence[Group]], content_type: str) -> bytes:
    """One exposition of ``parts``: each family once, with the samples of every part."""
    merged: dict[bytes, list[bytes]] = {}
    for groups in parts:
        for header, samples in groups:
            merged.setdefault(header, []).append(samples)
    body = [header + b"".join(samples) for header, samples in merged.items()]
    if content_type.startswith(_OPENMETRICS):
        body.append(_EOF)
    return b"".join(body)


@dataclass
class _Rendered:
    snapshot: object
    name: str  # the gateway label: an unnamed gateway's changes once /info tells the serial
    used: float  # when a scrape last took it (monotonic seconds)
    formats: dict[str, list[Group]] = field(default_factory=dict)


class SnapshotCache:
    """Per gateway, the rendered data of its latest snapshot, per content type.

    Keyed by the gateway's client, weakly: a gateway dropped by a reload takes its entry along.
    An entry no scrape took for ``keep`` seconds is dropped: a fleet probed once a minute gets a
    new snapshot at every probe, and 200 gateways' renderings (some 5 MB) would only sit there.
    Two scrapes racing on a new snapshot may both render it; both get the same bytes.
    """

    def __init__(self, keep: float = KEEP_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: weakref.WeakKeyDictionary[object, _Rendered] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._keep = keep
        self._clock = clock
        self._swept = clock()

    def groups(
        self,
        owner: object,
        snapshot: object,
        name: str,
        content_type: str,
        encoder: Encoder,
        families: Callable[[], Iterable[Metric | Family]],
    ) -> list[Group]:
        """The rendered ``families()`` of ``snapshot`` under the label ``name``; rendered only when
        this snapshot was not rendered in this format, under this name, before."""
        now = self._clock()
        with self._lock:
            self._sweep(now)
            entry = self._entries.get(owner)
            if entry is None or entry.snapshot is not snapshot or entry.name != name:
                entry = _Rendered(snapshot, name, now)
                self._entries[owner] = entry
            entry.used = now
            groups = entry.formats.get(content_type)
        if groups is None:
            groups = render(encoder, content_type, families())
            with self._lock:
                entry.formats[content_type] = groups
        return groups

    def _sweep(self, now: float) -> None:
        if now - self._swept < self._keep:
            return
        self._swept = now
        for owner, entry in list(self._entries.items()):
            if now - entry.used >= self._keep:
                del self._entries[owner]
