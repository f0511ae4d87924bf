"""Why a request failed, in words a person acts on: connection refused, no such host, timed out
after N s, the certificate and why it was rejected; real failures on loopback where one can be
had, and the exceptions requests and urllib3 raise where the network would be needed."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
import requests
import urllib3.exceptions
from conftest import free_port

from envoy_exporter.gateway.endpoints import BY_KEY
from envoy_exporter.gateway.net.errors import DeadlineExceeded, ResponseTooLarge, failure_reason


def get(url: str, timeout: float) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False  # loopback only: no proxy from the environment
        return session.get(url, timeout=timeout)


def test_a_port_nobody_listens_on_is_connection_refused():
    with pytest.raises(requests.ConnectionError) as caught:
        get(f"http://127.0.0.1:{free_port()}/info", timeout=5)
    assert failure_reason(caught.value) == "connection refused"


@pytest.mark.e2e
def test_a_gateway_that_accepts_and_says_nothing_timed_out_after_the_timeout():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(requests.Timeout) as caught:
            get(f"http://127.0.0.1:{port}/info", timeout=0.3)
    assert failure_reason(caught.value, timeout=0.3) == "timed out after 0.3 s"


def test_a_name_that_does_not_resolve_is_no_such_host():
    # What urllib3 raises for a failed lookup, wrapped as requests wraps it (no DNS asked here).
    lookup = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    resolution = urllib3.exceptions.NameResolutionError("envoy.invalid", None, lookup)
    pool = urllib3.exceptions.MaxRetryError(None, "/info", resolution)
    assert failure_reason(requests.ConnectionError(pool)) == "no such host"


def test_a_rejected_certificate_says_why():
    verification = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verification.verify_message = "self-signed certificate"
    error = requests.exceptions.SSLError(urllib3.exceptions.SSLError(verification))
    assert failure_reason(error) == "certificate rejected because of a self-signed certificate"


def test_a_tls_handshake_that_fails_otherwise():
    tls = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    tls.reason = "WRONG_VERSION_NUMBER"
    error = requests.exceptions.SSLError(urllib3.exceptions.SSLError(tls))
    assert failure_reason(error) == "TLS handshake failed (WRONG_VERSION_NUMBER)"


@pytest.mark.e2e
def test_a_connection_the_gateway_drops():
    def drop(server: socket.socket) -> None:
        connection, _ = server.accept()
        connection.recv(1024)
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        connection.close()  # with linger 0: a reset

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        threading.Thread(target=drop, args=(server,), daemon=True).start()
        with pytest.raises(requests.ConnectionError) as caught:
            get(f"http://127.0.0.1:{server.getsockname()[1]}/info", timeout=5)
    assert failure_reason(caught.value) in (
        "connection reset by the gateway",
        "the gateway closed the connection",
    )


def test_bounds_say_which_bound():
    assert (
        failure_reason(ResponseTooLarge("the answer is over 65536 bytes")) == "the answer is over 65536 bytes"
    )
    assert (
        failure_reason(DeadlineExceeded("no whole answer within 10 s"), timeout=10) == "timed out after 10 s"
    )


def test_words_never_repeat_the_kind_of_exception():
    reason = failure_reason(requests.ConnectionError("boom"))
    assert "Error" not in reason and "(" not in reason


def test_every_endpoint_has_a_name_in_words():
    names = {endpoint.key: endpoint.title for endpoint in BY_KEY.values()}
    assert [key for key, title in names.items() if not title or "_" in title] == []
    assert names["api_v1_inverters"] == "inverter list"
