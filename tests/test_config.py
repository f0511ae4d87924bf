"""exporter.yml → Settings: defaults, ${ENV} and *_file secrets, and errors that name their key."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT

from envoy_exporter.config.load import ConfigError, load_config
from envoy_exporter.config.settings import DEFAULT_CACHE_TTL, Secret


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    return load_config(write(tmp_path, text), env=env or {})


def error(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    return caught.value


def test_minimal_gateway_gets_the_defaults(tmp_path):
    settings = load(tmp_path, "gateways:\n  - host: 192.0.2.10\n")
    (gw,) = settings.gateways
    assert gw.host == "192.0.2.10"
    assert gw.name is None and gw.serial is None  # the label comes from /info later
    assert gw.cache_ttl == DEFAULT_CACHE_TTL
    assert gw.timeout == 10.0
    assert gw.tls.verify is False and gw.tls.ca_file is None
    assert gw.enlighten_url == "https://enlighten.enphaseenergy.com"
    assert gw.entrez_url == "https://entrez.enphaseenergy.com"
    assert gw.password is None and gw.token is None and gw.max_power_w is None
    assert settings.state_dir is None


def test_name_defaults_to_the_serial(tmp_path):
    settings = load(tmp_path, 'gateways:\n  - host: envoy.local\n    serial: "999012345678"\n')
    assert settings.gateways[0].name == "999012345678"
    assert settings.gateways[0].label == "999012345678"


def test_every_key(tmp_path):
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    settings = load(
        tmp_path,
        """
state_dir: state
cache_ttl: {readings: 1, info: 600}
gateways:
  - name: home
    host: https://192.0.2.10
    serial: "999012345678"
    username: installer
    password: pw
    token: tok
    enlighten_username: me@example.com
    enlighten_password: epw
    enlighten_url: http://127.0.0.1:8081
    entrez_url: http://127.0.0.1:8082
    tls: {ca_file: ca.pem}
    cache_ttl: {inverters: 0}
    timeout: 2.5
    max_power_w: 9000
