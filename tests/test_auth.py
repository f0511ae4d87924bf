"""Auth: digest defaults, the installer password, and the token's whole life (given, file, cache,
Enlighten, renewal, recovery from 401, back-off), without a secret ever reaching the log."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import ssl
import stat
import threading
from pathlib import Path

import jwt
import pytest
import requests
from conftest import SHARED_FIXTURES, Clock, Recorder, load_fake_gateway, needs_shared
from requests.auth import HTTPDigestAuth

from envoy_exporter.config.settings import GatewaySettings, Secret
from envoy_exporter.gateway.auth.backoff import BACKOFF_MAX_S
from envoy_exporter.gateway.auth.scheme import REALM, Auth, CredentialsWithheld, installer_password
from envoy_exporter.gateway.endpoints import METERS, PRODUCTION_JSON
from envoy_exporter.gateway.net.transport import Transport, TransportError
from envoy_exporter.logs import redact
from envoy_exporter.snapshot.model import GatewayInfo
from envoy_exporter.snapshot.outcome import Outcome

SERIAL = "482301000042"
GATEWAY = "https://192.0.2.10"
ENLIGHTEN = "https://enlighten.test"
ENTREZ = "https://entrez.test"
CLOUD_USER = "owner@example.net"
CLOUD_PASSWORD = "cloud-pw-Zq81!"
DAY = 86400.0
NOW = 1_800_000_000.0

INFO_LEGACY = GatewayInfo(serial=SERIAL, firmware="D5.0.62")
INFO_TOKEN = GatewayInfo(serial=SERIAL, firmware="D7.6.175", web_tokens=True)


def make_token(lifetime_s: float = 365 * DAY, issued: float = NOW, subject: str = "a") -> str:
    claims = {"aud": SERIAL, "enphaseUser": "owner", "iat": int(issued), "exp": int(issued + lifetime_s)}
    return jwt.encode({**claims, "jti": subject}, "k" * 32, algorithm="HS256")


def gateway_settings(**overrides: object) -> GatewaySettings:
    return GatewaySettings(name="roof", host="192.0.2.10", **overrides)  # type: ignore[arg-type]


def cloud_settings(**overrides: object) -> GatewaySettings:
    return gateway_settings(
        enlighten_username=CLOUD_USER,
        enlighten_password=Secret(CLOUD_PASSWORD),
        enlighten_url=ENLIGHTEN,
        entrez_url=ENTREZ,
        **overrides,
    )


def make_auth(settings: GatewaySettings, state_dir: Path | None = None, info: GatewayInfo = INFO_TOKEN):
    clock, wall, record = Clock(5000.0), Clock(NOW), Recorder()
    auth = Auth(settings, state_dir, record, clock=clock, wall=wall)
    auth.configure(info)
    return auth, clock, wall, record


def mock_enlighten(requests_mock, tokens: list[str]) -> None:
    """Enlighten login answering a session id, Entrez issuing the given tokens in turn."""
    requests_mock.post(f"{ENLIGHTEN}/login/login.json", json={"message": "success", "session_id": "sid-77"})
    requests_mock.post(f"{ENTREZ}/tokens", [{"text": t} for t in tokens])


def mock_check_jwt(requests_mock, accepted: set[str]) -> None:
    """The gateway's /auth/check_jwt: 200 for accepted tokens, else 401. (requests-mock does not
    fill the session's cookie jar; the loopback tests check the ``sessionId`` cookie.)"""

    def answer(request, context):
        if request.headers.get("Authorization", "").removeprefix("Bearer ") in accepted:
            context.status_code = 200
            return "<!DOCTYPE html><h2>Valid token.</h2>"
        context.status_code = 401
        return '{"status":401,"info":"Authentication required"}'

    requests_mock.get(f"{GATEWAY}/auth/check_jwt", text=answer)


def bearer(auth: Auth) -> str | None:
    return auth.prepare("meters").get("headers", {}).get("Authorization")


# --------------------------------------------------------------------------------------------
# The installer password


