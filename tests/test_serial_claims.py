"""Which gateway may hold a serial's tokens: claims injected, never a registry of the process."""

from __future__ import annotations

import gc

from envoy_exporter.gateway.auth import serial_claims
from envoy_exporter.gateway.auth.serial_claims import CONFIGURED, DISCOVERED, SerialClaims


class Owner:
    """Stands in for a gateway's token keeper."""


def test_two_hosts_of_one_rank_stand_against_each_other_until_one_lets_go() -> None:
    claims, a, b = SerialClaims(), Owner(), Owner()
    claims.claim("122302045041", a, "192.0.2.10", rank=CONFIGURED)
    claims.claim("122302045041", b, "192.0.2.11", rank=CONFIGURED)
    assert claims.rival("122302045041", a) == "192.0.2.11"
    assert claims.rival("122302045041", b) == "192.0.2.10"
    claims.release(b)
    assert claims.rival("122302045041", a) is None


def test_a_new_claim_ends_the_owners_earlier_one() -> None:
    claims, moved, other = SerialClaims(), Owner(), Owner()
    claims.claim("122302045041", moved, "192.0.2.10", rank=CONFIGURED)
    claims.claim("122302045041", other, "192.0.2.11", rank=CONFIGURED)
    claims.claim("122302045042", moved, "192.0.2.10", rank=CONFIGURED)  # /info showed another gateway
    assert claims.rival("122302045041", other) is None
    assert claims.rival("122302045042", moved) is None
    claims.claim("122302045042", other, "192.0.2.11", rank=CONFIGURED)
    assert claims.rival("122302045042", moved) == "192.0.2.11"
    claims.release(other)
    assert claims.rival("122302045042", moved) is None


def test_an_announcement_never_outranks_the_configuration() -> None:
    claims, configured, found = SerialClaims(), Owner(), Owner()
    claims.claim("122302045041", configured, "192.0.2.10", rank=CONFIGURED)
    claims.claim("122302045041", found, "192.0.2.11", rank=DISCOVERED)
    assert claims.rival("122302045041", configured) is None
    assert claims.rival("122302045041", found) == "192.0.2.10"


def test_an_owner_that_is_gone_is_no_rival() -> None:
    claims, kept, dropped = SerialClaims(), Owner(), Owner()
    claims.claim("122302045041", kept, "192.0.2.10", rank=CONFIGURED)
    claims.claim("122302045041", dropped, "192.0.2.11", rank=CONFIGURED)
    del dropped
    gc.collect()
    assert claims.rival("122302045041", kept) is None


def test_exporters_in_one_process_do_not_share_claims() -> None:
    one, other, a, b = SerialClaims(), SerialClaims(), Owner(), Owner()
    one.claim("122302045041", a, "192.0.2.10", rank=CONFIGURED)
    other.claim("122302045041", b, "192.0.2.11", rank=CONFIGURED)
    assert one.rival("122302045041", a) is None
    assert not [value for value in vars(serial_claims).values() if isinstance(value, SerialClaims)]
