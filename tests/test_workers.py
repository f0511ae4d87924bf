"""``gateway.workers``: collections run on a bounded number of threads, and idle ones end."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest

from envoy_exporter.gateway.cache import SingleFlight
from envoy_exporter.gateway.workers import WorkerPool


def _pool_threads(name: str) -> int:
    return sum(t.name.startswith(name + "-") for t in threading.enumerate())


def test_a_hundred_tasks_run_on_at_most_size_threads_and_all_run() -> None:
    pool = WorkerPool(size=4, name="bounded")
    release = threading.Event()
    done: list[int] = []
    lock = threading.Lock()
    most = 0

    def task(n: int) -> None:
        nonlocal most
        release.wait(5)
        with lock:
            done.append(n)
            most = max(most, _pool_threads("bounded"))

    for n in range(100):
        pool.submit(lambda n=n: task(n))
    time.sleep(0.1)
    assert pool.threads == 4
    assert _pool_threads("bounded") == 4
    release.set()
    deadline = time.monotonic() + 10
    while len(done) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(done) == list(range(100))
    assert most == 4


def test_tasks_run_in_the_order_submitted_on_one_worker() -> None:
    pool = WorkerPool(size=1, name="ordered")
    seen: list[int] = []
    finished = threading.Event()
    for n in range(20):
        pool.submit(lambda n=n: seen.append(n))
    pool.submit(finished.set)
    assert finished.wait(5)
    assert seen == list(range(20))


def test_an_idle_worker_ends_and_a_new_task_starts_one_again() -> None:
    pool = WorkerPool(size=2, idle_s=0.05, name="idle")
    ran = threading.Event()
    pool.submit(ran.set)
    assert ran.wait(5)
    deadline = time.monotonic() + 5
    while pool.threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.threads == 0
    again = threading.Event()
    pool.submit(again.set)
    assert again.wait(5)


def test_a_task_that_raises_costs_its_worker_nothing(caplog) -> None:
    pool = WorkerPool(size=1, name="raising")
    after = threading.Event()
    pool.submit(lambda: 1 / 0)
    pool.submit(after.set)
    assert after.wait(5)
    assert "ZeroDivisionError" in caplog.text


def test_a_free_worker_is_reused_rather_than_a_thread_started() -> None:
    pool = WorkerPool(size=8, name="reused")
    for _ in range(20):
        done = threading.Event()
        pool.submit(done.set)
        assert done.wait(5)
        time.sleep(0.005)  # the worker is back waiting
    assert pool.threads == 1


def test_single_flights_share_one_bounded_pool() -> None:
    pool = WorkerPool(size=3, name="shared")
    release = threading.Event()
    flights = [SingleFlight(lambda: release.wait(5) and "ok", pool=pool) for _ in range(10)]
    futures = [flight.submit() for flight in flights]
    time.sleep(0.1)
    assert _pool_threads("shared") == 3
    release.set()
    assert [f.result(5) for f in futures] == ["ok"] * 10


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError):
        WorkerPool(size=0)


def test_an_idle_worker_keeps_nothing_of_its_last_task_alive() -> None:
    # A dropped gateway client must be freed while the worker that ran its collection waits
    # for more: its serial claims and label go with it.
    class Owner:
        def work(self) -> None:
            ran.set()

    pool, ran = WorkerPool(size=1, idle_s=30, name="forgets"), threading.Event()
    owner = Owner()
    gone = weakref.ref(owner)
    pool.submit(owner.work)
    assert ran.wait(5)
    del owner
    time.sleep(0.05)  # the worker is back waiting
    gc.collect()
    assert gone() is None