@pytest.mark.parametrize(
    ("serial", "username", "realm", "expected"),
    [
        # Known pairs asserted by the unit tests of a public C# home-EMS implementation
        # (Enphase.Unit.Tests/AuthenticationUnitTests.cs, namespace EMS.Library), which ports
        # sarnau/EnphaseEnergy passwordCalc.py; they cover both letter substitutions ('g', 'A').
        ("122011110123", "installer", REALM, "d5ceb265"),
        ("122011110123", "someone", REALM, "d2eg979a"),
        ("122011110123", "someone", "hems", "b83f97Ac"),
    ],
)
def test_installer_password_matches_published_pairs(serial, username, realm, expected):
    assert installer_password(serial, username, realm) == expected


def test_installer_password_is_eight_chars_of_digits_and_letters():
    for n in range(200):
        password = installer_password(f"1221{n:08d}")
        assert re.fullmatch(r"[0-9a-z@A-Z]{8}", password)
        assert "0" not in password and "1" not in password


# --------------------------------------------------------------------------------------------
# Digest (firmware < 7)


def digest_of(auth: Auth) -> HTTPDigestAuth:
    kwargs = auth.prepare("meters")
    assert isinstance(kwargs["auth"], HTTPDigestAuth)
    return kwargs["auth"]


def test_digest_defaults_to_envoy_and_the_last_six_digits():
    auth, *_ = make_auth(gateway_settings(), info=INFO_LEGACY)
    assert auth.scheme == "digest"
    digest = digest_of(auth)
    assert (digest.username, digest.password) == ("envoy", "000042")
    assert auth.prepare("info") == {}
    assert auth.token_expiry is None


def test_installer_without_password_gets_the_generated_one():
    auth, *_ = make_auth(gateway_settings(username="installer"), info=INFO_LEGACY)
    digest = digest_of(auth)
    assert (digest.username, digest.password) == ("installer", installer_password(SERIAL))


@pytest.mark.parametrize("username", ["envoy", "installer", "admin"])
def test_explicit_credentials_win(username):
    auth, *_ = make_auth(
        gateway_settings(username=username, password=Secret("s3cret-local")), info=INFO_LEGACY
    )
    digest = digest_of(auth)
    assert (digest.username, digest.password) == (username, "s3cret-local")


def test_settings_serial_is_used_when_info_has_none():
    auth, *_ = make_auth(
        gateway_settings(serial="999999123456"), info=GatewayInfo(serial="", firmware="R3.9.36")
    )
    assert digest_of(auth).password == "123456"


def test_no_serial_means_no_scheme_and_a_clear_error_on_401(caplog):
    auth, *_ = make_auth(gateway_settings(), info=GatewayInfo(serial="", firmware="R3.9.36"))
    assert auth.scheme == "none"
    assert auth.prepare("meters") == {}
    with caplog.at_level(logging.ERROR, logger="envoy_exporter.gateway.auth"):
        assert auth.on_unauthorized(requests.Session(), GATEWAY) is False
        assert auth.on_unauthorized(requests.Session(), GATEWAY) is False
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # said once, not on every scrape
    assert "serial is unknown" in errors[0].getMessage()
    assert "serial is unknown" in (auth.last_error or "")


def test_unknown_user_without_password_has_no_scheme():
    auth, *_ = make_auth(gateway_settings(username="admin"), info=INFO_LEGACY)
    assert auth.scheme == "none"
    assert "'admin'" in (auth.last_error or "")


def test_digest_answers_the_gateway_challenge(requests_mock):
    """A gateway challenging with digest gets the right response hash from the default password."""
    nonce = "5e3b0c4a"

    def answer(request, context):
        header = request.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            context.status_code = 401
            context.headers["WWW-Authenticate"] = f'Digest realm="{REALM}", qop="auth", nonce="{nonce}"'
            return ""
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', header[len("Digest ") :]))
        ha1 = hashlib.md5(f"envoy:{REALM}:000042".encode()).hexdigest()
        ha2 = hashlib.md5(f"GET:{fields['uri']}".encode()).hexdigest()
        expected = hashlib.md5(
            f"{ha1}:{nonce}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}".encode()
        ).hexdigest()
        context.status_code = 200 if fields["response"] == expected else 401
        return "[]"

    requests_mock.get("https://192.0.2.10/ivp/meters", text=answer)
    auth, *_ = make_auth(gateway_settings(), info=INFO_LEGACY)
    transport = Transport(gateway_settings(), auth, Recorder())
    assert transport.get("meters", "/ivp/meters").body == b"[]"


