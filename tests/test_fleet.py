"""``Fleet``: the registry of gateways, found by label or host, kept across reloads."""

from __future__ import annotations

import threading

import pytest
from exporter_fakes import FakeClient

from envoy_exporter.config.settings import GatewaySettings
from envoy_exporter.fleet.labels import Labels
from envoy_exporter.fleet.registry import Fleet
from envoy_exporter.gateway.client import GatewayClient


def made_fleet(*gateways: GatewaySettings) -> tuple[Fleet, list[FakeClient]]:
    made: list[FakeClient] = []

    def make(settings: GatewaySettings) -> FakeClient:
        made.append(FakeClient(settings.label))
        return made[-1]

    return Fleet(gateways, make), made


HOME = GatewaySettings(name="home", host="https://192.0.2.10")
BARN = GatewaySettings(name=None, host="192.0.2.11")


def test_finds_targets_by_label_or_configured_host() -> None:
    fleet, (home, barn) = made_fleet(HOME, BARN)
    assert fleet.find("home") is home
    assert fleet.find("https://192.0.2.10") is home
    assert fleet.find("192.0.2.11") is barn  # no name: its label is its host until /info
    assert fleet.find("192.0.2.10") is None
    assert fleet.find("elsewhere") is None
    assert fleet.clients() == [home, barn]
    assert fleet.settings() == [HOME, BARN]


def test_a_configured_host_wins_over_a_label_a_gateway_reported() -> None:
    # An unnamed gateway is labelled by the serial its /info reports; one reporting "envoy" must
    # not take /probe?target=envoy from the gateway configured at host envoy.
    impostor = GatewaySettings(name=None, host="192.0.2.13")
    real = GatewaySettings(name=None, host="envoy")
    clients = {impostor.host: FakeClient("envoy"), real.host: FakeClient("122302045041")}
    fleet = Fleet([impostor, real], lambda settings: clients[settings.host])
    assert fleet.find("envoy") is clients["envoy"]
    assert fleet.find("122302045041") is clients["envoy"]


def test_a_gateway_is_found_by_its_label_after_it_changed() -> None:
    # An unnamed gateway goes by its host, then by the serial its /info reports: /probe finds
    # it under the label it has now, and not under one it had.
    fleet, (_, barn) = made_fleet(HOME, BARN)
    assert fleet.find("192.0.2.11") is barn
    barn.name = "122302045041"
    assert fleet.find("122302045041") is barn
    barn.name = "122302045042"
    assert fleet.find("122302045041") is None
    assert fleet.find("122302045042") is barn
    assert fleet.find("192.0.2.11") is barn  # the configured host finds it all along


def test_apply_tells_when_it_closed_clients() -> None:
    # The freezer sweeps what a reload dropped: told only when clients were closed.
    told: list[int] = []
    fleet = Fleet([HOME, BARN], lambda s: FakeClient(s.label), closed=lambda: told.append(1))
    fleet.apply([HOME, BARN])
    assert told == []
    fleet.apply([HOME])
    assert told == [1]


def test_apply_keeps_unchanged_gateways_and_replaces_the_rest() -> None:
    fleet, made = made_fleet(HOME, BARN)
    home, barn = made
    shed = GatewaySettings(name="shed", host="192.0.2.12")
    moved = GatewaySettings(name="home", host="https://192.0.2.20")
    fleet.apply([shed, HOME])
    assert fleet.clients()[1] is home and not home.closed  # same settings: cache, token, data kept
    assert barn.closed and fleet.find("192.0.2.11") is None
    assert fleet.clients()[0] is made[2] and made[2].name == "shed"
    fleet.apply([moved, shed])
    assert home.closed and fleet.find("home") is made[3]  # same label, new settings: a new client
    assert fleet.settings() == [moved, shed]
    fleet.apply([])
    assert all(client.closed for client in made)


def test_apply_is_safe_beside_readers() -> None:
    fleet, made = made_fleet(HOME, BARN)
    stop = threading.Event()
    seen: list[int] = []

    def read() -> None:
        while not stop.is_set():
            seen.append(len(fleet.clients()))

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(200):
        fleet.apply([HOME])
        fleet.apply([HOME, BARN])
    stop.set()
    reader.join(5)
    assert set(seen) <= {1, 2}
    assert fleet.clients()[0] is made[0]


def test_labels_go_to_the_first_claimant_and_a_configured_label_is_taken_over() -> None:
    labels = Labels()
    first, second, replacement = object(), object(), object()
    assert labels.claim("999012345678", first, "192.0.2.10") is None
    assert labels.claim("999012345678", second, "192.0.2.11") == "192.0.2.10"
    # a reload replaces the client of a configured gateway before it closes the old one
    assert labels.claim("999012345678", replacement, "192.0.2.10", take=True) is None
    labels.release(first)
    assert labels.claim("999012345678", second, "192.0.2.11") == "192.0.2.10"
    labels.release(replacement)
    assert labels.claim("999012345678", second, "192.0.2.11") is None


def test_a_label_taken_over_stays_with_the_new_holder_when_the_old_one_claims_another() -> None:
    labels = Labels()
    old, new, other = object(), object(), object()
    assert labels.claim("999012345678", old, "192.0.2.10") is None
    assert labels.claim("999012345678", new, "192.0.2.10", take=True) is None
    assert labels.claim("999012345679", old, "192.0.2.10") is None  # frees nothing of new's
    assert labels.claim("999012345678", other, "192.0.2.12") == "192.0.2.10"
    labels.release(old)
    assert labels.claim("999012345679", other, "192.0.2.12") is None
    assert labels.claim("999012345678", other, "192.0.2.12") == "192.0.2.10"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (  # a gateway configured by serial (as discovery configures them) moves to another address
            GatewaySettings(name=None, serial="999012345678", host="192.0.2.10"),
            GatewaySettings(name=None, serial="999012345678", host="192.0.2.20"),
        ),
        (  # a named gateway whose settings change
            GatewaySettings(name="999012345678", host="192.0.2.10"),
            GatewaySettings(name="999012345678", host="192.0.2.10", timeout=5.0),
        ),
    ],
    ids=["serial", "name"],
)
def test_a_reloaded_gateway_keeps_its_label_held(before, after) -> None:
    # Fleet.apply makes the new client before it closes the old one: the new one must hold the
    # label when the old one lets go, or an unnamed gateway reporting that serial would take it
    # and its series would be served twice.
    labels = Labels()
    fleet = Fleet([before], lambda settings: GatewayClient(settings, None, labels=labels))
    (old,) = fleet.clients()
    fleet.apply([after])
    (new,) = fleet.clients()
    assert new is not old
    intruder = object()
    try:
        assert labels.claim("999012345678", intruder, "192.0.2.99") == after.host
    finally:
        fleet.apply([])
    assert labels.claim("999012345678", intruder, "192.0.2.99") is None  # removed: the label is free
