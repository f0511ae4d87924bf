"""``gateway.client.GatewayClient`` against gateways played by requests-mock: detection per
generation, remembered 401/404, the hourly /info, re-detection on new firmware, cache lifetimes,
single-flight, stale data when the gateway is slow or down, and bad answers from every endpoint.

The bodies are this project's own, shaped after the real captures; serials are made up.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt
import pytest
import requests
import requests_mock
from conftest import Clocks

from envoy_exporter.config.settings import DEFAULT_CACHE_TTL, GatewaySettings, Secret
from envoy_exporter.gateway.client import GatewayClient
from envoy_exporter.gateway.endpoints import BY_KEY
from envoy_exporter.snapshot.model import WH, EndpointResult, Snapshot
from envoy_exporter.snapshot.outcome import Outcome

HOST = "http://envoy.test"
NO_CACHE = {family: 0.0 for family in DEFAULT_CACHE_TTL}


def info_xml(firmware: str, metered: bool | None = None, tokens: bool | None = None) -> str:
    imeter = "" if metered is None else f"<imeter>{str(metered).lower()}</imeter>"
    web_tokens = "" if tokens is None else f"<web-tokens>{str(tokens).lower()}</web-tokens>"
    return (
        "<?xml version='1.0' encoding='UTF-8'?><envoy_info><time>1750000000</time><device>"
        f"<sn>900000000001</sn><pn>800-00000-r01</pn><software>{firmware}</software>{imeter}"
        f"</device>{web_tokens}<package name='app'><pn>500-00002-r01</pn></package></envoy_info>"
    )


def eim(kind: str, watts: float, lifetime_wh: float, lines: int = 0) -> dict:
    section = {
        "type": "eim",
        "activeCount": 1,
        "measurementType": kind,
        "readingTime": 1750000000,
        "wNow": watts,
        "whLifetime": lifetime_wh,
        "whToday": 1200.0,
        "whLastSevenDays": 9000.0,
        "rmsVoltage": 240.5,
        "rmsCurrent": 2.1,
    }
    if lines:
        section["lines"] = [
            {"wNow": watts / lines, "whLifetime": lifetime_wh / lines, "rmsVoltage": 120.2}
            for _ in range(lines)
        ]
    return section


INVERTERS_SECTION = {
    "type": "inverters",
    "activeCount": 2,
    "readingTime": 1750000000,
    "wNow": 480,
    "whLifetime": 174174,
}
ACB_IDLE = {"type": "acb", "activeCount": 0, "readingTime": 0, "wNow": 0, "whNow": 0, "state": "idle"}
PRODUCTION_STANDARD = {"production": [INVERTERS_SECTION], "storage": [ACB_IDLE]}
PRODUCTION_METERED = {
    "production": [INVERTERS_SECTION, eim("production", 500.0, 2_000_000.0, lines=2)],
    "consumption": [
        eim("total-consumption", 800.0, 5_000_000.0, 2),
        eim("net-consumption", 300.0, 3_000_000.0, 2),
    ],
    "storage": [ACB_IDLE],
}
V1_PRODUCTION = {
    "wattHoursToday": 3000,
    "wattHoursSevenDays": 20000,
    "wattHoursLifetime": 6139406,
    "wattsNow": 481,
}
V1_INVERTERS = [
    {
        "serialNumber": f"90000000020{n}",
        "lastReportDate": 1750000000,
        "devType": 1,
        "lastReportWatts": 240,
        "maxReportWatts": 300,
    }
    for n in (1, 2)
]
METERS = [
    {
        "eid": eid,
        "state": "enabled",
        "measurementType": kind,
        "phaseMode": "split",
        "phaseCount": 2,
        "meteringStatus": "normal",
        "statusFlags": [],
    }
    for eid, kind in ((704643328, "production"), (704643584, "net-consumption"))
]


def channel(eid: int, watts: float) -> dict:
    return {
        "eid": eid,
        "timestamp": 1750000000,
        "actEnergyDlvd": 1000.0,
        "actEnergyRcvd": 10.0,
        "activePower": watts,
        "apparentPower": abs(watts),
        "reactivePower": 0.0,
        "pwrFactor": 1.0,
        "voltage": 120.1,
        "current": 2.0,
        "freq": 60.0,
    }


READINGS = [
    {
        **channel(eid, watts),
        "channels": [
            channel(eid + 1, watts / 2),
            channel(eid + 2, watts / 2),
            channel(eid + 3, 0.0)
            | {
                "voltage": 0.0,
                "current": 0.0,
                "actEnergyDlvd": 0.0,
                "actEnergyRcvd": 0.0,
                "apparentPower": 0.0,
                "pwrFactor": 0.0,
            },
        ],
    }
    for eid, watts in ((704643328, 498.0), (704643584, 301.0))
]
DEVICE = {
    "part_num": "800-01391-r02",
    "img_pnum_running": "520-00082-r01",
    "producing": True,
    "communicating": True,
    "provisioned": True,
    "operating": True,
    "admin_state": 1,
}
INVENTORY = [
    {"type": "PCU", "devices": [{"serial_num": "900000000201", **DEVICE}]},
    {
        "type": "NSRB",
        "devices": [{"serial_num": "900000000301", **DEVICE, "relay": "closed", "line1-connected": True}],
    },
]
ENSEMBLE_INVENTORY = [
    {
        "type": "ENCHARGE",
        "devices": [
            {
                "serial_num": "900000000601",
                "percentFull": 80,
                "encharge_capacity": 3360,
                "temperature": 25,
                "communicating": True,
            }
        ],
    },
    {
        "type": "ENPOWER",
        "devices": [
            {
                "serial_num": "900000000602",
                "mains_oper_state": "closed",
                "Enpwr_grid_mode": "multimode-ongrid",
                "temperature": 79,
            }
        ],
    },
]
TARIFF = {
    "tariff": {
        "currency": {"code": "EUR"},
        "storage_settings": {
            "mode": "economy",
            "reserved_soc": 25.0,
            "very_low_soc": 8,
            "charge_from_grid": True,
        },
    }
}
HOME = {
    "network": {
        "web_comm": True,
        "last_enlighten_report_time": 1749999700,
        "interfaces": [
            {
                "type": "wifi",
                "interface": "wlan0",
                "carrier": True,
                "signal_strength": 3,
                "signal_strength_max": 5,
            }
        ],
    }
}
DRY_CONTACT_SETTINGS = {
    "dry_contacts": [{"id": "NC1", "type": "LOAD", "mode": "soc", "soc_low": 25.0, "soc_high": 50.0}]
}
DRY_CONTACTS = {"dry_contacts": [{"id": "NC1", "status": "closed"}, {"id": "NO1", "status": "open"}]}
GENERATOR = {"admin_state": "on", "oper_state": "close", "present": 1, "type": 1}
SECCTRL = {
    "agg_soc": 80,
    "Max_energy": 3360,
    "ENC_agg_soc": 80,
    "ENC_agg_avail_energy": 2688,
    "Enc_max_available_capacity": 3360,
    "adjusted_backup_soc": 20,
}
ENSEMBLE_POWER = {
    "devices:": [
        {"serial_num": "900000000601", "real_power_mw": -250000, "apparent_power_mva": 250000, "soc": 81}
    ]
}
DEVICE_DATA = {
    "1": {
        "devName": "pcu",
        "sn": "900000000201",
        "active": True,
        "channels": [
            {
                "watts": {"now": 241, "max": 300},
                "wattHours": {"today": 900},
                "lastReading": {
                    "endDate": 1750000000,
                    "dcVoltageINmV": 32000,
                    "dcCurrentINmA": 7500,
                    "channelTemp": 38,
                },
                "lifetime": {"joulesProduced": 3.6e9},
            }
        ],
    },
    "deviceCount": 1,
    "deviceDataLimit": 50,
}
LEGACY_PAGE = (
    "<html><head><title>Envoy</title><link rel='stylesheet' href='/css/style.css'></head><body>"
    "<div id='header'><a href='/home'>Home</a> <a href='/production'>Production</a></div>"
    "<h1>System Statistics</h1><table><tr><td>Currently</td><td>6.63 kW</td></tr>"
    "<tr><td>Today</td><td>53.6 kWh</td></tr><tr><td>Past Week</td><td>405 kWh</td></tr>"
    "<tr><td>Since Installation</td><td>133 MWh</td></tr></table></body></html>"
)
LOGIN_PAGE = "<!DOCTYPE html><html><head><title>Envoy</title></head><body>Log in</body></html>"


def body(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# Each generation: path -> body; anything else answers 404.
LEGACY = {
    "/info": info_xml("D3.7.0"),
    "/production.json?details=1": LOGIN_PAGE,
    "/production.json": LOGIN_PAGE,
    "/production": LEGACY_PAGE,
}
STANDARD = {
    "/info": info_xml("D5.0.62", metered=False),
    "/production.json?details=1": PRODUCTION_STANDARD,
    "/api/v1/production": V1_PRODUCTION,
    "/api/v1/production/inverters": V1_INVERTERS,
    "/inventory.json": INVENTORY,
    "/ivp/ensemble/inventory": [],
}
METERED = {
    "/info": info_xml("D5.0.62", metered=True),
    "/production.json?details=1": PRODUCTION_METERED,
    "/production.json": PRODUCTION_METERED,
    "/api/v1/production": V1_PRODUCTION,
    "/api/v1/production/inverters": V1_INVERTERS,
    "/ivp/meters": METERS,
    "/ivp/meters/readings": READINGS,
    "/inventory.json": INVENTORY,
    "/ivp/ensemble/inventory": ENSEMBLE_INVENTORY,
    "/ivp/ensemble/secctrl": SECCTRL,
    "/ivp/ensemble/power": ENSEMBLE_POWER,
    "/admin/lib/tariff": TARIFF,
    "/home.json": HOME,
    "/ivp/ensemble/dry_contacts": DRY_CONTACTS,
    "/ivp/ss/dry_contact_settings": DRY_CONTACT_SETTINGS,
    "/ivp/ensemble/generator": GENERATOR,
}
TOKEN_ERA = {
    **METERED,
    "/info": info_xml("D8.2.4345", metered=True, tokens=True),
    "/ivp/pdm/device_data": DEVICE_DATA,
    "/auth/check_jwt": "<!DOCTYPE html><h2>Valid token.</h2>",
}


@dataclass
class Gateway:
    """A requests-mock gateway: ``routes`` (path -> body or requests-mock kwargs) are served,
    every other path answers 404; ``asked`` lists the paths requested since the last call."""

    mock: requests_mock.Mocker
    routes: dict[str, object]
    seen: int = 0

    def install(self) -> None:
        self.mock.get(requests_mock.ANY, status_code=404, json={"error": "404 - Not Found"})
        for path, answer in self.routes.items():
            self.set(path, answer)

    def set(self, path: str, answer: object) -> None:
        """Serve ``answer`` at ``path`` from now on (requests-mock tries the newest match first)."""
        self.routes[path] = answer
        kwargs = answer if isinstance(answer, dict) and answer.get("__mock__") else {"text": body(answer)}
        self.mock.get(HOST + path, complete_qs=True, **{k: v for k, v in kwargs.items() if k != "__mock__"})

    def asked(self) -> list[str]:
        history = self.mock.request_history[self.seen :]
        self.seen = len(self.mock.request_history)
        return [r.url.removeprefix(HOST) for r in history]


def mocked(**kwargs: object) -> dict:
    """A requests-mock answer other than a 200 with a body: status_code=..., exc=..., text=..."""
    return {"__mock__": True, **kwargs}


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def gateway():
    with requests_mock.Mocker() as m:

        def make(routes: dict[str, object]) -> Gateway:
            gw = Gateway(m, dict(routes))
            gw.install()
            return gw

        yield make


def token_for(clocks: Clocks) -> str:
    return jwt.encode(
        {"exp": int(clocks.wall) + 365 * 86400, "iat": int(clocks.wall)}, "k" * 32, algorithm="HS256"
    )


def client_for(
    clocks: Clocks, ttl: dict[str, float] | None = None, token: str | None = None
) -> GatewayClient:
    settings = GatewaySettings(
        name=None,
        host=HOST,
        token=Secret(token) if token else None,
        cache_ttl=dict(DEFAULT_CACHE_TTL if ttl is None else ttl),
        timeout=2.0,
    )
    return GatewayClient(settings, None, clock=clocks.clock, wall=clocks.now)


# --------------------------------------------------------------------------------------------
# Detection per generation


def test_legacy_envoy_uses_the_html_page(gateway, clocks) -> None:
    gw = gateway(LEGACY)
    client = client_for(clocks)
    snap = client.collect(timeout=5)
    assert snap.production_source == "legacy"
    assert snap.production.total.power_w == 6630.0
    assert snap.production.total.lifetime_j == 133_000_000 * WH
    assert gw.asked() == [
        "/info",
        "/ivp/meters",
        "/production.json?details=1",  # its HTML page: the plain URL would serve it again
        "/api/v1/production",
        "/production",
        "/api/v1/production/inverters",
        "/inventory.json",
    ]
    assert snap.endpoints["api_v1_production"].outcome is Outcome.UNSUPPORTED
    assert client.name == "900000000001"  # no name configured: the serial
    assert client.auth_scheme == "digest"
    clocks.advance(11)
    snap = client.collect(timeout=5)
    assert gw.asked() == ["/production"]
    assert snap.endpoints["production_json"].outcome is Outcome.UNSUPPORTED


def test_standard_gateway_takes_the_unwrapped_v1_lifetime(gateway, clocks) -> None:
    gw = gateway(STANDARD)
    client = client_for(clocks)
    snap = client.collect(timeout=5)
    assert snap.production_source == "inverters"
    assert snap.production.total.lifetime_j == 6_139_406 * WH
    assert [i.serial for i in snap.inverters] == ["900000000201", "900000000202"]
    assert [d.serial for d in snap.devices] == ["900000000201", "900000000301"]
    assert snap.relays[0].closed is True
    asked = gw.asked()
    assert "/ivp/meters" not in asked  # imeter false: no CTs to ask about
    assert "/ivp/ensemble/secctrl" not in asked  # no batteries in the Ensemble inventory
    clocks.advance(11)
    client.collect(timeout=5)
    # production.json again: the first answer came before /api/v1/production was the source
    assert gw.asked() == ["/production.json?details=1", "/api/v1/production"]
    clocks.advance(50)
    client.collect(timeout=5)
    # /api/v1/production is the source and there is no AC battery: production.json adds nothing
    # a scrape needs, and is read on the slow "energy" cadence, as the inverters are on theirs.
    assert gw.asked() == ["/api/v1/production"]
    clocks.advance(250)
    client.collect(timeout=5)
    assert gw.asked() == ["/api/v1/production", "/api/v1/production/inverters", "/inventory.json"]
    clocks.advance(600)
    client.collect(timeout=5)
    assert "/production.json?details=1" in gw.asked()  # 911 s: the energy cadence (900 s)


def test_metered_gateway_with_cts(gateway, clocks) -> None:
    gw = gateway(METERED)
    snap = client_for(clocks).collect(timeout=5)
    assert snap.production_source == "meter"
    assert snap.production.total.power_w == 500.0
    assert list(snap.production.phases) == ["L1", "L2"]
    assert snap.consumption_total.total.power_w == 800.0
    assert snap.consumption_net.total.lifetime_j == 3_000_000.0 * WH
    assert [m.config.measurement_type for m in snap.meters] == ["production", "net-consumption"]
    assert list(snap.meters[0].phases) == ["L1", "L2"]
    (battery,) = snap.batteries
    assert (battery.soc_ratio, battery.power_w, battery.capacity_j) == (0.81, -250.0, 3360 * WH)
    assert snap.storage.capacity_j == 3360 * WH
    assert snap.enpower.grid_connected is True
    asked = gw.asked()
    assert "/api/v1/production" not in asked  # the live CT makes it useless
    assert "/ivp/ensemble/power" in asked


def test_metered_gateway_with_cts_asks_for_the_phase_details(gateway, clocks) -> None:
    gw = gateway(METERED)
    client_for(clocks).collect(timeout=5)
    asked = gw.asked()
    assert asked[:3] == ["/info", "/ivp/meters", "/production.json?details=1"]
    assert "/production.json" not in asked


def test_single_phase_cts_get_the_plain_production_json(gateway, clocks) -> None:
    """One phase: ?details=1 would only repeat the totals in one line, at the gateway's cost."""
    single = [{**meter, "phaseMode": "single", "phaseCount": 1} for meter in METERS]
    gw = gateway({**METERED, "/ivp/meters": single})
    snap = client_for(clocks).collect(timeout=5)
    asked = gw.asked()
    assert asked[:3] == ["/info", "/ivp/meters", "/production.json"]
    assert "/production.json?details=1" not in asked
    assert snap.production_source == "meter"
    assert snap.production.total.power_w == 500.0


