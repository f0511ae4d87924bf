"""One rule for "is this an error": every endpoint outcome is judged alike by the health series,
the status page and the assembler, and an endpoint the firmware lacks is never an error."""

from __future__ import annotations

from dataclasses import replace

import pytest
import requests_mock
from exporter_fakes import NOW, FakeClient, rich_snapshot, samples, scrape, value

from envoy_exporter.collector import GatewayCollector
from envoy_exporter.config.settings import GatewaySettings
from envoy_exporter.gateway.client import GatewayClient
from envoy_exporter.snapshot.assemble import Assembler
from envoy_exporter.snapshot.model import (
    EndpointResult,
    GatewayInfo,
    InvertersSection,
    ProductionJson,
    Readings,
)
from envoy_exporter.snapshot.outcome import Outcome, http_outcome
from envoy_exporter.web.status import gateway_status

# (ok, is_error, is_transient) of every outcome, spelt out.
MEANING = {
    Outcome.OK: (True, False, False),
    Outcome.CACHED: (True, False, False),
    Outcome.UNSUPPORTED: (False, False, False),
    Outcome.UNAUTHORIZED: (False, True, False),
    Outcome.WITHHELD: (False, True, False),
    Outcome.TIMEOUT: (False, True, True),
    Outcome.UNREACHABLE: (False, True, True),
    Outcome.TLS: (False, True, False),
    Outcome.HTTP_ERROR: (False, True, True),
    Outcome.BAD_DATA: (False, True, True),
    Outcome.TOO_LARGE: (False, True, True),
    Outcome.CONFLICT: (False, True, False),
    Outcome.INTERNAL: (False, True, False),
}


def test_every_outcome_has_its_meaning_spelt_out() -> None:
    assert set(MEANING) == set(Outcome)
    for outcome, (ok, is_error, is_transient) in MEANING.items():
        assert (outcome.ok, outcome.is_error, outcome.is_transient) == (ok, is_error, is_transient), outcome


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.OK),
        (204, Outcome.OK),
        (404, Outcome.UNSUPPORTED),
        (401, Outcome.UNAUTHORIZED),
        (403, Outcome.HTTP_ERROR),
        (302, Outcome.HTTP_ERROR),
        (503, Outcome.HTTP_ERROR),
    ],
)
def test_an_http_status_has_one_outcome(status: int, outcome: Outcome) -> None:
    assert http_outcome(status) is outcome


def test_a_result_reads_as_its_cause_in_words_and_where() -> None:
    assert str(EndpointResult(Outcome.TIMEOUT, "timed out after 10 s")) == "timed out after 10 s"
    refused = EndpointResult(Outcome.UNREACHABLE, "connection refused", url="http://192.0.2.5/info")
    assert str(refused) == "connection refused (http://192.0.2.5/info)"
    assert str(EndpointResult(Outcome.UNREACHABLE)) == "no connection"  # no detail: the outcome's words
    assert str(EndpointResult(Outcome.CACHED, age_s=4.0)) == "answered earlier (cached)"
    assert EndpointResult(Outcome.CACHED).ok and not EndpointResult(Outcome.UNSUPPORTED).ok


@pytest.mark.parametrize("outcome", list(Outcome))
def test_health_series_and_status_page_agree(outcome: Outcome) -> None:
    snapshot = replace(rich_snapshot(), endpoints={"inventory": EndpointResult(outcome, "why")})
    client = FakeClient("home", snapshot)
    got = samples(scrape(GatewayCollector([client], 2.0, wall=lambda: NOW)))
    up = value(got, "enphase_endpoint_up", gateway="home", endpoint="inventory")
    problems = [p.what for p in gateway_status(client, NOW).problems]
    if outcome.is_error:
        assert up == 0.0
        assert problems == ["device inventory: why"]
    elif outcome.ok:
        assert up == 1.0
        assert problems == []
    else:  # not on this firmware: no series at all, nothing to tell
        assert up is None
        assert problems == []


@pytest.mark.parametrize("outcome", list(Outcome))
def test_the_assembler_waits_only_for_a_source_that_failed_for_a_passing_reason(outcome: Outcome) -> None:
    """The inverters section is on hand and /api/v1/production, the better source, failed: the
    first choice waits for it only when the failure may pass by itself."""
    info = GatewayInfo(serial="900000000102", firmware="D7.6.175", metered=False)
    section = InvertersSection(active_count=12, reading_time=None, power_w=900.0, lifetime_j=6.0e8)
    readings = Readings(info=info, production_json=ProductionJson(inverters=section))
    failed = {"api_v1_production": EndpointResult(outcome, "why")}
    snapshot = Assembler().assemble(readings, failed, now=NOW)
    assert (snapshot.production is None) == outcome.is_transient


def test_an_endpoint_the_firmware_lacks_is_never_an_error_not_even_the_first_time() -> None:
    """A legacy gateway answers 404 for the JSON endpoints. The first collection already has no
    ``enphase_endpoint_up`` series for them and nothing for the status page to tell."""
    info = (
        "<?xml version='1.0' encoding='UTF-8'?><envoy_info><device><sn>900000000009</sn>"
        "<pn>800-00000-r01</pn><software>D3.7.0</software></device></envoy_info>"
    )
    page = (
        "<html><body><h1>System Statistics</h1><table><tr><td>Currently</td><td>1.20 kW</td></tr>"
        "<tr><td>Today</td><td>5.0 kWh</td></tr><tr><td>Past Week</td><td>40 kWh</td></tr>"
        "<tr><td>Since Installation</td><td>12 MWh</td></tr></table></body></html>"
    )
    with requests_mock.Mocker() as m:
        m.get(requests_mock.ANY, status_code=404, text="Not Found")
        m.get("http://legacy.test/info", text=info)
        m.get("http://legacy.test/production", text=page)
        client = GatewayClient(GatewaySettings(name="old", host="http://legacy.test"), None)
        snapshot = client.collect(timeout=5)
        got = samples(scrape(GatewayCollector([client], 5.0)))
        status = gateway_status(client, snapshot.collected_at)
        client.close()
    assert snapshot.production.total.power_w == 1200.0
    lacking = {key for key, result in snapshot.endpoints.items() if result.outcome is Outcome.UNSUPPORTED}
    assert {"api_v1_production", "production_json", "inventory"} <= lacking
    assert value(got, "enphase_endpoint_up", gateway="old", endpoint="production_html") == 1.0
    for key in lacking:
        assert value(got, "enphase_endpoint_up", gateway="old", endpoint=key) is None, key
    assert status.problems == ()