""",
    )
    gw = settings.gateways[0]
    assert (gw.name, gw.host, gw.serial, gw.username) == (
        "home",
        "https://192.0.2.10",
        "999012345678",
        "installer",
    )
    assert (gw.password, gw.token, gw.enlighten_password) == ("pw", "tok", "epw")
    assert all(isinstance(s, Secret) for s in (gw.password, gw.token, gw.enlighten_password))
    assert gw.enlighten_username == "me@example.com"
    assert (gw.enlighten_url, gw.entrez_url) == ("http://127.0.0.1:8081", "http://127.0.0.1:8082")
    assert gw.tls.ca_file == tmp_path / "ca.pem" and gw.tls.verify is True
    # Top-level overrides apply first, then the gateway's own.
    assert gw.cache_ttl == {**DEFAULT_CACHE_TTL, "readings": 1.0, "info": 600.0, "inverters": 0.0}
    assert (gw.timeout, gw.max_power_w) == (2.5, 9000.0)
    assert settings.state_dir == tmp_path / "state"  # relative to the config file


def test_a_number_sets_every_cache_family(tmp_path):
    settings = load(tmp_path, "cache_ttl: 0\ngateways:\n  - host: a\n  - host: b\n    cache_ttl: 7\n")
    assert set(settings.gateways[0].cache_ttl.values()) == {0.0}
    assert set(settings.gateways[1].cache_ttl.values()) == {7.0}
    assert set(settings.gateways[1].cache_ttl) == set(DEFAULT_CACHE_TTL)


def test_env_vars_expand_in_any_string(tmp_path):
    env = {"ENVOY_TOKEN": "eyJ.secret", "SITE": "home", "ENVOY_HOST": "192.0.2.7"}
    settings = load(
        tmp_path,
        "gateways:\n  - name: ${SITE}-gw\n    host: http://${ENVOY_HOST}:80\n    token: ${ENVOY_TOKEN}\n",
        env,
    )
    gw = settings.gateways[0]
    assert (gw.name, gw.host, gw.token) == ("home-gw", "http://192.0.2.7:80", "eyJ.secret")
    assert isinstance(gw.token, Secret) and "secret" not in repr(gw)


def test_unset_env_var_names_key_and_variable(tmp_path):
    e = error(tmp_path, "gateways:\n  - host: a\n  - host: b\n    password: ${BARN_PASSWORD}\n")
    assert e.key == "gateways[1].password"
    assert "BARN_PASSWORD" in str(e) and str(e).startswith("gateways[1].password: ")


def test_secret_files_are_read_and_stripped(tmp_path):
    (tmp_path / "pw").write_text("hunter2\n")
    (tmp_path / "jwt").write_text("  eyJabc.def.ghi \n")
    (tmp_path / "epw").write_text("enlighten\n")
    settings = load(
        tmp_path,
        "gateways:\n  - host: a\n    password_file: pw\n    token_file: jwt\n"
        "    enlighten_password_file: epw\n",
    )
    gw = settings.gateways[0]
    assert (gw.password, gw.enlighten_password) == ("hunter2", "enlighten")
    assert all(isinstance(s, Secret) for s in (gw.password, gw.enlighten_password))
    # The token file is checked but handed on as a path: auth re-reads it when it changes.
    assert gw.token is None and gw.token_file == tmp_path / "jwt"


def test_secret_file_path_may_come_from_env(tmp_path):
    (tmp_path / "pw").write_text("s3cret")
    settings = load(
        tmp_path, "gateways:\n  - host: a\n    password_file: ${PW_FILE}\n", {"PW_FILE": str(tmp_path / "pw")}
    )
    assert settings.gateways[0].password == "s3cret"


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("gateways: []\n", "gateways", "non-empty list"),
        ("state_dir: x\n", "gateways", "non-empty list"),
        ("gateways:\n  - name: a\n", "gateways[0].host", "required"),
        ("gateways:\n  - host: a\n    colour: red\n", "gateways[0].colour", "unknown key"),
        ("gateway:\n  - host: a\n", "gateway", "unknown key"),
        ("gateways:\n  - host: a\n    cache_ttl: {readings: -1}\n", "gateways[0].cache_ttl.readings", ">= 0"),
        (
            "gateways:\n  - host: a\n  - host: b\n    cache_ttl: {readings: -1}\n",
            "gateways[1].cache_ttl.readings",
            ">= 0",
        ),
        (
            "gateways:\n  - host: a\n    cache_ttl: {weather: 5}\n",
            "gateways[0].cache_ttl.weather",
            "unknown cache family",
        ),
        ("cache_ttl: yes\ngateways:\n  - host: a\n", "cache_ttl", "must be a number"),
        ("cache_ttl: -3\ngateways:\n  - host: a\n", "cache_ttl", ">= 0"),
        ("gateways:\n  - host: a\n    timeout: 0\n", "gateways[0].timeout", "> 0"),
        ("gateways:\n  - host: a\n    timeout: fast\n", "gateways[0].timeout", "must be a number"),
        ("gateways:\n  - host: a\n    max_power_w: -5\n", "gateways[0].max_power_w", "> 0"),
        ("gateways:\n  - host: a\n    name: x\n  - host: b\n    name: x\n", "gateways[1].name", "duplicate"),
        (
            'gateways:\n  - host: a\n    serial: "1"\n  - host: b\n    serial: "1"\n',
            "gateways[1].serial",
            "duplicate serial",
        ),
        (
            "gateways:\n  - host: a\n    password: p\n    password_file: f\n",
            "gateways[0].password_file",
            "not both",
        ),
        ("gateways:\n  - host: a\n    token: t\n    token_file: f\n", "gateways[0].token_file", "not both"),
        ("gateways:\n  - host: a\n    password: 123456\n", "gateways[0].password", "quote it"),
        ("gateways:\n  - host: a\n    serial: 999012345678\n", "gateways[0].serial", "quote it"),
        ("gateways:\n  - host: ''\n", "gateways[0].host", "empty"),
        ("gateways:\n  - host: ftp://a\n", "gateways[0].host", "http://"),
        ("gateways:\n  - host: a\n    password_file: missing\n", "gateways[0].password_file", "cannot read"),
        ("gateways:\n  - host: a\n    tls: {verify: maybe}\n", "gateways[0].tls.verify", "true or false"),
        ("gateways:\n  - host: a\n    tls: {pin: x}\n", "gateways[0].tls.pin", "unknown key"),
        (
            "gateways:\n  - host: a\n    tls: {ca_file: nope.pem}\n",
            "gateways[0].tls.ca_file",
            "not a readable file",
        ),
        (
            "gateways:\n  - host: a\n    enlighten_url: enlighten.example\n",
            "gateways[0].enlighten_url",
            "URL",
        ),
        ("gateways:\n  - host\n", "gateways[0]", "mapping"),
        ("- host: a\n", "(top level)", "mapping"),
        ("gateways:\n  - host: a\n    token: ${not-a-name}\n", "gateways[0].token", "not a valid"),
    ],
)
def test_errors_name_the_key(tmp_path, text, key, fragment):
    e = error(tmp_path, text)
    assert e.key == key
    assert str(e).startswith(f"{key}: ")
    assert fragment in e.message


def test_empty_secret_file_is_an_error(tmp_path):
    (tmp_path / "empty").write_text("\n")
    e = error(tmp_path, "gateways:\n  - host: a\n    token_file: empty\n")
    assert e.key == "gateways[0].token_file" and "empty" in e.message


def test_ca_file_with_verify_false_is_contradictory(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    e = error(tmp_path, "gateways:\n  - host: a\n    tls: {verify: false, ca_file: ca.pem}\n")
    assert e.key == "gateways[0].tls.verify"


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "absent.yml", env={})
    e = error(tmp_path, "gateways:\n  - host: [a\n")
    # libyaml: "did not find expected ',' or ']'"; the pure-Python parser: "expected ',' or ']'"
    assert e.message.startswith("not valid YAML: line 3: ") and "expected ',' or ']'" in e.message


def test_secrets_never_in_error_messages(tmp_path):
    e = error(tmp_path, "gateways:\n  - host: a\n    password: hunter2\n    password_file: f\n")
    assert "hunter2" not in str(e)


def test_shipped_example_is_valid(tmp_path):
    env = {"ENVOY_HOME_TOKEN": "eyJhome", "BARN_ENVOY_PASSWORD": "123456"}
    settings = load_config(ROOT / "exporter.yml", env=env)
    home, barn = settings.gateways
    assert (home.name, home.serial, home.token, home.cache_ttl["readings"]) == (
        "home",
        "122212345678",
        "eyJhome",
        2.0,
    )
    assert (barn.name, barn.username, barn.password) == ("barn", "envoy", "123456")
    assert set(barn.cache_ttl.values()) == {30.0}
