"""A plain reference for windows and keyed folds, written from the issue's words, item by item.

No actorflow: lists and dicts. ``reference_windows`` returns what a window task must emit (as
``(key, start, end, value)`` tuples, in emission order) and the indexes of the late items.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def late_and_kept(times: list[float], lateness: float) -> tuple[list[int], list[int]]:
    """Indexes of late items and of kept ones: late = below (largest time seen before it - lateness)."""
    late, kept, seen = [], [], -math.inf
    for i, t in enumerate(times):
        if t < seen - lateness:
            late.append(i)
            continue
        kept.append(i)
        seen = max(seen, t)
    return late, kept


def _starts(kind: str, t: float, size: float, step: float) -> list[float]:
    if kind == "tumbling":
        return [(t // size) * size]
    out = []
    j = math.floor((t - size) / step) - 1
    while j * step <= t:
        s = j * step
        if s <= t < s + size:
            out.append(s)
        j += 1
    return out


def reference_windows(
    kind: str,
    keys: list[Any],
    times: list[float],
    items: list[Any],
    *,
    size: float,
    step: float | None = None,
    lateness: float = 0.0,
    init: Any,
    fold: Callable[[Any, Any], Any],
    finish: Callable[[Any], Any] = lambda a: a,
) -> tuple[list[tuple[Any, float, float, Any]], list[int]]:
    """Every window of the stream, in order of end then first appearance of its key."""
    late, kept = late_and_kept(times, lateness)
    order: dict[Any, int] = {}
    for k in keys:
        order.setdefault(k, len(order))
    groups: dict[tuple[Any, float, float], list[int]] = {}
    if kind in ("tumbling", "sliding"):
        for i in kept:
            for s in _starts(kind, times[i], size, step or size):
                groups.setdefault((keys[i], s, s + size), []).append(i)
    else:  # sessions: connected runs of [t, t + gap) per key
        by_key: dict[Any, list[int]] = {}
        for i in kept:
            by_key.setdefault(keys[i], []).append(i)
        for k, idx in by_key.items():
            run: list[int] = []
            last = -math.inf
            for i in sorted(idx, key=lambda j: times[j]):
                if run and times[i] >= last + size:
                    groups[(k, times[run[0]], last + size)] = sorted(run)
                    run = []
                if not run:
                    start = times[i]
                    last = start
                run.append(i)
                last = max(last, times[i])
            if run:
                groups[(k, start, last + size)] = sorted(run)
    out = []
    for (k, s, e), idx in sorted(groups.items(), key=lambda g: (g[0][2], order[g[0][0]])):
        acc = init
        for i in idx:
            acc = fold(acc, items[i])
        out.append((k, s, e, finish(acc)))
    return out, late


def reference_keyed(keys: list[Any], items: list[Any], init: Any, fold: Callable[[Any, Any], Any]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for k, x in zip(keys, items, strict=True):
        out[k] = fold(out.get(k, init), x)
    return out
