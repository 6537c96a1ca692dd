"""Windows as values: the windowers (:class:`Tumbling`, :class:`Sliding`, :class:`Session`), the
result record (:class:`WindowResult`), event times in seconds, and the checks of the keyed settings.

Nothing here runs a task: the semantics live in ``_window_logic`` (windows) and ``_keyed``
(keyed folds), the actors that drive them in ``_window_actor``. This module sits with the
definitions (``_spec`` and ``_analyse`` read it), below everything that runs.
"""

from __future__ import annotations

import datetime as dt
import inspect
import math
import re
import typing
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs

from .._base import DefinitionError
from .._storage import converter


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf


@attrs.frozen
class Tumbling:
    """Fixed windows of *size* seconds, one after the other: ``[0, size)``, ``[size, 2*size)``, …

    Aligned to 0 (the epoch for event times given as datetimes); an item belongs to exactly one.

    Args:
        size: the window's length in seconds (a positive number).
    """

    size: float = attrs.field(converter=float)

    def __attrs_post_init__(self) -> None:
        if not _positive(self.size):
            raise DefinitionError(f"af.Tumbling(size): size must be a positive number of seconds, got {self.size!r}")


@attrs.frozen
class Sliding:
    """Windows of *size* seconds starting every *step* seconds (at every multiple of *step*).

    An item belongs to every window ``[start, start + size)`` that holds its time, so to about
    ``size / step`` windows. ``Sliding(size, size)`` is ``Tumbling(size)``.

    Args:
        size: the window's length in seconds.
        step: seconds between two window starts; at most *size* (a gap between windows would
            drop the items that fall into it, which actorflow refuses to do quietly).
    """

    size: float = attrs.field(converter=float)
    step: float = attrs.field(converter=float)

    def __attrs_post_init__(self) -> None:
        if not _positive(self.size) or not _positive(self.step):
            raise DefinitionError(
                f"af.Sliding(size, step): size and step must be positive numbers of seconds, got "
                f"{self.size!r} and {self.step!r}"
            )
        if self.step > self.size:
            raise DefinitionError(
                f"af.Sliding(size={self.size}, step={self.step}): step is larger than size, so items between two "
                "windows would belong to none; make step <= size"
            )


@attrs.frozen
class Session:
    """Per-key sessions: ``[first item's time, last item's time + gap)``; an item within *gap*
    seconds of a session joins it, and sessions that come to overlap merge.

    Args:
        gap: seconds of inactivity that close a session.
    """

    gap: float = attrs.field(converter=float)

    def __attrs_post_init__(self) -> None:
        if not _positive(self.gap):
            raise DefinitionError(f"af.Session(gap): gap must be a positive number of seconds, got {self.gap!r}")


#: What ``flow.window`` accepts as its windower.
Windower = Tumbling | Sliding | Session


@attrs.frozen
class WindowResult:
    """One closed window of one key, as a window task emits it downstream.

    Attributes:
        key: the key (``None`` for a window task without ``key=``).
        start: the window's start in seconds (inclusive).
        end: the window's end in seconds (exclusive).
        value: the fold of the window's items (``finish(acc)`` when the task has ``finish=``).
    """

    key: Any
    start: float
    end: float
    value: Any


def _unstructure_result(r: WindowResult) -> dict[str, Any]:
    # key and value as they are: msgpack keeps tuples, sets and datetimes as themselves (cattrs would
    # make an ``Any`` field's tuple a list, and a tuple key would come back from a checkpoint unhashable)
    return {"key": r.key, "start": r.start, "end": r.end, "value": r.value}


def _structure_result(d: Any, _cls: Any) -> WindowResult:
    return WindowResult(d["key"], float(d["start"]), float(d["end"]), d["value"])