def test_digest_nonce_carries_over_to_the_next_collection_thread(requests_mock):
    """Each collection runs on a new thread; the gateway's nonce must not be forgotten with it,
    or every collection pays a 401 challenge before its first protected request."""
    nonce = "5e3b0c4a"
    answered: list[int] = []

    def answer(request, context):
        if not request.headers.get("Authorization", "").startswith("Digest "):
            context.status_code = 401
            context.headers["WWW-Authenticate"] = f'Digest realm="{REALM}", qop="auth", nonce="{nonce}"'
        answered.append(context.status_code)
        return "[]"

    requests_mock.get("https://192.0.2.10/ivp/meters", text=answer)
    auth, *_ = make_auth(gateway_settings(), info=INFO_LEGACY)
    transport = Transport(gateway_settings(), auth, Recorder())
    for _ in range(3):
        worker = threading.Thread(target=transport.get, args=("meters", "/ivp/meters"))
        worker.start()
        worker.join()
    assert answered == [401, 200, 200, 200]


def test_rejected_digest_is_an_error_once(caplog):
    auth, clock, *_ = make_auth(gateway_settings(), info=INFO_LEGACY)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            assert auth.on_unauthorized(requests.Session(), GATEWAY) is False
            assert auth.rejected().reason == "password rejected for user envoy"
            clock.now += 3600
    assert [r.getMessage() for r in caplog.records] == [
        "roof: password rejected for user envoy; next attempt in 60 s"
    ]


# --------------------------------------------------------------------------------------------
# Token: given, from a file


def test_given_token_is_sent_as_bearer_and_its_expiry_exposed():
    token = make_token(lifetime_s=100 * DAY)
    auth, *_ = make_auth(gateway_settings(token=Secret(token)))
    assert auth.scheme == "token"
    assert bearer(auth) == f"Bearer {token}"
    assert auth.token_expiry == NOW + 100 * DAY
    assert auth.prepare("info") == {}


def test_token_era_without_any_source_has_no_scheme():
    auth, *_ = make_auth(gateway_settings())
    assert auth.scheme == "none"
    assert auth.last_error == (
        "firmware D7.6.175 needs a token: set token, token_file, or enlighten_username and enlighten_password"
    )


def test_a_digest_login_on_token_firmware_is_named_unused_and_the_enlighten_keys_suggested():
    # Home Assistant's username/password (not an e-mail, so not taken as the Enlighten account)
    # are the gateway's digest login; from firmware 7 they open nothing, and must not go unsaid.
    auth, *_ = make_auth(gateway_settings(username="owner", password=Secret("gw-pass-81")))
    assert auth.scheme == "none"
    message = auth.last_error or ""
    assert message == (
        "firmware D7.6.175 needs a token: set token, token_file, or enlighten_username and "
        "enlighten_password (username and password are the gateway's own login before firmware 7, "
        "unused here)"
    )
    assert redact(message) == message  # the hint reaches the log whole


def test_token_file_is_read_and_reread_when_it_changes(tmp_path, caplog):
    path = tmp_path / "token.jwt"
    first, second = make_token(subject="first"), make_token(subject="second-longer")
    path.write_text(first + "\n")
    auth, *_ = make_auth(gateway_settings(token_file=path))
    assert bearer(auth) == f"Bearer {first}"
    path.write_text(second)
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    with caplog.at_level(logging.INFO):
        assert bearer(auth) == f"Bearer {second}"
    assert "read a new token from" in caplog.text


