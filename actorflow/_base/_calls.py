"""The calling convention: how items reach a task's parameters. Written once, used everywhere.

Options and final inputs are bound beforehand (``functools.partial``). Streaming items are passed
positionally when the streaming parameters lead the signature (the usual case), by keyword
otherwise (keyword-only parameters included). A task with several streaming inputs receives a
tuple of items, one per input. A task with an ``af.Seq`` parameter gets the item's sequence
number by keyword as a second argument of the adapter. The worker side of executors uses the
same adapters (see ``_executors.run_batch``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any


def target_of(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What to call, or send to a worker: the task class behind a class-based task, else *fn* itself."""
    return getattr(fn, "__actorflow_class__", fn)


@functools.cache
def _run_parameters(cls: type) -> frozenset[str]:
    """The parameter names of a task class's ``run`` (looked up once per class, not per batch)."""
    return frozenset(inspect.signature(cls.run).parameters)  # type: ignore[attr-defined]


def bind(target: Callable[..., Any], consts: dict[str, Any]) -> Callable[..., Any]:
    """*target* with its options and final inputs bound.

    For a task class (an ``af.Task`` subclass, or the function standing for one) this makes **one
    new instance**: options become attributes, the rest is bound to its ``run``.
    """
    cls = target_of(target)
    if not isinstance(cls, type):
        return functools.partial(target, **consts) if consts else target
    instance = cls()
    params = _run_parameters(cls)
    rest = {}
    for name, value in consts.items():
        if name in params:
            rest[name] = value
        else:
            setattr(instance, name, value)
    run: Callable[..., Any] = instance.run
    return functools.partial(run, **rest) if rest else run


def instance_of(fn: Callable[..., Any]) -> Any:
    """The task-class instance behind what :func:`bind` returned (its bound ``run``), else None."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    owner = getattr(fn, "__self__", None)
    return None if owner is None or isinstance(owner, type) or inspect.ismodule(owner) else owner


def item_caller(
    fn: Callable[..., Any], names: Sequence[str], positional: bool, seq: str | None = None
) -> Callable[..., Any]:
    """``call(item)`` (a tuple of items for zipped inputs), or ``call(item, seq)`` when *seq* names a parameter."""
    one = len(names) == 1
    if positional:
        if seq is None:
            return fn if one else (lambda items: fn(*items))
        if one:
            return lambda item, s: fn(item, **{seq: s})
        return lambda items, s: fn(*items, **{seq: s})
    if one:
        (name,) = names
        if seq is None:
            return lambda item: fn(**{name: item})
        return lambda item, s: fn(**{name: item, seq: s})
    if seq is None:
        return lambda items: fn(**dict(zip(names, items, strict=True)))
    return lambda items, s: fn(**dict(zip(names, items, strict=True)), **{seq: s})


def step_caller(fn: Callable[..., Any], names: Sequence[str], positional: bool) -> Callable[[Any, Any], Any]:
    """``step(acc, item)`` for collectors (a tuple of items for zipped inputs)."""
    if len(names) == 1:
        if positional:
            return fn
        (name,) = names
        return lambda acc, item: fn(acc, **{name: item})
    if positional:
        return lambda acc, items: fn(acc, *items)
    return lambda acc, items: fn(acc, **dict(zip(names, items, strict=True)))
