"""Typed checkpoint state: one attrs record per actor kind, with its own check.

Each actor gives its state as one of these records (:meth:`Actor.state`) and takes it back
(:meth:`Actor.restore`); a checkpoint holds them as plain maps (field name → plain value, fields
left at their "absent" default omitted), so msgpack stores them and a reader of the store sees the
same keys as before. :func:`state_from_plain` is the one way back: it checks every field a record
declares -- present when required, of the right shape -- and says what is wrong, naming the field,
instead of failing later with a bare KeyError.

Items and accumulators stay plain data here; they are structured into their declared types by
the actor that owns them (with the port's or the accumulator's type).
"""

from __future__ import annotations

from typing import Any, TypeVar

import attrs

#: The value of a field a record does not hold (omitted from the plain map).
ABSENT: Any = attrs.make_class("Absent", [], repr=False)()

#: Field metadata key: a function returning what is wrong with a plain value (None: nothing).
CHECK = "check"


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_seq(value: Any) -> bool:
    return _is_count(value) or (isinstance(value, list) and all(_is_count(v) for v in value))


def count_problem(value: Any) -> str | None:
    return None if _is_count(value) else f"is {value!r}, not a count"


def batch_problem(batch: Any, extra: int = 0) -> str | None:
    """``[seqs, items]`` (plus *extra* trailing counters) with as many sequence numbers as items."""
    if not isinstance(batch, list) or len(batch) != 2 + extra:
        return "is not a batch"
    seqs, items = batch[0], batch[1]
    if not isinstance(seqs, list) or not isinstance(items, list) or len(seqs) != len(items):
        return "does not pair sequence numbers with items"
    kinds = set(map(type, seqs))  # one C-level pass: checkpoints may hold many thousand items
    if not kinds <= {int, list} or (list in kinds and not all(_is_seq(q) for q in seqs if type(q) is list)):
        return "holds a sequence number that is not one"
    if not all(_is_count(n) for n in batch[2:]):
        return "has a counter that is not a count"
    return None


def _outboxes_problem(value: Any) -> str | None:
    if not isinstance(value, list):
        return "is not a list"
    for box in value:
        if (p := batch_problem(box, extra=1)) is not None:
            return f"has an outbox that {p}"
    return None


def _inflight_problem(value: Any) -> str | None:
    return batch_problem(value, extra=1)


def _list_problem(value: Any) -> str | None:
    return None if isinstance(value, list) else "is not a list"


def _str_problem(value: Any) -> str | None:
    return None if isinstance(value, str) else f"is {value!r}"


def _map_problem(value: Any) -> str | None:
    return None if isinstance(value, dict) and all(isinstance(k, str) for k in value) else "is not a map of names"


def _seq_or_none_problem(value: Any) -> str | None:
    return None if value is None or _is_seq(value) else "is not a sequence number"


def _groups_problem(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(kv, list) and len(kv) == 2 and _is_seq(kv[0]) for kv in value):
        return "is not a list of (group, accumulator) pairs"
    return None


def _known_problem(value: Any) -> str | None:
    return None if isinstance(value, list) and all(_is_seq(k) for k in value) else "is not a list of groups"


def _cache_problem(value: Any) -> str | None:
    if isinstance(value, dict):
        return None if isinstance(value.get("decision"), str) and isinstance(value.get("key"), str) else (
            "is not a cache decision"
        )
    if isinstance(value, list) and len(value) in (5, 9):  # written by an earlier version: positional
        return None
    return "is not a cache decision"


@attrs.define
class ActorState:
    """What every actor's checkpoint holds.

    Attributes:
        status: the actor's status (``"finished"`` once it ended).
        items_in: items it took in (and finished).
        items_out: items (or products) it sent.
        outboxes: output batches not yet in every downstream mailbox, as ``[seqs, items, next
            mailbox]``.
        gather: the items gathered for the result or for readers of the whole stream.
        product: a finished task's product (absent: not finished, or gathered).
        cache: its part in the product cache (:class:`CacheState` as plain data).
        inflight: input put back for a resume (``[seqs, items, children emitted]``).
        attrs: a stateful task class's public attributes.
    """

    status: str = attrs.field(metadata={CHECK: _str_problem})
    items_in: int = attrs.field(metadata={CHECK: count_problem})
    items_out: int = attrs.field(metadata={CHECK: count_problem})
    outboxes: list[Any] = attrs.field(metadata={CHECK: _outboxes_problem})
    gather: Any = attrs.field(default=ABSENT, metadata={CHECK: _list_problem})
    product: Any = attrs.field(default=ABSENT)
    cache: Any = attrs.field(default=ABSENT, metadata={CHECK: _cache_problem})
    inflight: Any = attrs.field(default=ABSENT, metadata={CHECK: _inflight_problem})
    attrs: Any = attrs.field(default=ABSENT, metadata={CHECK: _map_problem})