def test_missing_token_file_warns_once_and_is_picked_up_later(tmp_path, caplog):
    path = tmp_path / "token.jwt"
    with caplog.at_level(logging.WARNING):
        auth, *_ = make_auth(gateway_settings(token_file=path))
        assert auth.scheme == "token"
        assert bearer(auth) is None
        assert bearer(auth) is None
    assert caplog.text.count("cannot read the token file") == 1
    token = make_token()
    path.write_text(token)
    assert bearer(auth) == f"Bearer {token}"


# --------------------------------------------------------------------------------------------
# Token: fetched from Enlighten, cached, reused, renewed


def test_token_is_fetched_from_enlighten_validated_and_cached(requests_mock, tmp_path):
    token = make_token()
    mock_enlighten(requests_mock, [token])
    mock_check_jwt(requests_mock, {token})
    auth, _, _, record = make_auth(cloud_settings(), state_dir=tmp_path)
    session = requests.Session()  # the gateway's: its TLS context accepts the self-signed certificate
    session.headers["X-Session"] = "gateway"

    auth.refresh(session, GATEWAY)  # fetched; the gateway is not asked before the first request
    assert len(requests_mock.request_history) == 2
    assert auth.on_unauthorized(session, GATEWAY)  # a 401 has it checked, then it is accepted

    login, tokens, check = requests_mock.request_history
    assert login.url == f"{ENLIGHTEN}/login/login.json"
    # Verified: True, or the CA bundle REQUESTS_CA_BUNDLE names (requests substitutes it for True)
    assert login.verify in (True, os.environ.get("REQUESTS_CA_BUNDLE"))
    assert dict(pair.split("=") for pair in login.text.split("&")) == {
        "user%5Bemail%5D": "owner%40example.net",
        "user%5Bpassword%5D": "cloud-pw-Zq81%21",
    }
    assert tokens.url == f"{ENTREZ}/tokens"
    assert tokens.verify == login.verify
    assert tokens.json() == {"session_id": "sid-77", "serial_num": SERIAL, "username": CLOUD_USER}
    assert check.headers["Authorization"] == f"Bearer {token}"
    # check_jwt goes on the gateway's session; Enlighten never does (it has its own, verifying)
    assert check.headers["X-Session"] == "gateway"
    assert "X-Session" not in login.headers and "X-Session" not in tokens.headers
    assert record.calls == [("enlighten_login", "200"), ("entrez_token", "200"), ("check_jwt", "200")]
    assert bearer(auth) == f"Bearer {token}"
    assert auth.token_expiry == NOW + 365 * DAY

    cache = tmp_path / "tokens" / f"{SERIAL}.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert json.loads(cache.read_text())["token"] == token
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temp file left behind


def test_a_failed_check_jwt_is_logged_with_its_reason(requests_mock, caplog):
    """A TLS failure says what the certificate check found, not just the exception's kind."""
    token = make_token()
    verification = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verification.verify_message = "self-signed certificate"
    requests_mock.get(f"{GATEWAY}/auth/check_jwt", exc=requests.exceptions.SSLError(verification))
    auth, _, _, record = make_auth(gateway_settings(token=Secret(token)))
    with caplog.at_level(logging.DEBUG, logger="envoy_exporter"):
        assert not auth.on_unauthorized(requests.Session(), GATEWAY)
    assert record.calls == [("check_jwt", "error")]
    assert "check_jwt failed: certificate rejected because of a self-signed certificate" in caplog.text
    assert token not in caplog.text


def test_cached_token_is_reused_after_a_restart_without_enlighten(requests_mock, tmp_path):
    token = make_token()
    mock_enlighten(requests_mock, [token])
    mock_check_jwt(requests_mock, {token})
    first, *_ = make_auth(cloud_settings(), state_dir=tmp_path)
    first.refresh(requests.Session(), GATEWAY)
    requests_mock.reset_mock()

    restarted, _, _, record = make_auth(cloud_settings(), state_dir=tmp_path)
    restarted.refresh(requests.Session(), GATEWAY)

    assert bearer(restarted) == f"Bearer {token}"
    assert restarted.token_expiry == NOW + 365 * DAY
    assert requests_mock.request_history == []  # used as it is: its first answer proves it
    assert record.count("enlighten_login") == 0


