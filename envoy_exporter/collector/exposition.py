"""The exposition: one renderer for every series, each gateway's data rendered once per snapshot.

Series are written as they are added (``families.Families``): the sample line is
one f-string of the family's sample name, the labels rendered beforehand and the value. Labels
are handled rendered, as the text ``name="value",...``: a gateway's ``gateway="..."`` is made
once per scrape, a narrower set (``with_label``: a phase, an inverter) by appending to it, once
for all the series that share it. Nothing is validated per sample: the metric and label names
are the collector's own constants.

The sample lines of the text format 0.0.4 and of OpenMetrics are the same; only the families'
``# HELP`` / ``# TYPE`` lines differ (a counter is named with ``_total`` in the text format, and
OpenMetrics also escapes ``"`` in the help), and OpenMetrics ends with ``# EOF``. So a gateway's
data series are rendered once per snapshot, whatever the format (``SnapshotCache``), and the
series that change on every scrape (``enphase_up``, ``enphase_data_age_seconds``, the request
counters ...) are rendered per scrape. ``join`` puts the pieces together with each family's
header once, the samples of every piece under it, in the order the families first appear.

Values are written as Python writes floats (``repr``), which Prometheus and OpenMetrics parse
(prometheus-client writes large values in Go's exponent notation instead; the numbers are the
same), and infinities and NaN as the formats spell them.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from prometheus_client.exposition import choose_encoder

# A family's name, type and help: what its header lines are made of, and what pieces are
# joined by.
Header = tuple[str, str, str]
# One family's header and its sample lines, as rendered.
Group = tuple[Header, bytes]

# Seconds a gateway's rendering is kept after the last scrape that took it, at most: Prometheus'
# default interval, so an HA pair or a second dashboard within it finds it rendered. Less when the
# gateway's snapshot can be served for less (``SnapshotCache``).
KEEP_SECONDS = 15.0
# How often the renderings past their time are looked for.
SWEEP_SECONDS = 1.0
_EOF = b"# EOF\n"
_OPENMETRICS = "application/openmetrics-text"
_SPECIAL = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}


def number(value: float) -> str:
    """A sample value as both formats write it."""
    text = repr(value)
    return _SPECIAL[text] if text[-1] in "fn" else text  # only inf, -inf and nan end so


def escape(value: str) -> str:
    """A label value escaped for both formats."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def escaped(value: str) -> str:
    """A label value as both formats write it. Most need no escaping: three searches for a
    character tell, cheaper than a regular expression."""
    return escape(value) if "\\" in value or "\n" in value or '"' in value else value


def render_labels(pairs: Mapping[str, str]) -> str:
    """``name="value",...``: labels as a sample line holds them."""
    return ",".join([f'{name}="{escaped(value)}"' for name, value in pairs.items()])


def with_label(labels: str, name: str, value: str) -> str:
    """The rendered ``labels`` and one label more: how a gateway's series narrow to a phase, a
    meter, an inverter. One string made once for all the series that share it, no object."""
    if "\\" in value or "\n" in value or '"' in value:  # ``escaped``, without a call
        value = escape(value)
    return f'{labels},{name}="{value}"' if labels else f'{name}="{value}"'


def with_labels(labels: str, **more: str) -> str:
    """The rendered ``labels`` and the labels ``more``: one string made, not one per label."""
    text = labels
    for name, value in more.items():
        if "\\" in value or "\n" in value or '"' in value:  # ``escaped``, without a call
            value = escape(value)
        text = f'{text},{name}="{value}"'
    return text if labels else text[1:]


def gateway_labels(name: str) -> str:
    """The labels every series of the gateway ``name`` starts with."""
    return with_label("", "gateway", name)


@lru_cache(maxsize=4096)
def header_lines(header: Header, openmetrics: bool) -> bytes:
    """The ``# HELP`` and ``# TYPE`` lines of a family in one of the two formats."""
    name, kind, documentation = header
    shown = name if openmetrics or kind != "counter" else name + "_total"
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    if openmetrics:
        doc = doc.replace('"', r"\"")
    return f"# HELP {shown} {doc}\n# TYPE {shown} {kind}\n".encode()


def is_openmetrics(content_type: str) -> bool:
    return content_type.startswith(_OPENMETRICS)