@attrs.define
class SourceState(ActorState):
    """A source's state: how many items it took from its generator (its cursor)."""

    cursor: int = attrs.field(kw_only=True, metadata={CHECK: count_problem})
    #: Where a connector source stands beyond its count (``_source_position``): plain data it gave.
    position: Any = attrs.field(default=ABSENT, kw_only=True)


@attrs.define
class TaskState(ActorState):
    """A task's state: with ``end_of_stream``, whether it ran and the last input's sequence number."""

    eos: Any = attrs.field(default=ABSENT)
    last_in: Any = attrs.field(default=ABSENT, metadata={CHECK: _seq_or_none_problem})


@attrs.define
class FoldState(ActorState):
    """A collector's state: its accumulator (absent before its first item)."""

    acc: Any = attrs.field(default=ABSENT)


@attrs.define
class GroupsState(ActorState):
    """A per-collector's state: open groups' accumulators, groups announced but not finished, and how
    far its input moved."""

    accs: Any = attrs.field(default=ABSENT, metadata={CHECK: _groups_problem})
    known: Any = attrs.field(default=ABSENT, metadata={CHECK: _known_problem})
    mark: Any = attrs.field(default=ABSENT, metadata={CHECK: _seq_or_none_problem})


@attrs.define
class TransactionState(ActorState):
    """A transactional sink's state: its prepared transactions' tokens."""

    tokens: Any = attrs.field(default=ABSENT, metadata={CHECK: _list_problem})


@attrs.define
class CacheState:
    """An actor's part in the product cache, as a checkpoint keeps it (see ``CacheRole``)."""

    decision: str
    key: str
    replayed: int = 0
    replay: bool = False
    load_items: bool = False
    digest: str | None = None
    cutoff: bool = False
    partial: str = ""
    input: Any = None

    @classmethod
    def from_plain(cls, value: Any) -> CacheState:
        """From a checkpoint: a map, or the positional list earlier versions wrote."""
        if isinstance(value, dict):
            names = {f.name for f in attrs.fields(cls)}
            return cls(**{k: v for k, v in value.items() if k in names})
        decision, key, replayed, replay, load_items, *more = value
        digest, cutoff, partial, inp = [*more, None, False, "", None][:4]
        return cls(decision, key, replayed, replay, load_items, digest, bool(cutoff), partial, inp)


R = TypeVar("R", bound=ActorState)


def state_to_plain(record: ActorState) -> dict[str, Any]:
    """*record* as a plain map for a checkpoint (absent fields omitted)."""
    out: dict[str, Any] = {}
    for f in attrs.fields(type(record)):
        value = getattr(record, f.name)
        if value is not ABSENT:
            out[f.name] = attrs.asdict(value) if isinstance(value, CacheState) else value
    return out


def state_problem(cls: type[ActorState], plain: Any) -> str | None:
    """What is wrong with *plain* as a checkpoint of a *cls* actor (None: nothing)."""
    if not isinstance(plain, dict):
        return "its state is not a map"
    for f in attrs.fields(cls):
        if f.name not in plain:
            if f.default is attrs.NOTHING:
                return f'"{f.name}" is missing'
            continue
        check = f.metadata.get(CHECK)
        if check is not None and (p := check(plain[f.name])) is not None:
            return f'"{f.name}" {p}'
    return None


def state_from_plain(cls: type[R], plain: dict[str, Any]) -> R:
    """The record a checkpoint's plain map holds (call :func:`state_problem` first)."""
    names = {f.name for f in attrs.fields(cls)}
    return cls(**{k: v for k, v in plain.items() if k in names})