def test_expired_cache_is_not_used(requests_mock, tmp_path):
    cache = tmp_path / "tokens" / f"{SERIAL}.json"
    cache.parent.mkdir()
    cache.write_text(json.dumps({"token": make_token(lifetime_s=DAY, issued=NOW - 2 * DAY)}))
    fresh = make_token()
    mock_enlighten(requests_mock, [fresh])
    mock_check_jwt(requests_mock, {fresh})
    auth, *_ = make_auth(cloud_settings(), state_dir=tmp_path)
    assert bearer(auth) is None
    auth.refresh(requests.Session(), GATEWAY)
    assert bearer(auth) == f"Bearer {fresh}"


def test_given_token_beats_the_cache(tmp_path):
    cache = tmp_path / "tokens" / f"{SERIAL}.json"
    cache.parent.mkdir()
    cache.write_text(json.dumps({"token": make_token(subject="cached")}))
    given = make_token(subject="given")
    auth, *_ = make_auth(cloud_settings(token=Secret(given)), state_dir=tmp_path)
    assert bearer(auth) == f"Bearer {given}"


def test_token_is_renewed_ahead_of_expiry(requests_mock, tmp_path):
    old, new = (
        make_token(subject="old"),
        make_token(lifetime_s=365 * DAY, issued=NOW + 359 * DAY, subject="new"),
    )
    mock_enlighten(requests_mock, [old, new])
    mock_check_jwt(requests_mock, {old, new})
    auth, clock, wall, record = make_auth(cloud_settings(), state_dir=tmp_path)
    session = requests.Session()
    auth.refresh(session, GATEWAY)

    wall.now = NOW + 357 * DAY  # 8 days left: not yet
    clock.now += 357 * DAY
    auth.refresh(session, GATEWAY)
    assert record.count("entrez_token") == 1

    wall.now = NOW + 359 * DAY  # 6 days left
    clock.now += 2 * DAY
    auth.refresh(session, GATEWAY)
    assert record.count("entrez_token") == 2
    assert bearer(auth) == f"Bearer {new}"
    assert json.loads((tmp_path / "tokens" / f"{SERIAL}.json").read_text())["token"] == new


def test_short_lived_tokens_are_renewed_at_a_tenth_of_their_life(requests_mock):
    twelve_hours = 12 * 3600.0
    first = make_token(lifetime_s=twelve_hours, subject="one")
    second = make_token(lifetime_s=twelve_hours, issued=NOW + 11 * 3600, subject="two")
    mock_enlighten(requests_mock, [first, second])
    mock_check_jwt(requests_mock, {first, second})
    auth, clock, wall, record = make_auth(cloud_settings())
    session = requests.Session()
    auth.refresh(session, GATEWAY)
    wall.now = NOW + 10.5 * 3600  # 1.5 h left of 12: more than a tenth
    clock.now += 10.5 * 3600
    auth.refresh(session, GATEWAY)
    assert record.count("entrez_token") == 1
    wall.now = NOW + 11 * 3600  # 1 h left
    clock.now += 0.5 * 3600
    auth.refresh(session, GATEWAY)
    assert record.count("entrez_token") == 2


def test_given_token_near_expiry_only_warns(requests_mock, caplog):
    token = make_token(lifetime_s=365 * DAY, issued=NOW - 362 * DAY)
    mock_check_jwt(requests_mock, {token})
    auth, *_ = make_auth(gateway_settings(token=Secret(token)))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            auth.refresh(requests.Session(), GATEWAY)
    assert caplog.text.count("expires in 3.0 days and cannot be renewed") == 1
    assert not [r for r in requests_mock.request_history if "enlighten" in r.url or "entrez" in r.url]


# --------------------------------------------------------------------------------------------
# 401 recovery and back-off


