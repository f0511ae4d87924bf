"""Which gateway goes by which ``gateway`` label.

A gateway configured without a name or serial is labelled by the serial its ``/info`` reports.
Two such gateways reporting one serial at run time (a typo in a host, a DHCP lease that moved),
or one reporting the serial another is configured under, would serve one label's series twice,
and share one counter state file. The first to claim a label keeps it; a later one is an error
until the first lets go (it is removed, or reports another serial). A gateway found by discovery
holds its label weakly: a configured gateway claiming it takes it over.
"""

from __future__ import annotations

import threading


class Labels:
    """Label -> the gateway that holds it. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[str, tuple[object, str, bool]] = {}  # label -> (owner, its host, weak)
        # Owner -> the one label it holds: a fleet of hundreds claims at start-up, and looking
        # through every label for each claim made the start-up quadratic in the fleet.
        self._held: dict[int, str] = {}

    def claim(
        self, label: str, owner: object, host: str, take: bool = False, weak: bool = False
    ) -> str | None:
        """None when ``owner`` holds ``label`` now (any label it held before is let go); else
        the host of the gateway that already holds it. ``take``: a configured label, which the
        configuration checked is unique, is taken over (from the client a reload replaces).
        ``weak``: a discovered gateway's claim, which any other claim takes over."""
        with self._lock:
            holder = self._holders.get(label)
            if holder is not None and holder[0] is not owner and not take and (weak or not holder[2]):
                return holder[1]
            self._drop(owner)
            if holder is not None:
                self._held.pop(id(holder[0]), None)  # taken over
            self._holders[label] = (owner, host, weak)
            self._held[id(owner)] = label
            return None

    def release(self, owner: object) -> None:
        with self._lock:
            self._drop(owner)

    def _drop(self, owner: object) -> None:
        label = self._held.pop(id(owner), None)
        if label is not None:
            del self._holders[label]