def test_token_era_gateway(gateway, clocks) -> None:
    gw = gateway(TOKEN_ERA)
    token = token_for(clocks)
    client = client_for(clocks, token=token)
    snap = client.collect(timeout=5)
    assert client.auth_scheme == "token"
    assert client.token_expiry == jwt.decode(token, options={"verify_signature": False})["exp"]
    assert snap.production_source == "meter"
    (inverter,) = snap.inverters
    assert inverter.dc_voltage_v == 32.0
    history = gw.mock.request_history
    assert all(r.headers.get("Authorization") == f"Bearer {token}" for r in history if r.path != "/info")
    asked = gw.asked()
    # No check_jwt first: the first answer that needs the token proves it.
    assert "/auth/check_jwt" not in asked and "/ivp/pdm/device_data" in asked
    assert "/api/v1/production/inverters" not in asked  # device_data has them all
    assert client.requests()[("production_json", "200")] == 1


# --------------------------------------------------------------------------------------------
# 401 and 404


def test_404_is_not_on_this_gateway_from_the_first_collection_and_not_asked_again(gateway, clocks) -> None:
    gw = gateway({k: v for k, v in STANDARD.items() if k != "/inventory.json"})
    client = client_for(clocks, ttl=NO_CACHE)
    snap = client.collect(timeout=5)
    assert snap.endpoints["inventory"].outcome is Outcome.UNSUPPORTED
    assert "404" in str(snap.endpoints["inventory"].detail)
    assert "/inventory.json" in gw.asked()
    snap = client.collect(timeout=5)
    assert "/inventory.json" not in gw.asked()
    assert snap.endpoints["inventory"].outcome is Outcome.UNSUPPORTED
    assert client.requests()[("inventory", "404")] == 1