def test_401_with_a_good_token_only_revalidates(requests_mock):
    token = make_token()
    mock_check_jwt(requests_mock, {token})
    auth, clock, _, record = make_auth(cloud_settings(token=Secret(token)))
    session = requests.Session()
    assert auth.on_unauthorized(session, GATEWAY) is True
    assert record.calls == [("check_jwt", "200")]
    # A 401 right after the gateway accepted the token is about the endpoint, not the token.
    assert auth.on_unauthorized(session, GATEWAY) is False
    assert record.calls == [("check_jwt", "200")]
    clock.now += 3600  # the session cookie may have expired since
    assert auth.on_unauthorized(session, GATEWAY) is True
    assert record.count("check_jwt") == 2


def test_401_with_a_rejected_token_fetches_a_new_one_once(requests_mock):
    stale, fresh = make_token(subject="stale"), make_token(subject="fresh")
    mock_enlighten(requests_mock, [fresh])
    mock_check_jwt(requests_mock, {fresh})
    auth, _, _, record = make_auth(cloud_settings(token=Secret(stale)))
    assert auth.on_unauthorized(requests.Session(), GATEWAY) is True
    assert bearer(auth) == f"Bearer {fresh}"
    assert record.calls == [
        ("check_jwt", "401"),
        ("enlighten_login", "200"),
        ("entrez_token", "200"),
        ("check_jwt", "200"),
    ]


def test_repeated_401s_back_off_exponentially_and_never_hammer_enlighten(requests_mock, caplog):
    mock_enlighten(requests_mock, [make_token(subject=str(n)) for n in range(20)])
    mock_check_jwt(requests_mock, set())  # the gateway accepts nothing
    auth, clock, _, record = make_auth(cloud_settings(token=Secret(make_token(subject="given"))))
    session = requests.Session()

    def scrape(requests_per_scrape: int = 10) -> None:
        for _ in range(requests_per_scrape):
            assert auth.on_unauthorized(session, GATEWAY) is False

    with caplog.at_level(logging.WARNING):
        scrape()
    assert record.count("enlighten_login") == 1
    assert record.count("check_jwt") == 2  # the given token, then the fetched one
    assert caplog.text.count("next attempt in 60 s") == 1

    clock.now += 59
    scrape()
    assert record.count("enlighten_login") == 1
    clock.now += 2
    scrape()
    # The window has passed, but Enlighten was asked 61 s ago: the token it issued then is tried
    # again rather than asking the account for another (at most once per 5 minutes).
    assert (record.count("enlighten_login"), record.count("entrez_token")) == (1, 1)
    clock.now += 61  # the delay has doubled to 120 s
    scrape()
    clock.now += 60
    scrape()
    assert (record.count("enlighten_login"), record.count("entrez_token")) == (1, 1)

    for _ in range(10):
        clock.now += BACKOFF_MAX_S
        scrape()
    assert auth.blocked_until() == clock.now + BACKOFF_MAX_S  # capped at an hour
    assert record.count("enlighten_login") == 11


def test_without_credentials_a_rejected_token_backs_off_too(requests_mock):
    mock_check_jwt(requests_mock, set())
    auth, clock, _, record = make_auth(gateway_settings(token=Secret(make_token())))
    for _ in range(5):
        assert auth.on_unauthorized(requests.Session(), GATEWAY) is False
    assert record.calls == [("check_jwt", "401")]
    assert "Enlighten credentials would allow" in (auth.last_error or "")
    clock.now += 61
    assert auth.on_unauthorized(requests.Session(), GATEWAY) is False
    # The request after the window got a 401 again: that says the token is still rejected,
    # without another check_jwt; the back-off doubles.
    assert record.count("check_jwt") == 1
    assert auth.blocked_until() == clock.now + 120


def test_a_new_token_file_ends_the_back_off(requests_mock, tmp_path):
    path = tmp_path / "token.jwt"
    path.write_text(make_token(subject="old"))
    fresh = make_token(subject="fresh-pasted")
    mock_check_jwt(requests_mock, {fresh})
    auth, *_ = make_auth(gateway_settings(token_file=path))
    assert auth.on_unauthorized(requests.Session(), GATEWAY) is False
    path.write_text(fresh)
    assert auth.on_unauthorized(requests.Session(), GATEWAY) is True