def negotiate(accept: str | None) -> str:
    """The content type to answer ``accept`` with: prometheus-client's choice, but with names
    escaped as ``underscores`` where another escaping was asked for. The exporter's names are
    valid as they are, which that escaping leaves them; ``values`` and ``dots`` would rewrite
    every underscore, and a client that asks for them accepts what the answer says it is."""
    _, content_type = choose_encoder(accept or "")
    escaping = content_type.rpartition("escaping=")[2]
    if "escaping=" in content_type and escaping not in ("underscores", "allow-utf-8"):
        content_type = content_type[: -len(escaping)] + "underscores"
    return content_type


def join(parts: Iterable[Sequence[Group]], content_type: str) -> bytes:
    """One exposition of ``parts``: each family once, with the samples of every part."""
    openmetrics = is_openmetrics(content_type)
    merged: dict[Header, list[bytes]] = {}
    for groups in parts:
        for header, samples in groups:
            found = merged.get(header)
            if found is None:
                merged[header] = [samples]
            else:
                found.append(samples)
    # One list of pieces and one join: a fleet's exposition is megabytes, and joining each family
    # first would copy all of it twice.
    body = []
    for header, samples in merged.items():
        body.append(header_lines(header, openmetrics))
        body += samples
    if openmetrics:
        body.append(_EOF)
    return b"".join(body)


@dataclass
class _Rendered:
    snapshot: object
    labels: str  # the gateway's: an unnamed gateway's change once /info tells the serial
    until: float  # when it is dropped unless a scrape takes it again (monotonic seconds)
    groups: list[Group] | None = None


class SnapshotCache:
    """Per gateway, the rendered data series of its latest snapshot.

    Keyed by the gateway's client, weakly: a gateway dropped by a reload takes its entry along.
    An entry is dropped ``keep`` seconds after the last scrape that took it, or sooner, once its
    snapshot can no longer be served (``reusable``: the next scrape would get a new one): a fleet
    probed once a minute gets a new snapshot at every probe, and 200 gateways' renderings (some
    5 MB) would only sit there. Two scrapes racing on a new snapshot may both render it; both get
    the same bytes.

    Scrapes sweep it as they come; when they stop, its sweeper (the web server's loop: ``sweep``
    says how long it may sleep) drops the rest on time. ``wake`` tells the sweeper that an entry
    is due before the time it sleeps until: called on a scrape's thread, at most once per entry
    that comes due sooner (with steady scrapes, about once per sweep).
    """

    def __init__(
        self,
        keep: float = KEEP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._entries: weakref.WeakKeyDictionary[object, _Rendered] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._keep = keep
        self._clock = clock
        self._swept = clock()
        self._wake = wake
        self._due = math.inf  # when the sweeper looks next; never while nothing is kept

    def groups(
        self,
        owner: object,
        snapshot: object,
        labels: str,
        render: Callable[[str], list[Group]],
        reusable: float = math.inf,
    ) -> list[Group]:
        """``render(labels)``, the rendered data series of ``snapshot``; rendered only when this
        snapshot was not rendered under these labels before. ``reusable``: seconds the owner may
        still serve ``snapshot`` to a scrape."""
        now = self._clock()
        until = now + min(self._keep, reusable)
        with self._lock:
            self._sweep(now)
            entry = self._entries.get(owner)
            if entry is None or entry.snapshot is not snapshot or entry.labels != labels:
                entry = _Rendered(snapshot, labels, until)
                self._entries[owner] = entry
            entry.until = until
            groups = entry.groups
            sooner = until < self._due
            if sooner:
                self._due = until
        if sooner:
            self._wake()
        if groups is None:
            groups = render(labels)
            with self._lock:
                entry.groups = groups
        return groups

    def sweep(self) -> float | None:
        """Drops the renderings past their time; the seconds until the next one is due (at least
        ``SWEEP_SECONDS``), None while none is kept. Cheap until then: nothing is looked at."""
        now = self._clock()
        with self._lock:
            if now < self._due:
                return None if self._due == math.inf else self._due - now
            self._drop_past(now)
            untils = [entry.until for entry in self._entries.values()]
            self._due = max(min(untils), now + SWEEP_SECONDS) if untils else math.inf
            return None if self._due == math.inf else self._due - now

    def _sweep(self, now: float) -> None:
        if now - self._swept >= SWEEP_SECONDS:
            self._drop_past(now)

    def _drop_past(self, now: float) -> None:
        """Drops the renderings past their time (lock held): scrapes' and the sweeper's sweep."""
        self._swept = now
        for owner, entry in list(self._entries.items()):
            if entry.until <= now:
                del self._entries[owner]
