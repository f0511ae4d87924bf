"""The exposition: each gateway's data rendered once per snapshot, served as bytes until the next.

Rendering is where a scrape answered from cache spent its time: prometheus-client escapes and
validates every label of every sample on every scrape, for data that only changes when a new
snapshot arrives. So the data of a snapshot is rendered once per exposition format (the content
type names the format, its version and escaping) and kept with the snapshot; the series that
change on every scrape (``enphase_up``, ``enphase_data_age_seconds``, the request counters ...)
are rendered per scrape, and the pieces are joined.

Joining must keep the exposition valid: a family's ``# HELP`` / ``# TYPE`` lines appear once,
with the samples of every gateway under them. The library's own encoder renders everything, and
its output is cut into groups at each ``# HELP`` line (every family starts with one, in both
formats); groups with the same header lines are merged, in the order they first appear, which
is the order a single rendering of all the families at once would have. OpenMetrics' ``# EOF``
is dropped from each piece and written once at the end.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import Metric

# One family's header (HELP, TYPE, UNIT lines) and its sample lines, as rendered.
Group = tuple[bytes, bytes]
Encoder = Callable[..., bytes]

_EOF = b"# EOF\n"
_OPENMETRICS = "application/openmetrics-text"


class _Families:
    """What an encoder of prometheus-client reads: anything with ``collect()``."""

    def __init__(self, families: Iterable[Metric]):
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def render(encoder: Encoder, families: Iterable[Metric]) -> list[Group]:
    """``families`` rendered by ``encoder`` and cut into one group per family."""
    groups: list[Group] = []
    header: list[bytes] = []
    samples: list[bytes] = []
    for line in encoder(_Families(families)).splitlines(keepends=True):
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
    formats: dict[str, list[Group]] = field(default_factory=dict)


class SnapshotCache:
    """Per gateway, the rendered data of its latest snapshot, per content type.

    Keyed by the gateway's client, weakly: a gateway dropped by a reload takes its entry along.
    Two scrapes racing on a new snapshot may both render it; both get the same bytes.
    """

    def __init__(self) -> None:
        self._entries: weakref.WeakKeyDictionary[object, _Rendered] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def groups(
        self,
        owner: object,
        snapshot: object,
        name: str,
        content_type: str,
        encoder: Encoder,
        families: Callable[[], Iterable[Metric]],
    ) -> list[Group]:
        """The rendered ``families()`` of ``snapshot`` under the label ``name``; rendered only when
        this snapshot was not rendered in this format, under this name, before."""
        with self._lock:
            entry = self._entries.get(owner)
            if entry is None or entry.snapshot is not snapshot or entry.name != name:
                entry = _Rendered(snapshot, name)
                self._entries[owner] = entry
            groups = entry.formats.get(content_type)
        if groups is None:
            groups = render(encoder, families())
            with self._lock:
                entry.formats[content_type] = groups
        return groups
