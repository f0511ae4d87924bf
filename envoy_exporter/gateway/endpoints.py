"""The gateway endpoints the exporter reads, and what each one is for.

One row per endpoint: the key used in logs, metrics (``endpoint`` label) and the snapshot's
``endpoints`` map; the path; the cache family (see ``settings.DEFAULT_CACHE_TTL``); and whether
the gateway protects it on pre-token firmware (digest auth). On firmware >= 7 every endpoint
but ``/info`` needs the token.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    key: str
    path: str
    family: str  # cache family
    digest: bool  # protected by HTTP digest on firmware < 7


INFO = Endpoint("info", "/info", "info", digest=False)
PRODUCTION_JSON = Endpoint("production_json", "/production.json?details=1", "production", digest=False)
PRODUCTION_JSON_PLAIN = Endpoint("production_json", "/production.json", "production", digest=False)
PRODUCTION_HTML = Endpoint("production_html", "/production", "production", digest=False)
API_V1_PRODUCTION = Endpoint("api_v1_production", "/api/v1/production", "production", digest=False)
API_V1_INVERTERS = Endpoint("api_v1_inverters", "/api/v1/production/inverters", "inverters", digest=True)
DEVICE_DATA = Endpoint("device_data", "/ivp/pdm/device_data", "inverters", digest=True)
METERS = Endpoint("meters", "/ivp/meters", "meters", digest=True)
METER_READINGS = Endpoint("meter_readings", "/ivp/meters/readings", "readings", digest=True)
INVENTORY = Endpoint("inventory", "/inventory.json", "inventory", digest=True)
# Slow unless it lists a system controller (see ``plan.Plan.family``).
ENSEMBLE_INVENTORY = Endpoint("ensemble_inventory", "/ivp/ensemble/inventory", "inventory", digest=True)
ENSEMBLE_SECCTRL = Endpoint("ensemble_secctrl", "/ivp/ensemble/secctrl", "ensemble", digest=True)
ENSEMBLE_POWER = Endpoint("ensemble_power", "/ivp/ensemble/power", "ensemble", digest=True)
# Settings and status that change rarely: the slow ``settings`` cache family.
TARIFF = Endpoint("tariff", "/admin/lib/tariff", "settings", digest=True)
DRY_CONTACTS = Endpoint("dry_contacts", "/ivp/ensemble/dry_contacts", "settings", digest=True)
GENERATOR = Endpoint("generator", "/ivp/ensemble/generator", "settings", digest=True)
HOME = Endpoint("home", "/home.json", "settings", digest=False)

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
    GENERATOR,
    HOME,
)

BY_KEY: dict[str, Endpoint] = {e.key: e for e in (INFO, *DATA_ENDPOINTS)}
