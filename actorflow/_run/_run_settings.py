"""A run's settings as one frozen value, checked whole before anything is opened.

``run``, ``run_async`` and ``open_run`` take their settings as keywords (typed by ``RunOptions`` in
``_run``); :meth:`RunSettings.of` turns them into one :class:`RunSettings`, refusing every bad value
with an error naming the setting — before a store directory is created, a run record written, a
cache opened or a spill area made. Nothing downstream checks a setting again.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import attrs

from .._base import ActorflowError, ResumeError
from .._define import check_secrets
from .._kernel import DEFAULT_BATCH_TIME, DEFAULT_SLOW_ITEM, Cache
from .._storage import Store

__all__ = ["DEFAULT_CHECKPOINT_EVERY", "RunSettings"]

#: Seconds between checkpoints when a run has a store.
DEFAULT_CHECKPOINT_EVERY = 2.0


def _optional_seconds(name: str, value: Any) -> float | None:
    """None, or *value* as :func:`_seconds` checks it."""
    return None if value is None else _seconds(name, value, none_ok=True)


def _seconds(name: str, value: Any, *, none_ok: bool = False) -> float:
    """*value* as a positive, finite number of seconds, else an error naming *name* (and None if *none_ok*)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value and math.isfinite(value)
    if not ok:
        also = "None or " if none_ok else ""
        raise ActorflowError(f"{name} must be {also}a positive, finite number of seconds, got {value!r}")
    return float(value)


def _resume(value: Any) -> bool | str:
    """``resume``: True, False, or ``"auto"`` (resume an unfinished store, else start afresh)."""
    if value is True or value is False or value == "auto":
        return value  # type: ignore[no-any-return]
    raise ActorflowError(f"resume must be True, False or 'auto', got {value!r}")


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ActorflowError(f"{name} must be True or False, got {value!r}")
    return value


def _store(value: Any) -> Any:
    if value is not None and not isinstance(value, str | os.PathLike | Store):
        raise ActorflowError(f"store must be a directory (str or path) or a Store, got {type(value).__name__}")
    if isinstance(value, str) and not value:
        raise ActorflowError("store must name a directory, got an empty string")
    return value


def _cache(value: Any) -> Any:
    if value is None or isinstance(value, bool | str | os.PathLike | Store | Cache):
        return value
    kind = type(value).__name__
    raise ActorflowError(f"cache must be None, True, False, a directory, a Store or a Cache, got {kind}")


def _cache_limit(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ActorflowError(
            f"cache_limit: the cache limit must be a positive number of bytes (or None), got {value!r}"
        )
    return value


def _mapping(name: str, value: Any, what: str) -> Mapping[str, Any] | None:
    if value is not None and not isinstance(value, Mapping):
        raise ActorflowError(f"{name} must be None or a mapping of {what}, got {type(value).__name__}")
    return value


@attrs.frozen(kw_only=True)
class RunSettings:
    """The settings of one run (see ``RunOptions`` for what each means), every one checked.

    Build it with :meth:`of`; a change is an ``attrs.evolve`` of it.
    """

    store: str | os.PathLike[str] | Store | None = None
    resume: bool | str = False
    strict: bool = False
    allow_changed: bool = False
    from_previous: bool = False
    checkpoint_every: float | None = DEFAULT_CHECKPOINT_EVERY
    handle_signals: bool = False
    meta: Mapping[str, Any] | None = None
    secrets: Mapping[str, str] | None = None
    cache: Any = None
    cache_limit: int | None = None
    batch_time: float = DEFAULT_BATCH_TIME
    slow_item: float = DEFAULT_SLOW_ITEM
    executors: Mapping[str, Any] | None = None

    @classmethod
    def names(cls) -> list[str]:
        """Every setting's name, sorted."""
        return sorted(f.name for f in attrs.fields(cls))

    @classmethod
    def of(cls, caller: str, given: Mapping[str, Any]) -> RunSettings:
        """The settings *given* to *caller* (``run``, ``run_async``, ``open_run``), checked.

        Raises:
            TypeError: an unknown keyword (as Python does for a misspelt argument).
            ActorflowError: a bad value, naming the setting and the value.
        """
        names = cls.names()
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}; settings: {names}")
        s = {**attrs.asdict(cls(), recurse=False), **given}
        checked = cls(
            store=_store(s["store"]),
            resume=_resume(s["resume"]),
            strict=_flag("strict", s["strict"]),
            allow_changed=_flag("allow_changed", s["allow_changed"]),
            from_previous=_flag("from_previous", s["from_previous"]),
            checkpoint_every=_optional_seconds("checkpoint_every", s["checkpoint_every"]),
            handle_signals=_flag("handle_signals", s["handle_signals"]),
            meta=_mapping("meta", s["meta"], "facts to record"),
            secrets=None if s["secrets"] is None else check_secrets(s["secrets"]),
            cache=_cache(s["cache"]),
            cache_limit=_cache_limit(s["cache_limit"]),
            batch_time=_seconds("batch_time", s["batch_time"]),
            slow_item=_seconds("slow_item", s["slow_item"]),
            executors=_mapping("executors", s["executors"], "task names to executors"),
        )
        if checked.resume and checked.store is None:
            raise ActorflowError(f"resume={checked.resume!r} needs store=PATH: the store to resume from")
        if checked.from_previous and not checked.resume:  # settings that only make sense together
            raise ResumeError(
                "from_previous=True says which checkpoint to resume from, so it needs resume=True; pass both or neither"
            )
        return checked
