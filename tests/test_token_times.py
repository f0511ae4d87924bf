"""Token timestamps cannot crash anything: an ``exp`` or ``iat`` however absurd (negative, 1e17,
1e300, NaN, infinite, a string, an integer no float holds) is a one-line ``--check-config``
message, an "expiry unknown" at run time, never a traceback, a 500 on ``/`` or a gateway held
down across restarts."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from conftest import Clocks
from test_credentials import SERIAL_A, WALL, Cloud, StandIn, client, cloud_settings

from envoy_exporter.cli import main
from envoy_exporter.config.settings import GatewaySettings, Secret
from envoy_exporter.fleet.registry import Fleet
from envoy_exporter.gateway.auth.token import Token
from envoy_exporter.gateway.client import GatewayClient
from envoy_exporter.web.landing import render_landing
from envoy_exporter.web.status import fleet_status

# As the JSON text of the claim: some of these no JSON encoder writes, but a token may carry them.
ABSURD = ["-1e12", "1e17", "1e300", "NaN", "Infinity", "-Infinity", '"soon"', "1" + "0" * 400]


def jwt_with(exp: str, iat: str = str(int(WALL)), serial: str = SERIAL_A, jti: str = "t") -> str:
    def part(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    claims = f'{{"aud": "{serial}", "iss": "Entrez", "enphaseUser": "owner", "jti": "{jti}", '
    claims += f'"iat": {iat}, "exp": {exp}}}'
    return f"{part(json.dumps({'alg': 'HS256', 'typ': 'JWT'}))}.{part(claims)}.{part('signature')}"


@pytest.mark.parametrize("exp", ABSURD)
def test_check_config_says_one_line_and_exits_2(tmp_path, capsys, exp):
    config = tmp_path / "exporter.yml"
    token = jwt_with(exp)
    config.write_text(f'gateways:\n  - host: 192.0.2.10\n    serial: "{SERIAL_A}"\n    token: {token}\n')
    assert main(["--config.file", str(config), "--check-config"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "envoy-exporter: configuration error: gateways[0].token: its exp claim is not a usable time; "
        f'paste a token Enphase issued (gateway "{SERIAL_A}")\n'
    )


@pytest.mark.parametrize("iat", ABSURD)
def test_an_absurd_iat_is_named_too(tmp_path, capsys, iat):
    config = tmp_path / "exporter.yml"
    token = jwt_with(str(int(WALL) + 86400), iat=iat)
    config.write_text(f"gateways:\n  - host: 192.0.2.10\n    token: {token}\n")
    assert main(["--config.file", str(config), "--check-config"]) == 2
    assert "gateways[0].token: its iat claim is not a usable time" in capsys.readouterr().err


@pytest.mark.parametrize("exp", ABSURD)
def test_the_status_page_shows_a_token_of_unknown_expiry(exp):
    settings = GatewaySettings(name="roof", host="192.0.2.10", token=Secret(jwt_with(exp)))
    fleet = Fleet([settings], lambda s: GatewayClient(s, None))
    try:
        (status,) = fleet_status(fleet, WALL)
        assert status.token_expiry is None
        assert ">roof<" in render_landing([status], "/metrics", WALL)
    finally:
        for c in fleet.clients():
            c.close()


class AbsurdCloud(Cloud):
    """Enlighten issuing tokens whose ``exp`` is 1e300."""

    def token(self, request, context) -> str:
        serial = request.json()["serial_num"]
        value = jwt_with("1e300", serial=serial, jti=f"{serial}-{len(self.issued.get(serial, []))}")
        self.issued.setdefault(serial, []).append(value)
        self.gateways[serial].accept.add(value)
        return value


def test_an_enlighten_token_with_an_absurd_exp_never_holds_the_gateway_down(requests_mock, tmp_path, caplog):
    gateway = StandIn("https://192.0.2.10", SERIAL_A).install(requests_mock)
    cloud = AbsurdCloud({SERIAL_A: gateway}).install(requests_mock)
    clocks = Clocks()
    first = client("192.0.2.10", clocks, tmp_path, **cloud_settings())
    with caplog.at_level(logging.INFO):
        assert first.collect(timeout=5).up
    assert "obtained a gateway token from Enlighten, expiry unknown" in caplog.text
    assert first.token_expiry is None
    first.close()

    # A restart: the cached token's expiry is unknown, so it is not reused; a new one is fetched.
    again = client("192.0.2.10", clocks, tmp_path, **cloud_settings())
    assert again.collect(timeout=5).up
    assert len(cloud.issued[SERIAL_A]) == 2

    # Renewed a day after it was obtained, not on every scrape and not never.
    for _ in range(5):
        clocks.advance(600)
        assert again.collect(timeout=5).up
    assert len(cloud.issued[SERIAL_A]) == 2
    clocks.advance(86400)
    assert again.collect(timeout=5).up
    assert len(cloud.issued[SERIAL_A]) == 3
    again.close()


def test_sane_times_are_read_as_before():
    token = Token.of(jwt_with(str(int(WALL) + 86400)), "token", None)
    assert (token.expiry, token.issued, token.expiry_unknown) == (WALL + 86400, WALL, False)