def test_401_beside_an_accepted_token_is_remembered_until_the_next_info(gateway, clocks) -> None:
    gw = gateway({**TOKEN_ERA, "/inventory.json": mocked(status_code=401, json={"status": 401})})
    client = client_for(clocks, token=token_for(clocks))
    snap = client.collect(timeout=5)
    assert snap.endpoints["inventory"].outcome is Outcome.UNSUPPORTED
    assert "/inventory.json" in gw.asked()
    clocks.advance(301)
    snap = client.collect(timeout=5)
    assert "/inventory.json" not in gw.asked()
    assert snap.endpoints["inventory"].outcome is Outcome.UNSUPPORTED
    clocks.advance(3600)
    client.collect(timeout=5)
    assert "/inventory.json" in gw.asked()


def test_401_everywhere_is_the_token_and_is_asked_again(gateway, clocks, caplog) -> None:
    refused = mocked(status_code=401, json={"status": 401, "info": "Authentication required"})
    gw = gateway({path: (answer if path == "/info" else refused) for path, answer in TOKEN_ERA.items()})
    client = client_for(clocks, ttl=NO_CACHE, token=token_for(clocks))
    with caplog.at_level(logging.WARNING):
        snap = client.collect(timeout=5)
    assert snap.endpoints["production_json"].outcome is Outcome.WITHHELD
    assert "rejected the token" in (snap.endpoints["production_json"].detail or "")
    assert not snap.up
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "http://envoy.test: the gateway rejected the token; Enlighten credentials would allow "
        "fetching a new one; next attempt in 60 s"
    ]
    gw.asked()
    client.collect(timeout=5)  # within the back-off window: only /info (not cached here) is asked
    assert gw.asked() == ["/info"]
    clocks.advance(61)
    client.collect(timeout=5)  # the window has passed: one request, and the token is still refused
    assert gw.asked() == ["/info", "/ivp/meters"]


