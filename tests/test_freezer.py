"""``freezer``: long-lived objects out of the collector's sight, cycles still freed."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from envoy_exporter.freezer import Freezer


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cycle collector frees it


@pytest.fixture
def freezer() -> Iterator[Freezer]:
    made = Freezer(every=0.05)
    yield made
    made.close()
    gc.unfreeze()  # the rest of the test run as it was
    gc.enable()


def _until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _done() -> Future:
    future: Future = Future()
    future.set_result(None)
    return future


def test_what_lives_after_the_first_collections_is_frozen(freezer):
    gc.unfreeze()
    kept = [Node() for _ in range(100)]
    freezer.start([_done()])
    assert _until(lambda: gc.get_freeze_count() >= len(kept))


def test_the_first_freeze_waits_for_the_first_collections(freezer):
    gc.unfreeze()
    first: Future = Future()
    freezer.start([first])
    time.sleep(0.2)
    assert gc.get_freeze_count() == 0
    first.set_result(None)
    assert _until(lambda: gc.get_freeze_count() > 0)


def test_what_lives_before_the_first_collections_is_frozen_and_looked_at_again_after_them(freezer):
    gc.unfreeze()
    node = Node()  # made with the fleet, dropped during the first collections
    gone = weakref.ref(node)
    freezer.settle()
    assert gc.get_freeze_count() > 0
    first: Future = Future()
    freezer.start([first])
    del node
    gc.collect()
    assert gone() is not None  # frozen: the collector does not look at it meanwhile
    first.set_result(None)
    assert _until(lambda: gone() is None)


def test_the_automatic_passes_wait_for_the_first_collections(freezer):
    assert gc.isenabled()
    freezer.settle()
    assert not gc.isenabled()
    first: Future = Future()
    freezer.start([first])
    time.sleep(0.2)
    assert not gc.isenabled()
    first.set_result(None)
    assert _until(gc.isenabled)


def test_closing_before_the_first_collections_are_done_resumes_the_automatic_passes(freezer):
    freezer.settle()
    freezer.start([Future()])  # never done
    freezer.close()
    assert gc.isenabled()


def test_automatic_passes_turned_off_by_the_program_stay_off(freezer):
    gc.disable()
    try:
        freezer.settle()
        freezer.start([_done()])
        assert _until(lambda: gc.get_freeze_count() > 0)
        time.sleep(0.1)
        freezer.close()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_cycle_dropped_young_is_freed_not_frozen(freezer):
    freezer.start([_done()])
    assert _until(lambda: gc.get_freeze_count() > 0)
    node = Node()
    gone = weakref.ref(node)
    del node
    freezer.busy()  # a request made it
    assert _until(lambda: gone() is None)


def test_what_a_request_made_is_frozen_after_it_and_nothing_wakes_the_freezer_meanwhile(freezer):
    others = set(threading.enumerate())
    freezer.start([_done()])
    (thread,) = set(threading.enumerate()) - others
    assert _until(lambda: gc.get_freeze_count() > 0)
    time.sleep(0.1)
    idle = _switches(thread)
    time.sleep(0.5)  # ten of its turns
    assert _switches(thread) - idle == 0
    kept = [Node() for _ in range(100)]
    frozen = gc.get_freeze_count()
    freezer.busy()
    assert _until(lambda: gc.get_freeze_count() >= frozen + len(kept))


def _switches(thread: threading.Thread) -> int:
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


def test_a_sweep_frees_a_cycle_that_was_frozen(freezer):
    freezer.start([_done()])
    node = Node()
    gone = weakref.ref(node)
    gc.freeze()  # as a periodic freeze would, while it was alive
    del node
    time.sleep(0.2)
    assert gone() is not None  # frozen: the collector does not look at it
    freezer.sweep()
    assert _until(lambda: gone() is None)


def test_closing_hands_everything_back_to_the_collector(freezer):
    freezer.start([_done()])
    assert _until(lambda: gc.get_freeze_count() > 0)
    node = Node()
    gone = weakref.ref(node)
    gc.freeze()
    del node
    freezer.close()  # a server stopped in a test: what the test process made must be freed again
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone() is None


class Result:
    """A first collection's result (a snapshot)."""


def test_the_first_collections_results_are_not_kept(freezer):
    result = Result()
    gone = weakref.ref(result)
    first: Future = Future()
    first.set_result(result)
    freezer.start([first])
    assert _until(lambda: gc.get_freeze_count() > 0)
    del result, first  # the client moved on to newer snapshots: nothing else holds this one
    assert _until(lambda: gone() is None)
