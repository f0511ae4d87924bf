"""The malloc arena limit: asked of glibc once, never over the user's own setting."""

from __future__ import annotations

from envoy_exporter.malloc_arenas import ARENAS, M_ARENA_MAX, limit_arenas


class FakeLibc:
    def __init__(self, answer: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answer = answer

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.answer


def test_asks_glibc_for_two_arenas():
    libc = FakeLibc()
    assert limit_arenas({}, lambda: libc) is True
    assert libc.calls == [(M_ARENA_MAX, ARENAS)] == [(-8, 2)]


def test_the_users_malloc_arena_max_wins():
    libc = FakeLibc()
    assert limit_arenas({"MALLOC_ARENA_MAX": "4"}, lambda: libc) is False
    assert libc.calls == []


def test_a_refusal_or_a_libc_without_mallopt_changes_nothing():
    assert limit_arenas({}, lambda: FakeLibc(answer=0)) is False
    assert limit_arenas({}, lambda: object()) is False

    def no_libc():
        raise OSError("no C library")

    assert limit_arenas({}, no_libc) is False


def test_the_real_c_library_answers_without_error():
    assert limit_arenas({}) in (True, False)
