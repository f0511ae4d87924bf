"""The session cookie a gateway sets goes out as the cookie policy allows it, on every request:
the current value after the jar changes, never over plain http once marked secure, and never
after its expiry, though the transport keeps the Cookie header per URL between changes."""

from __future__ import annotations

import time

import pytest
from conftest import Recorder
from requests.cookies import create_cookie

from envoy_exporter.config.settings import GatewaySettings
from envoy_exporter.gateway.net.transport import Transport

INFO_BODY = b"<?xml version='1.0'?><envoy_info><device><sn>482301000042</sn></device></envoy_info>"


class NoCredentials:
    bearer = False

    def prepare(self, endpoint_key):
        return {}

    def refresh(self, session, base_url):
        pass

    def on_unauthorized(self, session, base_url):
        return False


@pytest.fixture
def gateway(requests_mock):
    for scheme in ("https", "http"):
        for path in ("/info", "/production.json", "/ivp/meters/readings"):
            requests_mock.get(f"{scheme}://192.0.2.10{path}", content=INFO_BODY)
    return requests_mock


def transport_for(host: str) -> Transport:
    return Transport(GatewaySettings(name="roof", host=host), NoCredentials(), Recorder())  # type: ignore[arg-type]


def sent_cookie(gateway, transport: Transport, path: str) -> str | None:
    transport.get("production_json", path)
    return gateway.last_request.headers.get("Cookie")


def session_cookie(value: str, **kw) -> object:
    return create_cookie("sessionId", value, domain="192.0.2.10", path="/", **kw)


def test_the_cookie_sent_follows_the_jar(gateway):
    transport = transport_for("https://192.0.2.10")
    assert sent_cookie(gateway, transport, "/production.json") is None
    transport._session.cookies.set_cookie(session_cookie("first"))
    assert [sent_cookie(gateway, transport, "/production.json") for _ in range(2)] == ["sessionId=first"] * 2
    assert sent_cookie(gateway, transport, "/ivp/meters/readings") == "sessionId=first"
    transport._session.cookies.set_cookie(session_cookie("second"))  # a new check_jwt
    assert sent_cookie(gateway, transport, "/production.json") == "sessionId=second"
    transport._session.cookies.clear()
    assert sent_cookie(gateway, transport, "/production.json") is None


def test_a_cookie_marked_secure_stops_going_over_plain_http(gateway):
    transport = transport_for("http://192.0.2.10")
    transport._session.cookies.set_cookie(session_cookie("s3ss10n"))
    assert sent_cookie(gateway, transport, "/production.json") == "sessionId=s3ss10n"
    for cookie in transport._session.cookies:
        cookie.secure = True  # as the transport marks them on a plain-http fallback
    assert sent_cookie(gateway, transport, "/production.json") is None


def test_a_cookie_is_not_sent_past_its_expiry(gateway):
    transport = transport_for("https://192.0.2.10")
    transport._session.cookies.set_cookie(session_cookie("short", expires=int(time.time()) + 2))
    assert sent_cookie(gateway, transport, "/production.json") == "sessionId=short"
    time.sleep(2.1)
    assert sent_cookie(gateway, transport, "/production.json") is None
