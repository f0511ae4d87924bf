"""``--web.config.file``: TLS, client certificates and basic auth, on loopback.

Certificates are made for each test run with the ``openssl`` command (a CA, a server certificate
for 127.0.0.1, a client certificate from the same CA and one from a stranger CA); the tests skip
when it is absent.
"""

from __future__ import annotations

import base64
import http.client
import shutil
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import bcrypt
import pytest
from conftest import ROOT
from exporter_fakes import FakeClient
from test_config_hostile import billion_laughs

from envoy_exporter.config.safe_yaml import MAX_BYTES, MAX_DEPTH, MAX_NODES
from envoy_exporter.config.settings import GatewaySettings
from envoy_exporter.fleet.registry import Fleet
from envoy_exporter.web.server import ExporterServer, make_server
from envoy_exporter.web.webconfig import BCRYPT_SLOTS, Verdict, WebConfig, WebConfigError, load_web_config

pytestmark = pytest.mark.e2e

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")

PASSWORD = "correct horse"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()  # cheap rounds for tests


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(directory: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=directory,
    )  # fmt: skip


def _signed(directory: Path, name: str, ca: str, extensions: str) -> None:
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory,
    )  # fmt: skip
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=directory,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    d = tmp_path_factory.mktemp("pki")
    _ca(d, "ca")
    _ca(d, "stranger-ca")
    _signed(d, "server", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _signed(d, "client", "ca", "extendedKeyUsage=clientAuth\n")
    _signed(d, "stranger", "stranger-ca", "extendedKeyUsage=clientAuth\n")
    return d


def _serve(path: Path) -> ExporterServer:
    fleet = Fleet([GatewaySettings(name="home", host="http://home.example")], lambda s: FakeClient(s.label))
    server = make_server("127.0.0.1:0", fleet, web_config=load_web_config(path))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    server.ready.set()
    return server


def _stop(server: ExporterServer) -> None:
    server.shutdown()
    server.server_close()


def _get(server: ExporterServer, path: str = "/metrics", headers=None, context=None):
    host, port = server.server_address[:2]
    if context is None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
    else:
        conn = http.client.HTTPSConnection(host, port, timeout=10, context=context)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _client_context(pki: Path, cert: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert:
        context.load_cert_chain(pki / f"{cert}.crt", pki / f"{cert}.key")
    return context


# --------------------------------------------------------------------------------------------
# Basic auth


@pytest.fixture
def with_users(tmp_path) -> ExporterServer:
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  prometheus: '{HASH}'\n")
    server = _serve(path)
    yield server
    _stop(server)


def test_bcrypt_is_loaded_only_to_check_a_password():
    # The server without users in its web configuration never checks a password.
    code = (
        "import sys, envoy_exporter.cli, envoy_exporter.web.server, envoy_exporter.web.webconfig as w;"
        "assert w.WebConfig().check(None) is w.Verdict.ALLOWED;"
        "print('bcrypt' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_no_credentials_get_401_and_a_challenge(with_users):
    status, headers, _ = _get(with_users)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    "headers",
    [
        _basic("prometheus", "wrong"),
        _basic("prometheus", PASSWORD + " "),
        _basic("nobody", PASSWORD),
        _basic("prometheus", PASSWORD + "x" * 80),
        {"Authorization": "Bearer " + PASSWORD},
        {"Authorization": "Basic not-base64!"},
    ],
)
def test_wrong_credentials_get_401(with_users, headers):
    assert _get(with_users, headers=headers)[0] == 401


def test_the_right_password_gets_200_on_every_page(with_users):
    status, _, body = _get(with_users, headers=_basic("prometheus", PASSWORD))
    assert status == 200 and b'enphase_up{gateway="home"} 1.0' in body
    for path in ("/", "/probe?target=home", "/-/healthy"):
        assert _get(with_users, path, headers=_basic("prometheus", PASSWORD))[0] == 200
        assert _get(with_users, path)[0] == 401


class SlowChecks:
    """``bcrypt`` as slow as a real cost factor makes it, counting how many checks overlap."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.running = self.most = self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        with self.lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        threading.Event().wait(self.seconds)
        with self.lock:
            self.running -= 1
        return bcrypt.checkpw(password, hashed)


def test_guessers_get_at_most_the_bcrypt_slots_and_the_authorised_client_none(monkeypatch, with_users):
    checks = SlowChecks(0.3)
    monkeypatch.setattr("envoy_exporter.web.webconfig._checkpw", checks)
    assert _get(with_users, headers=_basic("prometheus", PASSWORD))[0] == 200  # verified once
    statuses: list[int] = []

    def guess(n: int) -> None:
        for i in range(3):
            statuses.append(_get(with_users, "/-/healthy", headers=_basic("prometheus", f"guess-{n}-{i}"))[0])

    guessers = [threading.Thread(target=guess, args=(n,)) for n in range(16)]
    for g in guessers:
        g.start()
    calls_before = checks.calls
    authorised = [_get(with_users, "/-/healthy", headers=_basic("prometheus", PASSWORD))[0] for _ in range(5)]
    calls_by_authorised = checks.calls - calls_before
    for g in guessers:
        g.join()
    assert checks.most == BCRYPT_SLOTS == 1  # was 16: one bcrypt per guessing client at once
    assert authorised == [200] * 5
    assert calls_by_authorised <= 1  # any call in that window was a guesser's, never its own
    assert set(statuses) <= {401, 429} and statuses.count(429) > 0 and statuses.count(401) > 0


def test_a_busy_check_is_never_taken_for_a_success():
    config = WebConfig(users={"bob": bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4))})
    config._slots.acquire()  # every slot taken by checks in flight
    try:
        assert config.check(_basic("bob", "right")["Authorization"]) is Verdict.BUSY
        assert config.check(_basic("bob", "wrong")["Authorization"]) is Verdict.BUSY
    finally:
        config._slots.release()
    assert config.check(_basic("bob", "wrong")["Authorization"]) is Verdict.DENIED
    assert config.check(_basic("bob", "right")["Authorization"]) is Verdict.ALLOWED


# --------------------------------------------------------------------------------------------
# TLS


def _tls_config(tmp_path: Path, pki: Path, extra: str = "") -> Path:
    path = tmp_path / "web.yml"
    path.write_text(
        f"tls_server_config:\n  cert_file: {pki / 'server.crt'}\n  key_file: {pki / 'server.key'}\n{extra}"
    )
    return path


@needs_openssl
def test_tls_without_client_certificates(tmp_path, pki):
    server = _serve(_tls_config(tmp_path, pki))
    try:
        assert server.url.startswith("https://127.0.0.1:")
        status, _, body = _get(server, context=_client_context(pki))
        assert status == 200 and b"enphase_up" in body
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            _get(server)  # plain http to a TLS port gets nothing
        assert _get(server, "/-/healthy", context=_client_context(pki))[0] == 200  # and it lives on
    finally:
        _stop(server)


@needs_openssl
def test_a_client_certificate_where_asked(tmp_path, pki):
    extra = f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki / 'ca.crt'}\n"
    server = _serve(_tls_config(tmp_path, pki, extra))
    try:
        status, _, body = _get(server, context=_client_context(pki, "client"))
        assert status == 200 and b"enphase_up" in body
        for refused in (None, "stranger"):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                _get(server, context=_client_context(pki, refused))
        assert _get(server, context=_client_context(pki, "client"))[0] == 200
    finally:
        _stop(server)


@needs_openssl
def test_a_client_certificate_if_given(tmp_path, pki):
    extra = f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {pki / 'ca.crt'}\n"
    server = _serve(_tls_config(tmp_path, pki, extra))
    try:
        assert _get(server, context=_client_context(pki))[0] == 200
        assert _get(server, context=_client_context(pki, "client"))[0] == 200
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _get(server, context=_client_context(pki, "stranger"))
    finally:
        _stop(server)


@needs_openssl
def test_min_version(tmp_path, pki):
    server = _serve(_tls_config(tmp_path, pki, "  min_version: TLS13\n"))
    try:
        old = _client_context(pki)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _get(server, context=old)
        assert _get(server, context=_client_context(pki))[0] == 200
    finally:
        _stop(server)


@needs_openssl
def test_tls_and_basic_auth_together_with_headers(tmp_path, pki):
    extra = f"basic_auth_users:\n  prometheus: '{HASH}'\nhttp_server_config:\n  headers:\n"
    extra += "    X-Frame-Options: deny\n"
    server = _serve(_tls_config(tmp_path, pki, extra))
    try:
        assert _get(server, context=_client_context(pki))[0] == 401
        status, headers, _ = _get(
            server, headers=_basic("prometheus", PASSWORD), context=_client_context(pki)
        )
        assert status == 200 and headers["X-Frame-Options"] == "deny"
    finally:
        _stop(server)


# --------------------------------------------------------------------------------------------
# The file itself


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("tls_server_config:\n  key_file: a.key\n", "tls_server_config.cert_file"),
        ("tls_server_config:\n  cert_file: a.crt\n", "tls_server_config.key_file"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n", "cipher_suites"),
        ("basic_auth_users:\n  bob: plain-password\n", "basic_auth_users.bob"),
        ("basic_auth_users: [bob]\n", "basic_auth_users"),
        ("basic_auth_user:\n  bob: x\n", "basic_auth_user"),
        ("http_server_config:\n  headers:\n    Set-Cookie: a=b\n", "http_server_config.headers.Set-Cookie"),
    ],
)
def test_bad_files_name_the_key(tmp_path, text, key):
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(WebConfigError, match=key.replace(".", r"\.")):
        load_web_config(path)


@needs_openssl
@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("  client_auth_type: RequestClientCert\n", "client_auth_type"),
        ("  client_auth_type: RequireAndVerifyClientCert\n", "client_ca_file"),
        ("  client_auth_type: Sometimes\n", "client_auth_type"),
        ("  min_version: TLS14\n", "min_version"),
    ],
)
def test_bad_tls_settings_name_the_key(tmp_path, pki, extra, key):
    with pytest.raises(WebConfigError, match=key):
        load_web_config(_tls_config(tmp_path, pki, extra))


def test_check_config_checks_the_web_config_too(tmp_path):
    config, web = tmp_path / "exporter.yml", tmp_path / "web.yml"
    config.write_text("gateways:\n  - name: home\n    host: 192.0.2.10\n")
    web.write_text(f"basic_auth_users:\n  prometheus: '{HASH}'\n")
    command = [sys.executable, "-m", "envoy_exporter", "--check-config", "--config.file", str(config)]
    proc = subprocess.run(
        [*command, "--web.config.file", str(web)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and f"{web}: OK" in proc.stdout
    web.write_text("tls_server_config:\n  cert_file: nowhere.crt\n  key_file: nowhere.key\n")
    proc = subprocess.run(
        [*command, "--web.config.file", str(web)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "tls_server_config.cert_file" in proc.stderr


def test_the_flag_refuses_a_bad_file_with_exit_2(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text("basic_auth_users:\n  bob: plain-password\n")
    proc = subprocess.run(
        [sys.executable, "-m", "envoy_exporter", "--demo", "--web.config.file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "basic_auth_users.bob" in proc.stderr


@pytest.fixture
def shipped_example(tmp_path, pki) -> Path:
    """The shipped web-config.yml, beside the certificate files its relative paths name."""
    shutil.copy(ROOT / "web-config.yml", tmp_path / "web-config.yml")
    for name, source in (
        ("server.crt", "server.crt"),
        ("server.key", "server.key"),
        ("clients-ca.crt", "ca.crt"),
    ):
        shutil.copy(pki / source, tmp_path / name)
    return tmp_path / "web-config.yml"


def test_the_shipped_example_loads(shipped_example):
    config = load_web_config(shipped_example)
    assert config.tls is not None and config.tls.verify_mode == ssl.CERT_REQUIRED
    assert config.check(_basic("prometheus", "change-me")["Authorization"]) is Verdict.ALLOWED
    assert config.check(_basic("prometheus", "changeme")["Authorization"]) is Verdict.DENIED


@pytest.mark.skipif(shutil.which("promtool") is None, reason="no promtool")
def test_promtool_accepts_the_shipped_example(shipped_example):
    proc = subprocess.run(
        ["promtool", "check", "web-config", str(shipped_example)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_password_past_bcrypts_72_bytes_is_refused_not_truncated():
    long = b"a" * 72
    config = WebConfig(users={"bob": bcrypt.hashpw(long, bcrypt.gensalt(rounds=4))})
    assert config.check(_basic("bob", long.decode())["Authorization"]) is Verdict.ALLOWED
    assert config.check(_basic("bob", (long + b"tail").decode())["Authorization"]) is Verdict.DENIED


# The web configuration is read by the same bounded YAML loader as the exporter's own file
# (safe_yaml): a hostile file is one line naming the file, never a hang, a crash or a traceback.
WEB_HOSTILE = {
    "billion_laughs": (billion_laughs(), f"aliases expand to more than {MAX_NODES} nodes"),
    "deep_flow": (
        "basic_auth_users: " + "[" * 20_000 + "]" * 20_000 + "\n",
        f"nested deeper than {MAX_DEPTH}",
    ),
    "recursive_alias": ("basic_auth_users: &u {bob: *u}\n", "an alias refers to its own anchor"),
    "no_such_date": ("tls_server_config:\n  min_version: 2001-02-30\n", "(ValueError)"),
    "python_tag": ("basic_auth_users: !!python/object/apply:os.system [true]\n", "could not determine"),
}


@pytest.mark.parametrize("case", sorted(WEB_HOSTILE))
def test_hostile_yaml_is_refused_like_the_exporters_own_file(tmp_path, case):
    text, reason = WEB_HOSTILE[case]
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and reason in message and "\n" not in message


def test_an_oversized_web_config_is_refused(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text("#" * (MAX_BYTES + 1))
    with pytest.raises(WebConfigError, match="larger than 1024 KiB"):
        load_web_config(path)


def test_the_flag_refuses_hostile_yaml_with_exit_2_and_one_line(tmp_path):
    config, web = tmp_path / "exporter.yml", tmp_path / "web.yml"
    config.write_text("gateways:\n  - name: home\n    host: 192.0.2.10\n")
    web.write_text(WEB_HOSTILE["deep_flow"][0])
    proc = subprocess.run(
        [sys.executable, "-m", "envoy_exporter", "--config.file", str(config), "--web.config.file", str(web)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr == (
        f"envoy-exporter: web configuration error: {web}: line 1: nested deeper than {MAX_DEPTH} levels\n"
    )
