"""What one collection asks a gateway, in which order, and how long each answer serves.

Pure: the plan judges each data endpoint from the firmware, from what this collection has read
so far, from the endpoints the gateway is known not to have, and from the production source the
assembler keeps. The client does the asking; the assembler only assembles. Conditions are judged
lazily, when an endpoint's turn comes, so each one sees what the earlier ones answered.

An answer is cached for its endpoint's family (``settings.DEFAULT_CACHE_TTL``), or a slower one
where it carries slow-moving data only (``family``): ``production.json`` on a CT system, where
``/ivp/meters/readings`` carries every power, and where ``/api/v1/production`` is the source
and there is no AC battery; the Ensemble inventory hourly where it lists no device at all (it is
on the inventory's 5 minutes where it lists batteries only: their powers and live states of
charge come from ``/ivp/ensemble/power``), and on the CT readings' cadence where it lists a system
controller or Meter Collar, whose relay state, the grid-outage signal, only it carries.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator

from envoy_exporter.gateway.endpoints import (
    API_V1_INVERTERS,
    API_V1_PRODUCTION,
    DEVICE_DATA,
    DRY_CONTACT_SETTINGS,
    DRY_CONTACTS,
    ENSEMBLE_INVENTORY,
    ENSEMBLE_POWER,
    ENSEMBLE_SECCTRL,
    GENERATOR,
    HOME,
    INFO,
    INVENTORY,
    METER_READINGS,
    METERS,
    PRODUCTION_HTML,
    PRODUCTION_JSON,
    TARIFF,
    Endpoint,
)
from envoy_exporter.snapshot.assemble import API_V1, LEGACY, METER, Assembler, v1_stalled
from envoy_exporter.snapshot.model import Ensemble, GatewayInfo, MeterConfig, ProductionJson, Readings

# The cache family of production.json where it adds only energy figures (lifetime, today, seven
# days) and the AC battery: see ``Plan.family``.
ENERGY = "energy"
# What the start-up's collection reads (after /info): the production and consumption series, and
# the meter configuration they depend on. Every other endpoint (inverters, inventories,
# batteries, settings) follows with the gateway's next collection, which a scrape that comes
# meanwhile waits for (``GatewayClient.start``): a fleet has its live data sooner, and no
# scrape is answered with less.
FIRST = frozenset(
    e.key for e in (METERS, PRODUCTION_JSON, API_V1_PRODUCTION, PRODUCTION_HTML, METER_READINGS)
)


class Plan:
    """The data endpoints of one collection (``/info`` comes before, from the client)."""

    def __init__(
        self,
        info: GatewayInfo,
        view: Callable[[], Readings],
        assembler: Assembler,
        unsupported: Container[str],
    ) -> None:
        self._info = info
        self._view = view  # the readings of the collection so far, frozen
        self._assembler = assembler
        self._unsupported = unsupported

    @property
    def _readings(self) -> Readings:
        return self._view()

    def endpoints(self) -> Iterator[Endpoint]:
        """The endpoints worth asking, in order; each judged after the earlier ones were read."""
        # The meter configuration first: it decides which production.json URL is worth asking.
        if self._info.metered is not False:
            yield METERS
        yield PRODUCTION_JSON
        if self.wants_v1_production():
            yield API_V1_PRODUCTION
        if self._wants_legacy_page():
            yield PRODUCTION_HTML
        if self._firmware_has(DEVICE_DATA):
            yield DEVICE_DATA
        if self._readings.device_data is None:
            yield API_V1_INVERTERS
        if any(m.enabled for m in self._readings.meters or ()):
            yield METER_READINGS
        yield INVENTORY
        if self._firmware_has(ENSEMBLE_INVENTORY):
            yield ENSEMBLE_INVENTORY
        if self._has_batteries():
            yield ENSEMBLE_SECCTRL
            yield ENSEMBLE_POWER
        # The slow-cache settings last: a gateway that stops answering costs them first.
        if self._firmware_has(TARIFF):
            yield TARIFF
        if self._firmware_has(HOME):
            yield HOME
        if self._has_controller():
            yield DRY_CONTACTS
            yield DRY_CONTACT_SETTINGS
            yield GENERATOR

    def _firmware_has(self, endpoint: Endpoint) -> bool:
        return self._info.version >= endpoint.since

    def wants_v1_production(self) -> bool:
        """``/api/v1/production`` is not worth asking while the CT is live (the meter wins), nor
        where it is known stalled or broken on this firmware; unless it is the source in use,
        or about to become it."""
        assembler, readings = self._assembler, self._readings
        if API_V1 in (assembler.source, assembler.candidate):
            return True
        if readings.production_ct is not None and assembler.source in (None, METER):
            return False
        return not assembler.v1_broken and not v1_stalled(self._info, readings.production_ct)

    def _wants_legacy_page(self) -> bool:
        """The HTML page only where production.json is not JSON and /api/v1/production has
        nothing (Envoy-C/R/LCD firmware 3)."""
        if PRODUCTION_JSON.key not in self._unsupported:
            return False
        return self._assembler.source == LEGACY or self._readings.api_v1_production is None

    def family(self, endpoint: Endpoint) -> str:
        """The cache family of the answer this collection just read from ``endpoint``."""
        pj, ensemble = self._readings.production_json, self._readings.ensemble_inventory
        if endpoint is PRODUCTION_JSON and pj is not None and self._energy_only(pj):
            return ENERGY
        if endpoint is ENSEMBLE_INVENTORY and ensemble == Ensemble():
            return INFO.family  # no Ensemble devices: they come with an installer, not a scrape
        if endpoint is ENSEMBLE_INVENTORY and ensemble is not None and ensemble.enpower is not None:
            # The system controller's or Meter Collar's relay state, the grid-outage signal, is
            # only here: read on every scrape, like the CT readings.
            return METER_READINGS.family
        return endpoint.family

    def _energy_only(self, production_json: ProductionJson) -> bool:
        """production.json adds no power the collection lacks: on a CT system whose meter readings
        carry the production and consumption powers (``assemble`` takes them from there while
        production.json comes from the cache), and where /api/v1/production is the production
        source and no AC battery reports through production.json."""
        if production_json.active_acb is not None:
            return False  # its power and state of charge are live figures
        meters = self._readings.meters or ()
        if self._readings.production_ct is not None:
            return METER_READINGS.key not in self._unsupported and _ct_carries_powers(production_json, meters)
        return self._assembler.source == API_V1

    def _has_batteries(self) -> bool:
        ensemble = self._readings.ensemble_inventory
        return ensemble is not None and bool(ensemble.batteries)

    def _has_controller(self) -> bool:
        """An IQ System Controller or Meter Collar: only they have dry contacts and a generator."""
        ensemble = self._readings.ensemble_inventory
        return ensemble is not None and ensemble.enpower is not None


def single_phase(configs: tuple[MeterConfig, ...]) -> bool:
    """Every enabled CT measures one phase (and there is at least one)."""
    enabled = [m for m in configs if m.enabled]
    return bool(enabled) and all(m.phase_count <= 1 for m in enabled)


def _ct_carries_powers(production_json: ProductionJson, meters: tuple[MeterConfig, ...]) -> bool:
    """An enabled production CT, and an enabled consumption CT wherever production.json has a
    live consumption section."""
    enabled = {m.measurement_type for m in meters if m.enabled}
    consumption = any(s.active_count > 0 for s in production_json.consumption)
    return "production" in enabled and (
        not consumption or bool(enabled & {"net-consumption", "total-consumption"})
    )
