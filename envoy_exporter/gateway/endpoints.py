"""The endpoint catalogue: one row per gateway endpoint, everything the exporter knows of it.

A row is the unit of an endpoint. Its ``key`` names it everywhere: in logs, in the ``endpoint``
label, in ``Snapshot.endpoints``, and as the field of ``model.Readings`` its parsed answer fills
(``Readings.with_answer``; tests/test_architecture.py checks that the field's type is the
parser's). The row also gives the path(s) asked, the pure parser, the cache family (see
``settings.DEFAULT_CACHE_TTL``), the first firmware that has it, whether the gateway protects it
with digest auth before firmware 7 (from 7 every endpoint but ``/info`` needs the token), the
largest answer read from it, and the series a failed answer costs. Which endpoints one
collection asks, and in which order, is ``snapshot/plan.py``. Adding an endpoint is one row
here, one parser, one ``Readings`` field, and tests.

The answer bounds are sized from real answers: at least 16 times the largest one seen from
any firmware (a real ``/info`` is 2.4 kB, the largest answer of all, ``/ivp/pdm/device_data``
for 16 devices, 31 kB), and, where an answer grows with the number of devices, room for 500
of them (about 2 kB each in device_data, 1.2 kB in the inventory, 180 bytes in the inverter
list). An answer past its bound costs that endpoint's part of the snapshot, nothing else, and
no gateway makes the exporter hold more than its largest bound at once (one request at a time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from envoy_exporter.snapshot.parsers.api_v1 import parse_v1_inverters, parse_v1_production
from envoy_exporter.snapshot.parsers.device_data import parse_device_data
from envoy_exporter.snapshot.parsers.ensemble import (
    parse_ensemble_inventory,
    parse_ensemble_power,
    parse_secctrl,
)
from envoy_exporter.snapshot.parsers.ensemble_relays import (
    parse_dry_contact_settings,
    parse_dry_contacts,
    parse_generator,
)
from envoy_exporter.snapshot.parsers.home import parse_home
from envoy_exporter.snapshot.parsers.info import parse_info
from envoy_exporter.snapshot.parsers.inventory import parse_inventory
from envoy_exporter.snapshot.parsers.meters import parse_meter_readings, parse_meters
from envoy_exporter.snapshot.parsers.production_html import parse_production_html
from envoy_exporter.snapshot.parsers.production_json import parse_production_json
from envoy_exporter.snapshot.parsers.tariff import parse_tariff

KIB = 1024
# What the transport reads at most from an answer not in this catalogue (a capture of a path
# this table does not list).
DEFAULT_MAX_BYTES = 1024 * KIB

T = TypeVar("T")


@dataclass(frozen=True)
class Endpoint(Generic[T]):
    key: str
    paths: tuple[str, ...]  # asked in turn where the first is missing (see the client)
    parse: Callable[[bytes], T]
    family: str  # cache family
    digest: bool  # protected by HTTP digest on firmware < 7
    left_out: str  # the series a failed answer costs, for the warning
    since: tuple[int, ...] = ()  # the first firmware version that has it
    max_bytes: int = 256 * KIB  # the largest answer read; see the module docstring
    title: str = ""  # what the log and the status page call it: words for a user, not the key

    @property
    def path(self) -> str:
        return self.paths[0]


INFO = Endpoint(
    "info",
    ("/info",),
    parse_info,
    "info",
    False,
    "nothing (the known gateway identity stays in use)",
    max_bytes=64 * KIB,
    title="gateway info",
)
# The plain URL where the details URL does not exist (see the client).
PRODUCTION_JSON = Endpoint(
    "production_json",
    ("/production.json?details=1", "/production.json"),
    parse_production_json,
    "production",
    False,
    "CT production, consumption, the inverters' total and AC battery storage",
    title="production and consumption",
)
PRODUCTION_HTML = Endpoint(
    "production_html",
    ("/production",),
    parse_production_html,
    "production",
    False,
    "production",
    title="production page",
)
API_V1_PRODUCTION = Endpoint(
    "api_v1_production",
    ("/api/v1/production",),
    parse_v1_production,
    "production",
    False,
    "production from the microinverters",
    max_bytes=16 * KIB,
    title="production",
)
API_V1_INVERTERS = Endpoint(
    "api_v1_inverters",
    ("/api/v1/production/inverters",),
    parse_v1_inverters,
    "inverters",
    True,
    "per-microinverter series",
    title="inverter list",
)
DEVICE_DATA = Endpoint(
    "device_data",
    ("/ivp/pdm/device_data",),
    parse_device_data,
    "inverters",
    True,
    "per-microinverter detail series",
    since=(8,),
    max_bytes=1024 * KIB,
    title="microinverter details",
)
METERS = Endpoint(
    "meters",
    ("/ivp/meters",),
    parse_meters,
    "meters",
    True,
    "CT meter series",
    max_bytes=64 * KIB,
    title="CT meter settings",
)
METER_READINGS = Endpoint(
    "meter_readings",
    ("/ivp/meters/readings",),
    parse_meter_readings,
    "readings",
    True,
    "CT meter values",
    max_bytes=512 * KIB,
    title="CT meter readings",
)
INVENTORY = Endpoint(
    "inventory",
    ("/inventory.json",),
    parse_inventory,
    "inventory",
    True,
    "device, relay and AC battery inventory series",
    max_bytes=1024 * KIB,
    title="device inventory",
)
# Ensemble (Encharge, Enpower) needs firmware 5 or later; so does the battery profile. The
# inventory is slow unless it lists a system controller (see ``plan.Plan.family``).
ENSEMBLE_INVENTORY = Endpoint(
    "ensemble_inventory",
    ("/ivp/ensemble/inventory",),
    parse_ensemble_inventory,
    "inventory",
    True,
    "battery and system controller series",
    since=(5,),
    title="battery inventory",
)
ENSEMBLE_SECCTRL = Endpoint(
    "ensemble_secctrl",
    ("/ivp/ensemble/secctrl",),
    parse_secctrl,
    "ensemble",
    True,
    "storage aggregate series",
    since=(5,),
    max_bytes=64 * KIB,
    title="system controller",
)
ENSEMBLE_POWER = Endpoint(
    "ensemble_power",
    ("/ivp/ensemble/power",),
    parse_ensemble_power,
    "ensemble",
    True,
    "battery power series",
    since=(5,),
    max_bytes=64 * KIB,
    title="battery power",
)
# Settings and status that change rarely: the slow ``settings`` cache family.
TARIFF = Endpoint(
    "tariff",
    ("/admin/lib/tariff",),
    parse_tariff,
    "settings",
    True,
    "storage mode and setting series",
    since=(5,),
    title="battery profile",
)
DRY_CONTACTS = Endpoint(
    "dry_contacts",
    ("/ivp/ensemble/dry_contacts",),
    parse_dry_contacts,
    "settings",
    True,
    "dry contact series",
    since=(5,),
    max_bytes=64 * KIB,
    title="dry contacts",
)
# How the dry contacts are set up: changed by an installer, read hourly like the meter configuration.
DRY_CONTACT_SETTINGS = Endpoint(
    "dry_contact_settings",
    ("/ivp/ss/dry_contact_settings",),
    parse_dry_contact_settings,
    "meters",
    True,
    "dry contact setting series",
    since=(5,),
    max_bytes=64 * KIB,
    title="dry contact settings",
)
GENERATOR = Endpoint(
    "generator",
    ("/ivp/ensemble/generator",),
    parse_generator,
    "settings",
    True,
    "generator series",
    since=(5,),
    max_bytes=64 * KIB,
    title="generator",
)
# JSON from firmware 4; the legacy Envoy's firmware 3 serves HTML pages.
HOME = Endpoint(
    "home",
    ("/home.json",),
    parse_home,
    "settings",
    False,
    "Enlighten and network interface series",
    since=(4,),
    max_bytes=64 * KIB,
    title="network status",
)

# Every endpoint, /info first, then in the order the plan may ask them.
CATALOGUE: tuple[Endpoint, ...] = (
    INFO,
    METERS,
    PRODUCTION_JSON,
    API_V1_PRODUCTION,
    PRODUCTION_HTML,
    DEVICE_DATA,
    API_V1_INVERTERS,
    METER_READINGS,
    INVENTORY,
    ENSEMBLE_INVENTORY,
    ENSEMBLE_SECCTRL,
    ENSEMBLE_POWER,
    TARIFF,
    HOME,
    DRY_CONTACTS,
    DRY_CONTACT_SETTINGS,
    GENERATOR,
)
BY_KEY: dict[str, Endpoint] = {e.key: e for e in CATALOGUE}


def max_bytes(key: str) -> int:
    """The largest answer read for the endpoint ``key``."""
    endpoint = BY_KEY.get(key)
    return endpoint.max_bytes if endpoint is not None else DEFAULT_MAX_BYTES