@pytest.mark.parametrize(
    ("failure", "recorded"),
    [
        ({"exc": requests.exceptions.ConnectTimeout}, ("enlighten_login", "timeout")),
        ({"exc": requests.exceptions.ConnectionError}, ("enlighten_login", "error")),
        ({"status_code": 500, "text": "<html>oops</html>"}, ("enlighten_login", "500")),
        ({"status_code": 200, "text": "<html>maintenance</html>"}, ("enlighten_login", "200")),
        ({"status_code": 200, "json": {"message": "no session"}}, ("enlighten_login", "200")),
    ],
)
def test_enlighten_outage_never_raises_and_backs_off(requests_mock, caplog, failure, recorded):
    requests_mock.post(f"{ENLIGHTEN}/login/login.json", **failure)
    auth, _, _, record = make_auth(cloud_settings())
    session = requests.Session()
    with caplog.at_level(logging.WARNING):
        for _ in range(2):  # the request is not sent: a TransportError for the client to record
            with pytest.raises(CredentialsWithheld, match="could not get a token from Enlighten"):
                auth.refresh(session, GATEWAY)
        assert auth.on_unauthorized(session, GATEWAY) is False
    assert record.calls == [recorded]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "could not get a token from Enlighten" in warnings[0].getMessage()
    assert bearer(auth) is None


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"status_code": 503}, "entrez_token: HTTP 503"),
        ({"text": "<html>not a token</html>"}, "entrez_token: the answer is not a JWT"),
    ],
)
def test_entrez_failure_is_an_outage_too(requests_mock, caplog, answer, reason):
    requests_mock.post(f"{ENLIGHTEN}/login/login.json", json={"session_id": "sid-1"})
    requests_mock.post(f"{ENTREZ}/tokens", **answer)
    auth, *_ = make_auth(cloud_settings())
    with caplog.at_level(logging.WARNING), pytest.raises(CredentialsWithheld):
        auth.refresh(requests.Session(), GATEWAY)
    assert f"could not get a token from Enlighten: {reason}" in caplog.text
    assert auth.token_expiry is None


def test_unwritable_state_dir_only_warns(requests_mock, tmp_path, caplog):
    blocker = tmp_path / "state"
    blocker.write_text("a file where a directory should be")
    token = make_token()
    mock_enlighten(requests_mock, [token])
    mock_check_jwt(requests_mock, {token})
    auth, *_ = make_auth(cloud_settings(), state_dir=blocker)
    with caplog.at_level(logging.WARNING):
        auth.refresh(requests.Session(), GATEWAY)
    assert bearer(auth) == f"Bearer {token}"
    assert "could not cache the token" in caplog.text


# --------------------------------------------------------------------------------------------
# Secrets stay out of the log


def test_no_secret_ever_reaches_the_log(requests_mock, tmp_path, caplog):
    stale, fresh = make_token(subject="stale-one"), make_token(subject="fresh-one")
    mock_enlighten(requests_mock, [fresh])
    mock_check_jwt(requests_mock, {fresh})
    # The stale token is rejected by check_jwt before any data request; a new one is fetched.
    requests_mock.get(f"{GATEWAY}/ivp/meters", json=[])
    settings = cloud_settings(token=Secret(stale), password=Secret("local-pw-55"))
    with caplog.at_level(logging.DEBUG):
        auth, *_ = make_auth(settings, state_dir=tmp_path)
        transport = Transport(settings, auth, Recorder())
        assert transport.get("meters", "/ivp/meters").status == 200
        legacy, *_ = make_auth(gateway_settings(username="installer"), info=INFO_LEGACY)
        legacy.on_unauthorized(requests.Session(), GATEWAY)
        transport.close()
    logged = caplog.text + " ".join(repr(r.args) for r in caplog.records)
    assert caplog.records
    for secret in (stale, fresh, CLOUD_PASSWORD, "local-pw-55", installer_password(SERIAL), "sid-77"):
        assert secret not in logged
    for token in (stale, fresh):  # not even a recognisable piece of one
        assert token.split(".")[2][-8:] not in logged