def test_digest_401_is_remembered_until_the_next_info(gateway, clocks) -> None:
    gw = gateway({**METERED, "/ivp/meters": mocked(status_code=401, text="Error: 401")})
    client = client_for(clocks)
    assert client.collect(timeout=5).meters == ()
    gw.asked()
    clocks.advance(301)
    client.collect(timeout=5)
    assert "/ivp/meters" not in gw.asked()
    clocks.advance(3600)
    client.collect(timeout=5)
    assert "/ivp/meters" in gw.asked()


# --------------------------------------------------------------------------------------------
# /info and firmware changes


def test_info_is_read_again_after_an_hour(gateway, clocks) -> None:
    gw = gateway(STANDARD)
    client = client_for(clocks)
    client.collect(timeout=5)
    gw.asked()
    clocks.advance(3598)  # an hour, less the jitter a scrape interval may have (gateway.cache)
    client.collect(timeout=5)
    assert "/info" not in gw.asked()
    clocks.advance(2)
    client.collect(timeout=5)
    assert gw.asked()[0] == "/info"


def test_new_firmware_means_detecting_again(gateway, clocks, caplog) -> None:
    gw = gateway({k: v for k, v in STANDARD.items() if k != "/inventory.json"})
    client = client_for(clocks)
    assert client.collect(timeout=5).devices == ()
    assert "/inventory.json" in gw.asked()
    clocks.advance(3601)
    client.collect(timeout=5)  # same firmware: the 404 stays remembered
    assert "/inventory.json" not in gw.asked()
    gw.set("/inventory.json", INVENTORY)
    gw.set("/info", info_xml("D5.0.63", metered=False))
    clocks.advance(3601)
    with caplog.at_level(logging.INFO):
        snap = client.collect(timeout=5)
    assert "/inventory.json" in gw.asked()
    assert len(snap.devices) == 2
    assert snap.info.firmware == "D5.0.63"
    assert any("firmware changed from D5.0.62 to D5.0.63" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------------------------
# Cache lifetimes


def test_each_endpoint_is_asked_once_per_its_familys_ttl(gateway, clocks) -> None:
    gw = gateway(METERED)
    client = client_for(clocks)
    fresh = client.collect(timeout=5)
    first = gw.asked()
    assert len(first) == 14  # the dry contacts settings too (a system controller)
    clocks.advance(1)
    snap = client.collect(timeout=5)
    assert gw.asked() == []
    # Nothing asked, nothing new: the very same snapshot (the exposition rendered for it already)
    assert snap is fresh and snap.up and client.latest().fresh
    steps = []
    for seconds in (5, 5, 25, 265, 600):
        clocks.advance(seconds)
        client.collect(timeout=5)
        steps.append(gw.asked())
    # The Ensemble inventory lists a system controller: its relay state (the grid) on every scrape
    grid = ["/ivp/meters/readings", "/ivp/ensemble/inventory"]
    assert steps == [
        grid,  # 6 s: readings (5 s)
        # 11 s: production.json is on the "energy" cadence: the CT readings carry every power
        grid,
        # 36 s: the battery powers and the storage aggregate (30 s)
        [*grid, "/ivp/ensemble/secctrl", "/ivp/ensemble/power"],
        # 301 s: the inverters and /inventory.json (300 s); not the meter configuration (an hour)
        [
            "/api/v1/production/inverters",
            "/ivp/meters/readings",
            "/inventory.json",
            "/ivp/ensemble/inventory",
            "/ivp/ensemble/secctrl",
            "/ivp/ensemble/power",
        ],
        # 901 s: production.json's energy figures and the settings (900 s)
        [
            "/production.json?details=1",
            "/api/v1/production/inverters",
            "/ivp/meters/readings",
            "/inventory.json",
            "/ivp/ensemble/inventory",
            "/ivp/ensemble/secctrl",
            "/ivp/ensemble/power",
            "/admin/lib/tariff",
            "/home.json",
            "/ivp/ensemble/dry_contacts",
            "/ivp/ensemble/generator",
        ],
    ]
    assert {
        "/admin/lib/tariff",
        "/home.json",
        "/ivp/ensemble/dry_contacts",
        "/ivp/ensemble/generator",
    } <= set(steps[-1])


def test_a_scrape_collects_on_its_own_thread_only_while_the_cache_can_answer(gateway, clocks) -> None:
    # Where the last collection shows that the cache cannot answer (an entry it read expired, or
    # a family it read is not cached at all), the scrape's collection goes to a worker at once,
    # without a first attempt on the scrape's thread that would stop at the first request.
    gw = gateway(METERED)
    client = client_for(clocks)
    client.collect(timeout=5)
    gw.asked()
    threads: list[threading.Thread] = []
    collect = client._collect

    def spy(run):
        threads.append(threading.current_thread())
        return collect(run)

    client._collect = spy
    clocks.advance(1)
    assert client.start(here=True).result(5).up
    assert threads == [threading.current_thread()] and gw.asked() == []
    threads.clear()
    clocks.advance(5)  # the CT readings (5 s) expired
    assert client.start(here=True).result(5).up
    assert len(threads) == 1 and threads[0] is not threading.current_thread()
    assert gw.asked() == ["/ivp/meters/readings", "/ivp/ensemble/inventory"]
    uncached = client_for(clocks, ttl=NO_CACHE)
    uncached.collect(timeout=5)
    uncached._collect = spy
    threads.clear()
    assert uncached.start(here=True).result(5).up
    assert len(threads) == 1 and threads[0] is not threading.current_thread()


def test_a_snapshot_is_reusable_while_the_cache_holds_all_its_collection_read(gateway, clocks) -> None:
    # What the rendered series of a snapshot are kept for (``exposition.SnapshotCache``): a
    # scrape within that time gets the same snapshot, a scrape after it a new one.
    gateway(METERED)
    client = client_for(clocks)
    first = client.collect(timeout=5)
    clocks.advance(2)
    assert client.reusable_for() == pytest.approx(5.0 - 0.05 - 2.0)  # the CT readings, less jitter
    assert client.collect(timeout=5) is first
    clocks.advance(3)
    assert client.reusable_for() == 0.0
    assert client.collect(timeout=5) is not first
    uncached = client_for(clocks, ttl=NO_CACHE)
    uncached.collect(timeout=5)
    assert uncached.reusable_for() == 0.0


def test_ttl_zero_disables_the_cache(gateway, clocks) -> None:
    gw = gateway(METERED)
    client = client_for(clocks, ttl=NO_CACHE)
    client.collect(timeout=5)
    first = gw.asked()
    client.collect(timeout=5)
    assert gw.asked() == first


def test_a_settings_page_that_is_not_json_is_not_asked_on_every_scrape(gateway, clocks, caplog) -> None:
    # Some firmware answers an HTML page with status 200 where the tariff belongs (3.18 does).
    gw = gateway({**METERED, "/admin/lib/tariff": LOGIN_PAGE})
    client = client_for(clocks)
    with caplog.at_level(logging.WARNING):
        snap = client.collect(timeout=5)
    assert "/admin/lib/tariff" in gw.asked() and snap.endpoints["tariff"].outcome is Outcome.UNSUPPORTED
    for _ in range(3):
        clocks.advance(15)  # scrapes, all before the next /info
        snap = client.collect(timeout=5)
        assert "/admin/lib/tariff" not in gw.asked()
    assert snap.endpoints["tariff"].outcome is Outcome.UNSUPPORTED and snap.storage_settings is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("the battery profile failed" in w for w in warnings) == 1


def test_dry_contacts_and_generator_only_with_a_system_controller(gateway, clocks) -> None:
    without = [group for group in ENSEMBLE_INVENTORY if group["type"] != "ENPOWER"]
    gw = gateway({**METERED, "/ivp/ensemble/inventory": without})
    snap = client_for(clocks).collect(timeout=5)
    asked = gw.asked()
    assert "/ivp/ensemble/dry_contacts" not in asked and "/ivp/ensemble/generator" not in asked
    assert "/admin/lib/tariff" in asked and "/home.json" in asked
    assert snap.dry_contacts == () and snap.generator is None


def test_an_empty_ensemble_inventory_is_asked_again_with_info(gateway, clocks) -> None:
    # No Ensemble devices: they come with an installer, not between two scrapes.
    gw = gateway(STANDARD)
    client = client_for(clocks)
    client.collect(timeout=5)
    gw.asked()
    clocks.advance(301)
    client.collect(timeout=5)
    assert "/ivp/ensemble/inventory" not in gw.asked()
    clocks.advance(3300)
    client.collect(timeout=5)
    asked = gw.asked()
    assert asked[0] == "/info" and "/ivp/ensemble/inventory" in asked


# --------------------------------------------------------------------------------------------
# The start-up collection: the production and consumption series first


# What a scrape of the token-era gateway serves from a whole collection, beyond production.
def whole(snap: Snapshot) -> tuple:
    return (
        len(snap.inverters),
        len(snap.batteries),
        snap.storage_settings is not None,
        len(snap.dry_contacts),
        snap.generator is not None,
        snap.home is not None,
    )


WHOLE = (1, 1, True, 2, True, True)
START_UP = ["/info", "/ivp/meters", "/production.json?details=1", "/ivp/meters/readings"]


def held(answer: object) -> tuple[dict, threading.Event, threading.Event]:
    """An answer that waits for ``release``; ``entered`` is set when the request arrives."""
    entered, release = threading.Event(), threading.Event()

    def reply(request, context) -> str:
        entered.set()
        release.wait(5)
        return body(answer)

    return mocked(text=reply), entered, release


def test_the_start_up_collection_reads_production_and_consumption_and_the_next_one_the_rest(
    gateway, clocks
) -> None:
    gw = gateway(TOKEN_ERA)
    client = client_for(clocks, token=token_for(clocks))
    first = client.start(first=True).result(5)
    assert gw.asked() == START_UP
    assert first.up and first.production.total.power_w == 500.0
    assert first.consumption_total.total.power_w == 800.0
    assert "inventory" not in first.endpoints  # not asked yet: not an error either
    assert first.partial  # the status page says what is not read yet
    clocks.advance(1)
    snap = client.collect(timeout=5)
    assert not snap.partial
    rest = gw.asked()
    assert rest == [
        "/ivp/pdm/device_data",
        "/inventory.json",
        "/ivp/ensemble/inventory",
        "/ivp/ensemble/secctrl",
        "/ivp/ensemble/power",
        "/admin/lib/tariff",
        "/home.json",
        "/ivp/ensemble/dry_contacts",
        "/ivp/ss/dry_contact_settings",
        "/ivp/ensemble/generator",
    ]
    assert not set(rest) & set(START_UP)  # nothing asked twice: the start-up's answers are cached
    assert whole(snap) == WHOLE


def test_a_scrape_during_the_start_up_collection_waits_for_a_whole_one(gateway, clocks) -> None:
    answer, entered, release = held(READINGS)
    gw = gateway({**TOKEN_ERA, "/ivp/meters/readings": answer})
    client = client_for(clocks, token=token_for(clocks))
    first = client.start(first=True)
    assert entered.wait(5)  # the start-up collection has left the inverters out already
    scrape = client.start()
    assert scrape is not first
    release.set()
    assert whole(scrape.result(5)) == WHOLE
    assert whole(first.result(5)) == (0, 0, False, 0, False, False)
    asked = gw.asked()
    assert asked[: len(START_UP)] == START_UP and len(asked) == len(set(asked)) == 14


def test_a_scrape_that_comes_before_the_start_up_collection_left_anything_out_shares_it(
    gateway, clocks
) -> None:
    answer, entered, release = held(METERS)
    gw = gateway({**TOKEN_ERA, "/ivp/meters": answer})
    client = client_for(clocks, token=token_for(clocks))
    first = client.start(first=True)
    assert entered.wait(5)
    assert client.start() is first  # one collection, now a whole one
    release.set()
    assert whole(first.result(5)) == WHOLE
    asked = gw.asked()
    assert len(asked) == len(set(asked)) == 14


# --------------------------------------------------------------------------------------------
# Single-flight and deadlines


def slow(seconds: float, answer: object) -> dict:
    def reply(request, context) -> str:
        time.sleep(seconds)
        return body(answer)

    return mocked(text=reply)


def test_ten_concurrent_callers_share_one_collection(gateway, clocks) -> None:
    gw = gateway({**STANDARD, "/production.json?details=1": slow(0.3, PRODUCTION_STANDARD)})
    client = client_for(clocks, ttl=NO_CACHE)
    snapshots: list[Snapshot] = []
    threads = [
        threading.Thread(target=lambda: snapshots.append(client.collect(timeout=10))) for _ in range(10)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(snapshots) == 10
    assert all(s is snapshots[0] for s in snapshots)
    asked = gw.asked()
    assert len(asked) == len(set(asked))  # every endpoint once: one collection
    assert client.requests()[("info", "200")] == 1


def test_a_slow_gateway_yields_the_last_good_snapshot_and_the_collection_goes_on(gateway, clocks) -> None:
    gw = gateway(STANDARD)
    client = client_for(clocks, ttl=NO_CACHE)
    good = client.collect(timeout=5)
    gw.set("/production.json?details=1", slow(0.5, PRODUCTION_STANDARD))
    clocks.advance(15)
    stale = client.collect(timeout=0.05)
    assert stale.collected_at == good.collected_at
    assert stale.production == good.production
    assert stale.endpoints["production_json"] == EndpointResult(
        Outcome.TIMEOUT, "no answer within the 0.05 s deadline; collection continues"
    )
    fresh = client.collect(timeout=5)  # joins the collection still running
    assert fresh.collected_at == good.collected_at + 15
    assert fresh.endpoints["production_json"].ok


def test_the_first_collection_timing_out_gives_an_empty_snapshot(gateway, clocks) -> None:
    gateway({**STANDARD, "/info": slow(0.3, STANDARD["/info"])})
    snap = client_for(clocks).collect(timeout=0.01)
    assert snap.production is None and snap.info is None and not snap.up
    assert snap.endpoints["info"].outcome is Outcome.TIMEOUT


def test_a_gateway_that_went_down_keeps_its_last_good_snapshot(gateway, clocks, caplog) -> None:
    gw = gateway(STANDARD)
    client = client_for(clocks, ttl={**NO_CACHE, "info": 3600.0})
    good = client.collect(timeout=5)
    for path in STANDARD:
        gw.set(path, mocked(exc=requests.exceptions.ConnectionError))
    clocks.advance(15)
    with caplog.at_level(logging.WARNING):
        snap = client.collect(timeout=5)
    assert snap.collected_at == good.collected_at  # its age shows
    assert snap.production == good.production
    assert snap.endpoints["production_json"].outcome is Outcome.UNREACHABLE
    assert snap.endpoints["info"].outcome is Outcome.CACHED
    assert client.requests()[("production_json", "error")] == 1
    # two requests without an answer: the rest is not asked (each would wait out its timeout)
    assert ("api_v1_inverters", "error") not in client.requests()
    assert "the gateway does not answer: no connection (http://envoy.test/" in caplog.text
    assert "its last data is served meanwhile" in caplog.text


def test_a_bug_becomes_an_error_result_and_never_escapes(gateway, clocks, monkeypatch, caplog) -> None:
    gateway(STANDARD)
    client = client_for(clocks, ttl=NO_CACHE)
    good = client.collect(timeout=5)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(client._assembler, "assemble", broken)
    with caplog.at_level(logging.ERROR):
        snap = client.collect(timeout=5)
    assert snap.production == good.production
    assert snap.endpoints["collect"].outcome is Outcome.INTERNAL
    assert "collection failed" in caplog.text


# --------------------------------------------------------------------------------------------
# Bad answers: each costs only its endpoint's part, with one warning naming it


def truncated(value: object) -> str:
    text = body(value)
    return text[: len(text) // 3]


def wrong_types(value: object) -> str:
    if isinstance(value, list):
        return json.dumps({"wrong": "types"})
    if isinstance(value, dict):
        return json.dumps(["wrong", "types"])
    return "<html><body>Currently nothing</body></html>"


BAD_ANSWERS: dict[str, Callable[[object], object]] = {
    "truncated": truncated,
    "empty": lambda value: "",
    "html": lambda value: LOGIN_PAGE,
    "wrong types": wrong_types,
    "500": lambda value: mocked(status_code=500, text="Internal Server Error"),
    "timeout": lambda value: mocked(exc=requests.exceptions.ReadTimeout),
}

# The parts of a snapshot, each a check that it is there.
PARTS: dict[str, Callable[[Snapshot], bool]] = {
    "ct production": lambda s: s.production_source == "meter",
    "v1 production": lambda s: s.production is not None and s.production.total.lifetime_j == 6_139_406 * WH,
    "legacy production": lambda s: s.production_source == "legacy",
    "consumption": lambda s: s.consumption_net is not None and s.consumption_total is not None,
    "inverters": lambda s: len(s.inverters) >= 1,
    "inverter detail": lambda s: bool(s.inverters) and s.inverters[0].dc_voltage_v is not None,
    "meters": lambda s: len(s.meters) == 2,
    "meter values": lambda s: bool(s.meters) and all(m.total is not None for m in s.meters),
    "devices": lambda s: [d.device_type for d in s.devices][:2] == ["PCU", "NSRB"] and len(s.relays) == 1,
    "batteries": lambda s: len(s.batteries) == 1,
    "enpower": lambda s: s.enpower is not None,
    "storage": lambda s: s.storage is not None,
    "battery power": lambda s: bool(s.batteries) and s.batteries[0].power_w is not None,
    "storage settings": lambda s: s.storage_settings is not None and s.storage_settings.mode == "economy",
    "connectivity": lambda s: s.home is not None and s.home.enlighten_connected is True,
    "dry contacts": lambda s: len(s.dry_contacts) == 2,
    "generator": lambda s: s.generator is not None and s.generator.relay_closed is True,
}
GENERATION_PARTS = {
    "legacy": (LEGACY, {"legacy production"}),
    "standard": (STANDARD, {"v1 production", "inverters", "devices"}),
    "metered": (METERED, set(PARTS) - {"v1 production", "legacy production", "inverter detail"}),
    "token era": (TOKEN_ERA, set(PARTS) - {"v1 production", "legacy production"}),
}
# endpoint key -> (generation, its paths, the parts it costs)
CASES = {
    "production_json": (
        "metered",
        ("/production.json?details=1", "/production.json"),
        {"ct production", "consumption"},
    ),
    "api_v1_production": ("standard", ("/api/v1/production",), {"v1 production"}),
    "production_html": ("legacy", ("/production",), {"legacy production"}),
    "api_v1_inverters": ("standard", ("/api/v1/production/inverters",), {"inverters"}),
    "device_data": ("token era", ("/ivp/pdm/device_data",), {"inverter detail"}),
    "meters": ("metered", ("/ivp/meters",), {"meters", "meter values"}),
    "meter_readings": ("metered", ("/ivp/meters/readings",), {"meter values"}),
    "inventory": ("metered", ("/inventory.json",), {"devices"}),
    "ensemble_inventory": (
        "metered",
        ("/ivp/ensemble/inventory",),
        {"batteries", "enpower", "storage", "battery power", "dry contacts", "generator"},
    ),
    "ensemble_secctrl": ("metered", ("/ivp/ensemble/secctrl",), {"storage"}),
    "ensemble_power": ("metered", ("/ivp/ensemble/power",), {"battery power"}),
    "tariff": ("metered", ("/admin/lib/tariff",), {"storage settings"}),
    "home": ("metered", ("/home.json",), {"connectivity"}),
    "dry_contacts": ("metered", ("/ivp/ensemble/dry_contacts",), {"dry contacts"}),
    "generator": ("metered", ("/ivp/ensemble/generator",), {"generator"}),
}


@pytest.mark.parametrize("bad", list(BAD_ANSWERS))
@pytest.mark.parametrize("key", list(CASES))
def test_a_bad_answer_costs_only_its_endpoints_part(key: str, bad: str, gateway, clocks, caplog) -> None:
    generation, paths, lost = CASES[key]
    routes, parts = GENERATION_PARTS[generation]
    gateway({**routes, **{path: BAD_ANSWERS[bad](routes[path]) for path in paths}})
    client = client_for(clocks, ttl=NO_CACHE, token=token_for(clocks) if generation == "token era" else None)
    with caplog.at_level(logging.WARNING):
        snap = client.collect(timeout=10)
    present = {part for part in parts if PARTS[part](snap)}
    assert present == parts - lost
    assert not snap.endpoints[key].ok
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    path = BY_KEY[key].path.split("?")[0]
    named = [w for w in warnings if path in w]
    assert len(named) == 1, warnings
    assert f"the {BY_KEY[key].title} failed: " in named[0] and "left out" in named[0]
    if bad == "timeout":  # the others answered: this endpoint's own trouble, in words
        assert "failed: timed out after 2 s (http://envoy.test/" in named[0]


@pytest.mark.parametrize("bad", ["truncated", "html", "wrong types", "500", "timeout"])
def test_a_bad_first_info_stops_the_collection_quietly(bad: str, gateway, clocks, caplog) -> None:
    gw = gateway({**STANDARD, "/info": BAD_ANSWERS[bad](STANDARD["/info"])})
    with caplog.at_level(logging.WARNING):
        snap = client_for(clocks).collect(timeout=5)
    assert gw.asked() == ["/info"]
    assert snap.info is None and not snap.up and not snap.endpoints["info"].ok
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "http://envoy.test/info" in warnings[0], warnings
    assert "nothing else is asked until it answers" in warnings[0]


def test_a_bad_later_info_keeps_the_known_identity(gateway, clocks, caplog) -> None:
    gw = gateway(STANDARD)
    client = client_for(clocks, ttl=NO_CACHE)
    client.collect(timeout=5)
    gw.set("/info", mocked(status_code=500))
    with caplog.at_level(logging.WARNING):
        snap = client.collect(timeout=5)
    assert snap.info.serial == "900000000001" and snap.up
    assert any(
        "the gateway info failed: the gateway answered HTTP 500 (http://envoy.test/info)" in r.getMessage()
        for r in caplog.records
    )


def test_a_gateway_down_for_many_collections_is_one_warning_and_one_recovery(requests_mock, caplog):
    import requests_mock as requests_mock_module
    from test_credentials import PRODUCTION, info_xml

    down = {"on": True}

    def info(request, context):
        if down["on"]:
            raise requests.ConnectionError("refused")
        return info_xml("482301000042", "D5.0.62")

    requests_mock.get(requests_mock_module.ANY, status_code=404)  # what a firmware-5 gateway lacks
    requests_mock.get("http://192.0.2.10/info", text=info)
    requests_mock.get("http://192.0.2.10/production.json", text=PRODUCTION)
    requests_mock.get("http://192.0.2.10/production.json?details=1", text=PRODUCTION)
    clocks = Clocks()
    settings = GatewaySettings(
        name="roof", host="http://192.0.2.10", cache_ttl=dict.fromkeys(DEFAULT_CACHE_TTL, 0.0)
    )
    client = GatewayClient(settings, None, clock=clocks.clock, wall=clocks.now)
    with caplog.at_level(logging.INFO, logger="envoy_exporter"):
        for _ in range(10):
            assert not client.collect(timeout=5).up
            clocks.advance(60)
        down["on"] = False
        assert client.collect(timeout=5).up
        clocks.advance(60)
        down["on"] = True
        client.collect(timeout=5)
    client.close()
    said = [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.getMessage().startswith("roof: the gateway")
    ]

    assert said == [
        (
            "WARNING",
            "roof: the gateway does not answer: no connection (http://192.0.2.10/info); "
            "nothing else is asked until it answers",
        ),
        ("INFO", "roof: the gateway answers again (after 10 min)"),
        # Then /info alone fails while the rest answers: that endpoint's trouble, not the gateway's.
        (
            "WARNING",
            "roof: the gateway info failed: no connection (http://192.0.2.10/info); "
            "left out: nothing (the known gateway identity stays in use)",
        ),
    ]
