"""The ``defaults:`` and ``discovery:`` blocks, and Home Assistant's ``username``/``password``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from envoy_exporter.cli import main
from envoy_exporter.config.load import ConfigError, load_config
from envoy_exporter.config.settings import DEFAULT_CACHE_TTL, DiscoverySettings, TLSSettings


def load(tmp_path: Path, text: str):
    config = tmp_path / "exporter.yml"
    config.write_text(text)
    return load_config(config, env={"EPW": "enlighten-secret"})


def test_defaults_fill_what_an_entry_leaves_out(tmp_path):
    settings = load(
        tmp_path,
        """
cache_ttl: {readings: 1}
defaults:
  enlighten_username: me@example.com
  enlighten_password: ${EPW}
  timeout: 4
  cache_ttl: {inverters: 120}
  tls: {verify: true}
gateways:
  - host: a
  - host: b
    timeout: 9
    cache_ttl: {readings: 3}
    enlighten_username: other@example.com
""",
    )
    a, b = settings.gateways
    assert (a.enlighten_username, a.enlighten_password, a.timeout) == (
        "me@example.com",
        "enlighten-secret",
        4.0,
    )
    assert a.tls == TLSSettings(verify=True)
    assert a.cache_ttl == {**DEFAULT_CACHE_TTL, "readings": 1.0, "inverters": 120.0}
    # An entry's own credentials come as a whole: no password borrowed for another account.
    assert (b.enlighten_username, b.enlighten_password, b.timeout) == ("other@example.com", None, 9.0)
    assert b.cache_ttl == {**DEFAULT_CACHE_TTL, "readings": 3.0, "inverters": 120.0}
    # What discovered gateways get:
    assert settings.defaults["enlighten_username"] == "me@example.com"
    assert settings.defaults["cache_ttl"] == a.cache_ttl


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        (
            "defaults: {token: x}\ngateways: [{host: a}]\n",
            "defaults.token",
            "issued for one gateway's serial",
        ),
        ("defaults: {token_file: x}\ngateways: [{host: a}]\n", "defaults.token_file", "one gateway's serial"),
        ("defaults: {host: x}\ngateways: [{host: a}]\n", "defaults.host", "names one gateway"),
        ("defaults: {serial: '1'}\ngateways: [{host: a}]\n", "defaults.serial", "names one gateway"),
        ("defaults: {colour: red}\ngateways: [{host: a}]\n", "defaults.colour", "unknown key"),
        ("defaults: {timeout: 0}\ngateways: [{host: a}]\n", "defaults.timeout", "> 0"),
        ("defaults: [x]\ngateways: [{host: a}]\n", "defaults", "mapping"),
        ("discovery: {zeroconf: maybe}\n", "discovery.zeroconf", "true or false"),
        ("discovery: {zeroconf: true, interfaces: [lan0]}\n", "discovery.interfaces[0]", "IP address"),
        ("discovery: {zeroconf: true, interfaces: 10.0.0.1}\n", "discovery.interfaces", "list"),
        ("discovery: {mdns: true}\n", "discovery.mdns", "unknown key"),
        ("discovery: {zeroconf: false}\n", "gateways", "or set discovery.zeroconf"),
        ("discovery: {zeroconf: true}\ngateways: {host: a}\n", "gateways", "list"),
    ],
)
def test_errors_name_the_key(tmp_path, text, key, fragment):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert caught.value.key == key
    assert fragment in caught.value.message


def test_discovery_alone_is_a_configuration(tmp_path):
    settings = load(tmp_path, "discovery: {zeroconf: true, interfaces: [192.168.1.2, 'fd00::2']}\n")
    assert settings.gateways == ()
    assert settings.discovery == DiscoverySettings(zeroconf=True, interfaces=("192.168.1.2", "fd00::2"))
    assert load(tmp_path, "gateways: [{host: a}]\n").discovery == DiscoverySettings()


def test_check_config_says_discovery_is_on(tmp_path, capsys):
    config = tmp_path / "exporter.yml"
    config.write_text("discovery: {zeroconf: true}\n")
    assert main(["--config.file", str(config), "--check-config"]) == 0
    assert capsys.readouterr().out == f"{config}: OK, 0 gateway(s), and zeroconf discovery\n"


def test_an_email_username_is_taken_as_the_enlighten_account(tmp_path):
    settings = load(
        tmp_path,
        "defaults: {username: all@example.com, password: p1}\n"
        "gateways:\n"
        "  - {host: a, username: me@example.com, password: p2}\n"
        "  - {host: b, username: envoy, password: '123456'}\n"
        "  - {host: c}\n",
    )
    a, b, c = settings.gateways
    assert (a.enlighten_username, a.enlighten_password, a.username, a.password) == (
        "me@example.com",
        "p2",
        None,
        None,
    )
    # A digest login (firmware < 7) stays one, beside the Enlighten account of the defaults.
    assert (b.username, b.password, b.enlighten_username) == ("envoy", "123456", "all@example.com")
    assert (c.enlighten_username, c.enlighten_password, c.username) == ("all@example.com", "p1", None)
    assert settings.notices == (
        "defaults.username: 'all@example.com' is an e-mail address, taken as the Enlighten account; "
        "write enlighten_username and enlighten_password to say so",
        "gateways[0].username: 'me@example.com' is an e-mail address, taken as the Enlighten account; "
        "write enlighten_username and enlighten_password to say so",
    )


def test_an_email_username_beside_enlighten_username_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            "gateways:\n  - {host: a, username: me@example.com, enlighten_username: me@example.com}\n",
        )
    assert caught.value.key == "gateways[0].username"
    assert "enlighten_username is set too" in caught.value.message


def test_check_config_shows_the_notice(tmp_path, caplog):
    config = tmp_path / "exporter.yml"
    config.write_text("gateways:\n  - {host: a, username: me@example.com, password: pw}\n")
    with caplog.at_level(logging.WARNING):
        assert main(["--config.file", str(config), "--check-config"]) == 0
    assert "gateways[0].username: 'me@example.com' is an e-mail address" in caplog.text
    assert "enlighten_username" in caplog.text and "pw" not in caplog.text.replace("password", "")
