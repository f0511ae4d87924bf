"""Hand-built snapshots and a fake gateway client for the collector and web tests.

The values are invented (serials 9990...), shaped after what the captures hold: a three-phase
metered gateway with a production and a net-consumption CT, microinverters with and without
device data, a Q-Relay, an Encharge and an AC battery, and an Enpower.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import Future

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.parser import text_string_to_metric_families

from envoy_exporter.collector import GatewayCollector
from envoy_exporter.collector.exposition import SnapshotCache
from envoy_exporter.snapshot.history import PowerHistory
from envoy_exporter.snapshot.model import (
    WH,
    Battery,
    Device,
    EndpointResult,
    Enpower,
    Flow,
    GatewayInfo,
    InverterReading,
    Latest,
    Meter,
    MeterChannel,
    MeterConfig,
    Reading,
    Relay,
    Snapshot,
    StorageAggregate,
)
from envoy_exporter.snapshot.outcome import Outcome

NOW = 1_750_000_000.0


def rich_snapshot(collected_at: float = NOW - 2.0) -> Snapshot:
    return Snapshot(
        collected_at=collected_at,
        info=GatewayInfo(
            serial="999012345678", firmware="D8.2.4345", part_number="800-00999-r01", metered=True
        ),
        production_source="meter",
        production=Flow(
            total=Reading(power_w=3000.0, lifetime_j=5000 * WH, today_j=12 * WH, last_seven_days_j=80 * WH),
            phases={
                "L1": Reading(power_w=1000.0, lifetime_j=1700 * WH),
                "L2": Reading(power_w=1001.0, lifetime_j=1650 * WH),
                "L3": Reading(power_w=999.0, lifetime_j=1650 * WH),
            },
        ),
        consumption_total=Flow(
            total=Reading(power_w=1200.0, lifetime_j=9000 * WH, today_j=7 * WH, last_seven_days_j=60 * WH),
            phases={"L1": Reading(power_w=400.0, lifetime_j=3000 * WH), "L2": Reading(power_w=800.0)},
        ),
        consumption_net=Flow(
            total=Reading(power_w=-1800.0, lifetime_j=-250 * WH),
            phases={"L1": Reading(power_w=-600.0, lifetime_j=-100 * WH)},
        ),
        meters=(
            Meter(
                config=MeterConfig(
                    eid=704643328,
                    measurement_type="production",
                    state="enabled",
                    phase_mode="three",
                    phase_count=3,
                    metering_status="normal",
                ),
                total=MeterChannel(
                    eid=704643328,
                    power_w=3000.0,
                    reactive_var=-150.0,
                    apparent_va=3100.0,
                    voltage_v=690.0,
                    delivered_j=5000 * WH,
                    received_j=3 * WH,
                ),
                phases={
                    "L1": MeterChannel(
                        eid=1778385169,
                        power_w=1000.0,
                        reactive_var=-50.0,
                        apparent_va=1030.0,
                        voltage_v=230.5,
                        current_a=4.4,
                        frequency_hz=50.01,
                        power_factor=0.97,
                        delivered_j=1700 * WH,
                        received_j=1 * WH,
                    ),
                },
            ),
            Meter(
                config=MeterConfig(
                    eid=704643584,
                    measurement_type="net-consumption",
                    state="enabled",
                    phase_mode="three",
                    phase_count=3,
                    metering_status="normal",
                ),
                total=MeterChannel(
                    eid=704643584, power_w=-1800.0, delivered_j=2000 * WH, received_j=2250 * WH
                ),
            ),
            Meter(
                config=MeterConfig(
                    eid=704643840,
                    measurement_type="storage",
                    state="disabled",
                    phase_mode=None,
                    phase_count=0,
                    metering_status=None,
                ),
                total=None,
            ),
        ),
        inverters=(
            InverterReading(
                serial="999100000001",
                power_w=250.0,
                max_power_w=290.0,
                last_report_s=NOW - 100,
                lifetime_j=400 * WH,
                today_j=1.5 * WH,
                dc_voltage_v=36.1,
                dc_current_a=7.2,
                ac_voltage_v=231.0,
                ac_current_a=1.1,
                ac_frequency_hz=50.0,
                temperature_c=41.0,
            ),
            InverterReading(serial="999100000002", power_w=0.0, max_power_w=288.0, last_report_s=NOW - 400),
        ),
        devices=(
            Device(
                serial="999100000001",
                device_type="PCU",
                part_number="800-01391-r03",
                firmware="520-00082-r01",
                producing=True,
                communicating=True,
                provisioned=True,
                operating=True,
            ),
            Device(serial="999200000001", device_type="NSRB", communicating=False),
        ),
        relays=(Relay(serial="999200000001", closed=True, lines_connected={"1": True, "2": False}),),
        batteries=(
            Battery(
                serial="999300000001",
                battery_type="encharge",
                soc_ratio=0.8,
                power_w=-500.0,
                capacity_j=3360 * WH,
                temperature_c=25.0,
            ),
            Battery(serial="999300000002", battery_type="acb", soc_ratio=0.25),
        ),
        storage=StorageAggregate(
            soc_ratio=0.7, available_j=2352 * WH, capacity_j=3360 * WH, reserve_ratio=0.3
        ),
        enpower=Enpower(serial="999400000001", grid_connected=True),
        endpoints={
            "production_json": EndpointResult(Outcome.OK),
            "meter_readings": EndpointResult(Outcome.CACHED),
            "inventory": EndpointResult(Outcome.BAD_DATA, detail="not JSON"),
            "production_html": EndpointResult(Outcome.UNSUPPORTED),
        },
    )


class FakeClient:
    """Stands in for ``GatewayClient``: each collection takes ``hold`` seconds (ended early by
    ``release``) on a worker thread of its own, whoever waits for it, and then shows ``snapshot``
    through ``latest``, exactly as the real client does: a caller that stops waiting gets
    nothing from a collection that is not done."""

    def __init__(
        self,
        name: str,
        snapshot: Snapshot | None = None,
        hold: float = 0.0,
        requests: dict[tuple[str, str], int] | None = None,
        token_expiry: float | None = None,
        auth_scheme: str | None = "token",
        last_duration: float | None = 0.25,
        fresh: bool | None = None,
        born: float = NOW - 60.0,
        credentials: dict[str, bool] | None = None,
    ):
        self.name = name
        self.credentials = credentials or {}
        self.history = PowerHistory()
        self.snapshot = snapshot if snapshot is not None else rich_snapshot()
        self.fresh = fresh  # None: fresh when the snapshot has production data
        self.hold = hold
        self.release = threading.Event()  # set it to end a hold-up early
        self._requests = requests or {}
        self.token_expiry = token_expiry
        self.auth_scheme = auth_scheme
        self.last_duration = last_duration
        self.calls = 0  # collections started
        self.firsts: list[bool] = []  # per start(): the start-up's collection?
        self.closed = False
        self._lock = threading.Lock()
        self._running: Future[Snapshot] | None = None
        self._latest = Latest(Snapshot(collected_at=born), fresh=False)

    def credentials_rejected(self) -> dict[str, bool]:
        return dict(self.credentials)

    def start(self, here: bool = False, *, first: bool = False) -> Future[Snapshot]:
        self.firsts.append(first)
        with self._lock:
            if self._running is not None:
                return self._running
            self.calls += 1
            future: Future[Snapshot] = Future()
            self._running = future
        threading.Thread(target=self._collect, args=(future,), daemon=True).start()
        return future

    def _collect(self, future: Future[Snapshot]) -> None:
        if self.hold:
            self.release.wait(self.hold)
        snapshot = self.snapshot
        fresh = snapshot.up if self.fresh is None else self.fresh
        self._latest = Latest(snapshot, fresh)
        with self._lock:
            self._running = None
        future.set_result(snapshot)

    def latest(self) -> Latest:
        return self._latest

    def reusable_for(self) -> float:
        return math.inf  # no cache: its snapshot stays until the next collection

    def requests(self) -> dict[tuple[str, str], int]:
        return dict(self._requests)

    def counter_corrections(self) -> dict[str, int]:
        return {"wrap": 1, "bogus": 0, "reset": 0, "jump": 0}

    def close(self) -> None:
        self.closed = True


def scrape(gateways: GatewayCollector, *own, content_type: str = CONTENT_TYPE_PLAIN_0_0_4) -> str:
    """The scrape as the web server serves it (``GatewayCollector.expose``), in the text format."""
    return gateways.expose(content_type, SnapshotCache(), own).decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Exposition text to {(sample name, label items): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def value(parsed: dict, name: str, **labels: str) -> float | None:
    return parsed.get((name, frozenset(labels.items())))
