"""Where a source stands beyond its item count: the hook a connector source uses for its cursor.

A source actor counts the items it took from its generator (its cursor). A file source also needs
the byte offset, the file and what it knew of the file at that point, so a resumed run seeks there
instead of reading again. A task-class instance that defines both methods below takes part:

- ``position(count)``: plain data (msgpack) naming where item number *count* starts, called while a
  checkpoint is taken (the actor is parked, so the generator has given exactly *count* items);
- ``resume_from(count, position)``: called before the generator is opened at *count*, with the
  position a restored checkpoint saved for that count (None when there is none).

The actor calls only the two functions here; they do nothing for any other source.
"""

from __future__ import annotations

from typing import Any


def _instance(handler: Any) -> Any:
    instance = getattr(handler, "instance", None) if handler is not None else None
    return instance if callable(getattr(instance, "position", None)) else None


def position_of(handler: Any, count: int, restored: Any) -> Any:
    """What a checkpoint saves for a source at *count* items (None: nothing beyond the count).

    Before the source's instance exists, the restored position is kept as it was.
    """
    instance = _instance(handler)
    if instance is None:
        return restored
    return instance.position(count)


def resume_at(handler: Any, count: int, restored: Any) -> None:
    """Tell the source's instance where item *count* starts before its generator is opened."""
    instance = _instance(handler)
    if instance is not None:
        instance.resume_from(count, restored)
