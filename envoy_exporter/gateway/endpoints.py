"""The gateway endpoints the exporter reads, and what each one is for.

One row per endpoint: the key used in logs, metrics (``endpoint`` label) and the snapshot's
``endpoints`` map; the path; the cache family (see ``settings.DEFAULT_CACHE_TTL``); whether
the gateway protects it on pre-token firmware (digest auth); and the largest answer read from it.
On firmware >= 7 every endpoint but ``/info`` needs the token.

The answer bounds are sized from real answers: at least 16 times the largest one seen from
any firmware (a real ``/info`` is 2.4 kB, the largest answer of all, ``/ivp/pdm/device_data``
for 16 devices, 31 kB), and, where an answer grows with the number of devices, room for 500
of them (about 2 kB each in device_data, 1.2 kB in the inventory, 180 bytes in the inverter
list). An answer past its bound costs that endpoint's part of the snapshot, nothing else, and
no gateway makes the exporter hold more than its largest bound at once (one request at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
# What the transport reads at most from an answer not in this catalogue (a capture of a path
# this table does not list).
DEFAULT_MAX_BYTES = 1024 * KIB


@dataclass(frozen=True)
class Endpoint:
    key: str
    path: str
    family: str  # cache family
    digest: bool  # protected by HTTP digest on firmware < 7
    max_bytes: int = 256 * KIB  # the largest answer read; see the module docstring
    title: str = ""  # what the log and the status page call it: words for a user, not the key


INFO = Endpoint("info", "/info", "info", digest=False, max_bytes=64 * KIB, title="gateway info")
PRODUCTION_JSON = Endpoint(
    "production_json",
    "/production.json?details=1",
    "production",
    digest=False,
    title="production and consumption",
)
PRODUCTION_JSON_PLAIN = Endpoint(
    "production_json", "/production.json", "production", digest=False, title="production and consumption"
)
PRODUCTION_HTML = Endpoint(
    "production_html", "/production", "production", digest=False, title="production page"
)
API_V1_PRODUCTION = Endpoint(
    "api_v1_production",
    "/api/v1/production",
    "production",
    digest=False,
    max_bytes=16 * KIB,
    title="production",
)
API_V1_INVERTERS = Endpoint(
    "api_v1_inverters", "/api/v1/production/inverters", "inverters", digest=True, title="inverter list"
)
DEVICE_DATA = Endpoint(
    "device_data",
    "/ivp/pdm/device_data",
    "inverters",
    digest=True,
    max_bytes=1024 * KIB,
    title="microinverter details",
)
METERS = Endpoint(
    "meters", "/ivp/meters", "meters", digest=True, max_bytes=64 * KIB, title="CT meter settings"
)
METER_READINGS = Endpoint(
    "meter_readings",
    "/ivp/meters/readings",
    "readings",
    digest=True,
    max_bytes=512 * KIB,
    title="CT meter readings",
)
INVENTORY = Endpoint(
    "inventory", "/inventory.json", "inventory", digest=True, max_bytes=1024 * KIB, title="device inventory"
)
# Slow unless it lists a system controller (see ``plan.Plan.family``).
ENSEMBLE_INVENTORY = Endpoint(
    "ensemble_inventory", "/ivp/ensemble/inventory", "inventory", digest=True, title="battery inventory"
)
ENSEMBLE_SECCTRL = Endpoint(
    "ensemble_secctrl",
    "/ivp/ensemble/secctrl",
    "ensemble",
    digest=True,
    max_bytes=64 * KIB,
    title="system controller",
)
ENSEMBLE_POWER = Endpoint(
    "ensemble_power",
    "/ivp/ensemble/power",
    "ensemble",
    digest=True,
    max_bytes=64 * KIB,
    title="battery power",
)
# Settings and status that change rarely: the slow ``settings`` cache family.
TARIFF = Endpoint("tariff", "/admin/lib/tariff", "settings", digest=True, title="battery profile")
DRY_CONTACTS = Endpoint(
    "dry_contacts",
    "/ivp/ensemble/dry_contacts",
    "settings",
    digest=True,
    max_bytes=64 * KIB,
    title="dry contacts",
)
# How the dry contacts are set up: changed by an installer, read hourly like the meter configuration.
DRY_CONTACT_SETTINGS = Endpoint(
    "dry_contact_settings",
    "/ivp/ss/dry_contact_settings",
    "meters",
    digest=True,
    max_bytes=64 * KIB,
    title="dry contact settings",
)
GENERATOR = Endpoint(
    "generator", "/ivp/ensemble/generator", "settings", digest=True, max_bytes=64 * KIB, title="generator"
)
HOME = Endpoint("home", "/home.json", "settings", digest=False, max_bytes=64 * KIB, title="network status")

DATA_ENDPOINTS: tuple[Endpoint, ...] = (
    PRODUCTION_JSON,
    PRODUCTION_HTML,
    API_V1_PRODUCTION,
    API_V1_INVERTERS,
    DEVICE_DATA,
    METERS,
    METER_READINGS,
    INVENTORY,
    ENSEMBLE_INVENTORY,
    ENSEMBLE_SECCTRL,
    ENSEMBLE_POWER,
    TARIFF,
    DRY_CONTACTS,
    DRY_CONTACT_SETTINGS,
    GENERATOR,
    HOME,
)

BY_KEY: dict[str, Endpoint] = {e.key: e for e in (INFO, *DATA_ENDPOINTS)}


def max_bytes(key: str) -> int:
    """The largest answer read for the endpoint ``key``."""
    endpoint = BY_KEY.get(key)
    return endpoint.max_bytes if endpoint is not None else DEFAULT_MAX_BYTES
