"""``/admin/lib/tariff``: the tariff and, on gateways with batteries, the battery profile.

Only ``tariff.storage_settings`` is read: the profile in force (``mode``), the backup reserve and
very-low settings in percent, and whether the batteries may charge from the grid. Gateways without
batteries answer a tariff without ``storage_settings`` (5.0.62): that is a valid answer with
nothing in it, not an error.
"""

from __future__ import annotations

from typing import Any

from envoy_exporter.snapshot.model import StorageSettings
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers._json import as_bool, as_float, as_str, expect_dict, load_json


def parse_tariff(body: bytes) -> StorageSettings:
    data = expect_dict(load_json(body), "tariff")
    tariff = data.get("tariff")
    if tariff is None:
        raise ParseError("tariff answer has no 'tariff'")
    settings = expect_dict(tariff, "tariff.tariff").get("storage_settings")
    if settings is None:
        return StorageSettings()
    settings = expect_dict(settings, "storage_settings")
    return StorageSettings(
        # An empty mode says nothing; a label value "" would be a series of no mode.
        mode=as_str(settings.get("mode"), "storage_settings.mode") or None,
        reserve_ratio=_ratio(settings, "reserved_soc"),
        very_low_ratio=_ratio(settings, "very_low_soc"),
        charge_from_grid=as_bool(settings.get("charge_from_grid"), "storage_settings.charge_from_grid"),
    )


def _ratio(settings: dict[str, Any], key: str) -> float | None:
    percent = as_float(settings.get(key), f"storage_settings.{key}")
    if percent is None:
        return None
    if not 0.0 <= percent <= 100.0:
        raise ParseError(f"storage_settings.{key}: {percent} is not a percentage")
    return percent / 100.0
