"""Typed checkpoint state (``_state``): one record per kind, a plain map in the store, checked on
the way back with a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from actorflow._kernel._state import (
    ABSENT,
    ActorState,
    CacheState,
    FoldState,
    GroupsState,
    SourceState,
    TaskState,
    state_from_plain,
    state_problem,
    state_to_plain,
)

COMMON: dict[str, Any] = {"status": "running", "items_in": 3, "items_out": 2, "outboxes": [[[0, 1], [5, 6], 1]]}


def test_a_record_round_trips_through_its_plain_map() -> None:
    st = SourceState(**COMMON, cursor=7)
    plain = state_to_plain(st)
    assert plain == {**COMMON, "cursor": 7}  # absent fields are left out
    assert state_problem(SourceState, plain) is None
    assert state_from_plain(SourceState, plain) == st


def test_absent_is_not_none() -> None:
    st = FoldState(**COMMON)
    assert st.acc is ABSENT and "acc" not in state_to_plain(st)
    st.acc = None  # a collector whose accumulator is None holds it
    assert state_to_plain(st)["acc"] is None


def test_a_cache_part_is_a_record_and_earlier_positional_lists_are_read() -> None:
    st = TaskState(**COMMON, cache=CacheState("miss", "k1", digest="d"))
    plain = state_to_plain(st)
    assert plain["cache"]["decision"] == "miss" and plain["cache"]["digest"] == "d"
    assert state_problem(TaskState, plain) is None
    assert CacheState.from_plain(plain["cache"]) == CacheState("miss", "k1", digest="d")
    old = ["hit", "k2", 4, True, False]
    assert CacheState.from_plain(old) == CacheState("hit", "k2", 4, True, False)


@pytest.mark.parametrize(
    ("cls", "change", "what"),
    [
        (ActorState, lambda p: p.pop("items_in"), '"items_in" is missing'),
        (SourceState, lambda p: p.pop("cursor"), '"cursor" is missing'),
        (SourceState, lambda p: p.update(cursor=-1), '"cursor" is -1, not a count'),
        (ActorState, lambda p: p.update(outboxes=[[[0], [1, 2], 0]]), '"outboxes" has an outbox that does not pair'),
        (ActorState, lambda p: p.update(status=3), '"status" is 3'),
        (GroupsState, lambda p: p.update(accs=[[0]]), '"accs" is not a list of (group, accumulator) pairs'),
        (ActorState, lambda p: p.update(cache=[1, 2]), '"cache" is not a cache decision'),
        (ActorState, lambda p: p.update(attrs={1: 2}), '"attrs" is not a map of names'),
    ],
)
def test_a_damaged_field_is_named(cls: type[ActorState], change: Any, what: str) -> None:
    plain = {**COMMON, "cursor": 0} if cls is SourceState else dict(COMMON)
    change(plain)
    problem = state_problem(cls, plain)
    assert problem is not None and what in problem


def test_a_state_that_is_not_a_map_is_refused() -> None:
    assert state_problem(ActorState, 7) == "its state is not a map"