# --------------------------------------------------------------------------------------------
# End to end against the shared fake gateway and fake Enlighten (loopback)


@pytest.mark.e2e
@needs_shared
def test_enlighten_flow_against_the_fake_gateway(tmp_path, caplog):
    fake = load_fake_gateway()
    gateway = fake.Gateway(SHARED_FIXTURES / "7.6.175_standard")
    enlighten = fake.FakeEnlighten(email=CLOUD_USER, password=CLOUD_PASSWORD)
    enlighten.register(gateway)
    gateway_port, enlighten_port = gateway.start(), enlighten.start()
    try:
        settings = GatewaySettings(
            name=None,
            host=f"http://127.0.0.1:{gateway_port}",
            enlighten_username=CLOUD_USER,
            enlighten_password=Secret(CLOUD_PASSWORD),
            enlighten_url=f"http://127.0.0.1:{enlighten_port}",
            entrez_url=f"http://127.0.0.1:{enlighten_port}",
        )
        record = Recorder()
        with caplog.at_level(logging.DEBUG):
            auth = Auth(settings, tmp_path, record)
            transport = Transport(settings, auth, record)
            transport.get("info", "/info")
            auth.configure(GatewayInfo(serial=gateway.serial, firmware=gateway.firmware, web_tokens=True))
            body = transport.get("production_json", "/production.json").body
            transport.close()
        assert json.loads(body)["production"]
        assert [r["path"] for r in enlighten.requests] == ["/login/login.json", "/tokens"]
        # The token goes with the data request, whose answer proves it: no check_jwt first.
        assert [(r["path"], r["auth"]) for r in gateway.requests] == [
            ("/info", "none"),
            ("/production.json", "Bearer"),
        ]
        assert (
            auth.token_expiry == jwt.decode(enlighten.issued[0], options={"verify_signature": False})["exp"]
        )
        assert enlighten.issued[0] not in caplog.text and CLOUD_PASSWORD not in caplog.text

        # After a restart the cached token is used: Enlighten is not asked again.
        restarted = Auth(settings, tmp_path, record)
        again = Transport(settings, restarted, record)
        restarted.configure(GatewayInfo(serial=gateway.serial, firmware=gateway.firmware, web_tokens=True))
        assert again.get("production_json", "/production.json").status == 200
        again.close()
        assert len(enlighten.requests) == 2
    finally:
        gateway.stop()
        enlighten.stop()


@pytest.mark.e2e
@needs_shared
def test_digest_against_the_fake_legacy_gateway():
    fake = load_fake_gateway()
    gateway = fake.Gateway(SHARED_FIXTURES / "5.0.62")
    port = gateway.start()
    try:
        settings = GatewaySettings(name=None, host=f"http://127.0.0.1:{port}")
        auth = Auth(settings, None, Recorder())
        transport = Transport(settings, auth, Recorder())
        transport.get("info", "/info")
        auth.configure(GatewayInfo(serial=gateway.serial, firmware=gateway.firmware))
        assert transport.get("meters", "/ivp/meters").status == 200
        wrong = GatewaySettings(name=None, host=settings.host, password=Secret("000000"))
        wrong_auth = Auth(wrong, None, Recorder())
        wrong_auth.configure(GatewayInfo(serial=gateway.serial, firmware=gateway.firmware))
        with pytest.raises(TransportError) as failure:
            Transport(wrong, wrong_auth, Recorder()).get("meters", "/ivp/meters")
        assert (failure.value.outcome, failure.value.status) == (Outcome.UNAUTHORIZED, 401)
        transport.close()
    finally:
        gateway.stop()


def test_what_needs_credentials_is_the_auths_to_say() -> None:
    """The client and the transport ask ``protects`` and ``bearer``; neither compares scheme names."""
    digest, *_ = make_auth(gateway_settings(), info=INFO_LEGACY)
    assert digest.protects(METERS) and not digest.protects(PRODUCTION_JSON) and not digest.bearer
    token, *_ = make_auth(gateway_settings(token=Secret(make_token())))
    assert token.protects(METERS) and token.protects(PRODUCTION_JSON) and token.bearer
