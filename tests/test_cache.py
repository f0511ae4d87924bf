"""``gateway.cache``: TTLs per endpoint family and single-flight collections."""

from __future__ import annotations

import threading

import pytest
from conftest import Clock

from envoy_exporter.gateway.cache import SingleFlight, TTLCache


def test_entry_lives_for_its_familys_ttl() -> None:
    clock = Clock()
    cache = TTLCache({"readings": 5.0, "inventory": 300.0}, clock)
    cache.put("meter_readings", "readings", "r")
    cache.put("inventory", "inventory", "i")
    clock.now += 4.9
    assert cache.get("meter_readings").value == "r"
    clock.now += 0.1
    assert cache.get("meter_readings") is None
    assert cache.get("inventory").value == "i"
    assert cache.get("inventory").fetched_at == 1000.0


@pytest.mark.parametrize("ttls", [{"production": 0.0}, {}], ids=["ttl 0", "unknown family"])
def test_ttl_zero_or_unknown_family_is_not_cached(ttls) -> None:
    cache = TTLCache(ttls, Clock())
    cache.put("production_json", "production", "p")
    assert cache.get("production_json") is None


def test_put_with_ttl_zero_drops_an_older_entry_and_clear_empties() -> None:
    clock = Clock()
    cache = TTLCache({"a": 10.0, "b": 0.0}, clock)
    cache.put("k", "a", 1)
    cache.put("k", "b", 2)
    assert cache.get("k") is None
    cache.put("k", "a", 3)
    cache.clear()
    assert cache.get("k") is None


def test_single_flight_shares_one_run_among_concurrent_callers() -> None:
    started, release = threading.Event(), threading.Event()
    runs = []

    def work() -> int:
        runs.append(1)
        started.set()
        release.wait(5)
        return len(runs)

    flight = SingleFlight(work)
    first = flight.submit()
    assert started.wait(5)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(flight.submit().result(5))) for _ in range(9)]
    for t in threads:
        t.start()
    release.set()
    for t in threads:
        t.join(5)
    assert first.result(5) == 1
    assert results == [1] * 9
    assert len(runs) == 1
    # the next call after the run finished starts a new one
    assert flight.submit().result(5) == 2


def test_single_flight_hands_an_exception_to_the_callers_and_recovers() -> None:
    calls = []

    def work() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return "ok"

    flight = SingleFlight(work)
    with pytest.raises(RuntimeError, match="boom"):
        flight.submit().result(5)
    assert flight.submit().result(5) == "ok"


def test_a_caller_that_stops_waiting_leaves_the_run_going() -> None:
    release = threading.Event()
    flight = SingleFlight(lambda: release.wait(5) and "done")
    future = flight.submit()
    with pytest.raises(TimeoutError):
        future.result(timeout=0.01)
    assert flight.submit() is future  # still in flight: joined, not restarted
    release.set()
    assert future.result(5) == "done"


def test_an_entry_expires_for_the_scrape_a_whole_lifetime_later() -> None:
    # Stamped with the start of the collection that read it, and judged by the start of the one
    # that asks: a 300 s entry read by one scrape expires for the scrape 300 s later, a few
    # milliseconds of jitter or a slow collection notwithstanding (not one scrape later).
    clock = Clock()
    cache = TTLCache({"inverters": 300.0}, clock)
    cache.put("device_data", "inverters", "d", at=1000.0)
    clock.now = 1002.5  # the answer came late in a slow collection
    assert cache.get("device_data", at=1240.0).value == "d"
    assert cache.get("device_data", at=1299.995) is None
    assert cache.get("device_data", at=1300.0) is None


def test_an_entry_tells_when_it_expires() -> None:
    cache = TTLCache({"inverters": 300.0, "readings": 0.0}, Clock())
    cache.put("device_data", "inverters", "d", at=1000.0)
    cache.put("meters_readings", "readings", "r", at=1000.0)
    assert cache.expires_at("device_data") == 1299.0  # as ``get`` judges it: 1 % early, at most 1 s
    assert cache.get("device_data", at=1298.999) is not None and cache.get("device_data", at=1299.0) is None
    assert cache.expires_at("meters_readings") == float("-inf")  # not kept
    assert cache.expires_at("never_put") == float("-inf")


def test_try_here_runs_on_the_callers_thread_when_it_can() -> None:
    threads: list[str] = []
    flight = SingleFlight(lambda: threads.append(threading.current_thread().name) or "on a worker")
    here = flight.try_here(lambda: threads.append(threading.current_thread().name) or "here")
    assert here.result(5) == "here"
    assert threads == [threading.current_thread().name]


def test_try_here_hands_the_run_to_a_worker_when_the_attempt_cannot_finish() -> None:
    release = threading.Event()
    flight = SingleFlight(lambda: release.wait(5) and "on a worker")
    future = flight.try_here(lambda: None)
    assert not future.done()
    assert flight.submit() is future  # in flight: joined, not restarted
    release.set()
    assert future.result(5) == "on a worker"
    assert flight.try_here(lambda: "here again").result(5) == "here again"


def test_a_light_run_runs_whole_when_a_caller_wants_it_whole_before_it_left_anything_out() -> None:
    entered, go_on = threading.Event(), threading.Event()
    left_out: list[bool] = []
    holder: list[SingleFlight[str]] = []

    def work() -> str:
        entered.set()
        go_on.wait(5)
        left_out.append(holder[0].light())  # the first thing a light run would leave out
        return "light" if left_out[-1] else "whole"

    flight = SingleFlight(work)
    holder.append(flight)
    light = flight.submit(light=True)
    assert entered.wait(5)
    assert flight.submit(light=True) is light  # another light caller shares it as it is
    whole = flight.submit()
    assert whole is light  # shared: it has left nothing out yet, so it runs whole
    go_on.set()
    assert whole.result(5) == "whole"
    assert left_out == [False]


def test_a_caller_who_wants_it_whole_gets_the_run_after_a_light_one_that_left_something_out() -> None:
    entered, release = threading.Event(), threading.Event()
    runs: list[bool] = []
    holder: list[SingleFlight[str]] = []

    def work() -> str:
        runs.append(holder[0].light())  # at once: a light run leaves it out
        entered.set()
        release.wait(5)
        return f"run {len(runs)}, {'light' if runs[-1] else 'whole'}"

    flight = SingleFlight(work)
    holder.append(flight)
    light = flight.submit(light=True)
    assert entered.wait(5)
    whole = flight.submit()
    assert whole is not light
    assert flight.submit() is whole  # every caller who wants it whole shares the next run
    assert flight.try_here(lambda: "here") is whole  # a scrape on its own thread too
    release.set()
    assert light.result(5) == "run 1, light"
    assert whole.result(5) == "run 2, whole"
    assert runs == [True, False]
    assert flight.submit(light=True).result(5) == "run 3, light"  # none in flight: a new light run