converter.register_unstructure_hook(WindowResult, _unstructure_result)
converter.register_structure_hook(WindowResult, _structure_result)

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def seconds(t: Any) -> float:
    """An event time as float seconds: a number as it is, a ``datetime`` as seconds since the
    epoch (a naive one is UTC).

    Raises:
        TypeError: *t* is neither (the message says what the time function returned).
    """
    if isinstance(t, float):
        return t
    if isinstance(t, int) and not isinstance(t, bool):
        return float(t)
    if isinstance(t, dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        return float((t - _EPOCH).total_seconds())
    raise TypeError(f"time= must give an item's event time as a float (seconds) or a datetime, got {t!r:.80}")


# -- settings ---------------------------------------------------------------------------------------


def check_keyed(
    here: str, kind: str, *, key: Any, window: Any, time: Any, lateness: Any, merge: Any, per: Any
) -> float:
    """Check the keyed and window settings of a task; returns ``lateness`` as a float.

    Raises:
        DefinitionError: a setting is of the wrong kind or does not apply, naming the task.
    """
    for label, fn in (("key", key), ("time", time), ("merge", merge)):
        if fn is not None and not callable(fn):
            raise DefinitionError(f"{here}: {label}= must be a function of the item, got {fn!r:.80}")
    if key is not None and kind not in ("collector", "task"):
        raise DefinitionError(f"{here}: key= applies to collectors, windows and tasks only")
    if window is not None and not isinstance(window, Tumbling | Sliding | Session):
        raise DefinitionError(
            f"{here}: the window must be af.Tumbling(size), af.Sliding(size, step) or af.Session(gap), "
            f"got {window!r:.80}"
        )
    if window is None and (time is not None or merge is not None or lateness):
        raise DefinitionError(f"{here}: time=, lateness= and merge= apply to windows only")
    if merge is not None and not isinstance(window, Session):
        raise DefinitionError(f"{here}: merge= applies to af.Session windows only (only sessions merge)")
    if per is not None and (key is not None or window is not None):
        raise DefinitionError(f"{here}: per= cannot be combined with key= or a window")
    if isinstance(lateness, bool) or not isinstance(lateness, int | float) or not 0 <= lateness < math.inf:
        raise DefinitionError(f"{here}: lateness must be a number of seconds >= 0, got {lateness!r}")
    if lateness and time is None:
        raise DefinitionError(
            f"{here}: lateness= needs time= (event time); on processing time no item is ever late"
        )
    return float(lateness)


def keyed_output(here: str, settings: Any, streaming_in: Sequence[Any], value_type: Any) -> tuple[bool, int, Any]:
    """(streaming, depth, out_type) of a keyed collector or a window task (see ``_analyse``).

    Raises:
        DefinitionError: the task does not read exactly one stream.
    """
    if len(streaming_in) != 1:
        raise DefinitionError(
            f"{here}: a keyed collector or a window reads exactly one stream, got {[i.name for i in streaming_in]}"
        )
    if settings.window is not None:
        return True, 1, WindowResult
    return False, 0, dict[Any, value_type]


def check_keyed_step(here: str, kind: str, settings: Any, is_async: bool, is_gen: bool, streaming: bool) -> None:
    """A keyed collector's or a window's step and finish must be sync (they run inside the batch);
    a keyed task (``key=`` with ``concurrency``) must be a per-item task reading a stream, inline.

    Raises:
        DefinitionError: naming the task and why.
    """
    if kind == "task":
        check_task_key(here, settings, is_gen, streaming)
        return
    if settings.key is None and settings.window is None:
        return
    if is_async or (settings.finish is not None and inspect.iscoroutinefunction(settings.finish)):
        raise DefinitionError(
            f"{here}: a keyed collector's or a window's step and finish must be plain (sync) functions: they run "
            "once per item inside the batch; do the awaiting in a task before it"
        )


def check_task_key(here: str, settings: Any, is_generator: bool, streaming: bool) -> None:
    """``key=`` on a task (see ``_partition``): per item, from a stream, not on an executor."""
    if settings.key is None:
        return
    if not streaming:
        raise DefinitionError(f"{here}: key= needs a streaming input (it partitions the items)")
    if is_generator:
        raise DefinitionError(
            f"{here}: key= is for tasks that return one value per item, not generator tasks; split the "
            "generator into a keyed task and a generator after it"
        )
    if settings.executor is not None:
        raise DefinitionError(
            f"{here}: key= cannot be honoured on an executor ({settings.executor!r}): it runs whole batches "
            "elsewhere, so per-key order across its workers would not hold; run the keyed task inline"
        )


def keyed_text(settings: Any) -> str:
    """What identifies a task's keyed and window settings in a cache key ("" when it has none)."""
    if settings.key is None and settings.window is None:
        return ""
    parts = [repr(settings.window), repr(settings.lateness)]
    for fn in (settings.key, settings.time, settings.merge):
        parts.append(_function_text(fn))
    return "keyed:" + ";".join(parts)


def _function_text(fn: Callable[..., Any] | None) -> str:
    """A key, time or merge function as text: a function's source where it can be read, else its
    name; anything else (``operator.itemgetter(0)``, a partial) by its repr without addresses."""
    if fn is None:
        return "-"
    if inspect.isfunction(fn):
        try:
            return inspect.getsource(fn)
        except (OSError, TypeError):
            return f"{fn.__module__}.{fn.__qualname__}"
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(fn))


def key_annotation(key: Callable[..., Any] | None) -> Any:
    """The declared return type of a key function (``Any`` when it declares none or cannot be read)."""
    if key is None:
        return Any
    try:
        return typing.get_type_hints(key).get("return", Any)
    except Exception:  # a builtin, a partial, an unresolvable name: the keys stay as they come back
        return Any
