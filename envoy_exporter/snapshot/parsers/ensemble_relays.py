"""The system controller's relays besides the mains: ``/ivp/ensemble/dry_contacts`` (load
control), how they are set up (``/ivp/ss/dry_contact_settings``) and ``/ivp/ensemble/generator``.

Both exist only where an IQ System Controller (Enpower) or Meter Collar is installed; gateways
without one answer ``{"error": "404 - Not Found"}`` with status 404.
"""

from __future__ import annotations

from envoy_exporter.snapshot.model import DryContact, DryContactSetting, Generator
from envoy_exporter.snapshot.parsers import ParseError
from envoy_exporter.snapshot.parsers._json import (
    as_bool,
    as_percent,
    as_str,
    expect_dict,
    expect_list,
    load_json,
)

# Relay states as the gateway writes them: "closed" in dry contacts, "close" in the generator.
_CLOSED = frozenset({"close", "closed"})
_OPEN = frozenset({"open", "opened"})


def parse_dry_contacts(body: bytes) -> tuple[DryContact, ...]:
    data = expect_dict(load_json(body), "dry_contacts")
    entries = data.get("dry_contacts")
    if entries is None:
        raise ParseError("dry_contacts answer has no 'dry_contacts' list")
    contacts: dict[str, DryContact] = {}
    for raw in expect_list(entries, "dry_contacts"):
        entry = expect_dict(raw, "dry contact")
        contact = as_str(entry.get("id"), "dry contact id")
        closed = _relay(as_str(entry.get("status"), f"dry contact {contact}.status"))
        # Without an id the contact cannot be labelled; an unknown status is not reported.
        if contact and closed is not None and contact not in contacts:
            contacts[contact] = DryContact(contact=contact, closed=closed)
    return tuple(contacts.values())


def parse_dry_contact_settings(body: bytes) -> tuple[DryContactSetting, ...]:
    """What each contact switches (``type``), how (``mode``: by hand, or by the batteries' state of
    charge), and the state of charge below which it sheds and above which it restores, in percent.
    Gateways without a system controller answer an empty list (firmware 3)."""
    data = load_json(body)
    if data == []:
        return ()
    entries = expect_dict(data, "dry_contact_settings").get("dry_contacts")
    if entries is None:
        raise ParseError("dry_contact_settings answer has no 'dry_contacts' list")
    settings: dict[str, DryContactSetting] = {}
    for raw in expect_list(entries, "dry_contacts"):
        entry = expect_dict(raw, "dry contact setting")
        contact = as_str(entry.get("id"), "dry contact id")
        if not contact or contact in settings:
            continue
        kind = as_str(entry.get("type"), f"{contact}.type")
        mode = as_str(entry.get("mode"), f"{contact}.mode")
        settings[contact] = DryContactSetting(
            contact=contact,
            kind=kind.lower() if kind else None,
            mode=mode.lower() if mode else None,
            soc_low_ratio=as_percent(entry.get("soc_low"), f"{contact}.soc_low"),
            soc_high_ratio=as_percent(entry.get("soc_high"), f"{contact}.soc_high"),
        )
    return tuple(settings.values())


def parse_generator(body: bytes) -> Generator:
    data = expect_dict(load_json(body), "generator")
    if "present" not in data and "oper_state" not in data:
        raise ParseError("generator answer has neither 'present' nor 'oper_state'")
    present = as_bool(data.get("present"), "generator.present")
    relay = _relay(as_str(data.get("oper_state"), "generator.oper_state"))
    # Without a generator the gateway still answers an "open" oper_state (8.2.4345, 8.3.1598):
    # the relay of a generator that is not there is no state, so it is not reported.
    return Generator(present=present, relay_closed=None if present is False else relay)


def _relay(state: str | None) -> bool | None:
    if state is None:
        return None
    state = state.lower()
    if state in _CLOSED:
        return True
    return False if state in _OPEN else None
