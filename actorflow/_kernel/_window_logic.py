"""The semantics of windows, as one pure logic object over batches (no trio, no actor).

:class:`WindowLogic` folds batches of items into per-key windows and says which windows close:

- ``on_batch(items, now)`` folds a batch (``now`` stamps every item on processing time) and
  returns the windows the watermark has passed, in order of ``end`` then of the key's first
  appearance in the input;
- ``on_time(now)`` (processing time) returns the windows the clock has passed;
- ``on_eof()`` returns every window still open;
- ``state()`` / ``restore()`` give and take the whole state as one :class:`WindowState` record.

The watermark is the largest event time seen minus the lateness (on processing time: the clock).
An item whose time is below the watermark at its arrival is late: it is not folded, its index is
listed in ``late_items`` and counted in ``late``. Emitting after each batch gives the same windows
in the same order as emitting after each item would: a window still open when the watermark
passed its end can only be fed by a late item, and late items are never folded.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import attrs

from .._define import Session, Sliding, Tumbling, WindowResult, seconds

_MISSING: Any = object()
_IMMUTABLE = (int, float, str, bytes, bool, type(None), frozenset, complex)


class ClosingFailed(Exception):
    """User code raised while windows closed (``finish``, or a session's ``step`` folding its items):
    no single item is at fault. ``error`` is what it raised."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def fresh_of(init: Any) -> Callable[[], Any]:
    """A function giving a fresh accumulator: *init* itself when immutable, else a deep copy of it."""
    if isinstance(init, _IMMUTABLE):
        return lambda: init
    return lambda: copy.deepcopy(init)


def _same(value: Any) -> Any:
    return value


@attrs.frozen
class WindowState:
    """A window task's whole state, as plain data a checkpoint stores.

    Attributes:
        max_time: the largest event time seen (``-inf`` before any).
        clock: the last processing time seen (None on event time).
        keys: every key in order of first appearance.
        windows: tumbling and sliding windows still open: ``[start, [[key, acc], ...]]``.
        sessions: sessions still open: ``[key, [[start, last time, acc, [[arrival, item], ...]], ...]]``.
        emitted: windows emitted so far (the next one's sequence number).
        late: late items so far.
        arrivals: items folded into sessions so far (their arrival numbers).
    """

    max_time: float
    clock: float | None
    keys: list[Any]
    windows: list[Any]
    sessions: list[Any]
    emitted: int
    late: int
    arrivals: int


class WindowLogic:
    """Per-key windows over one stream (see the module docstring).

    Args:
        windower: :class:`Tumbling`, :class:`Sliding` or :class:`Session`.
        step: ``step(acc, item) -> acc``.
        init: the starting accumulator of every window (deep-copied unless immutable).
        key: ``key(item)`` (None: one key, ``None``).
        time: ``time(item)``, the event time in seconds or a datetime (None: processing time).
        lateness: seconds the watermark stays behind the largest event time.
        finish: ``finish(acc) -> value`` applied when a window closes (None: the accumulator).
        merge: ``merge(acc_a, acc_b)`` for sessions that merge (None: sessions keep their items
            and fold them in arrival order when they close).
    """

    def __init__(
        self,
        windower: Tumbling | Sliding | Session,
        step: Callable[[Any, Any], Any],
        init: Any,
        *,
        key: Callable[[Any], Any] | None = None,
        time: Callable[[Any], Any] | None = None,
        lateness: float = 0.0,
        finish: Callable[[Any], Any] | None = None,
        merge: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        self.windower = windower
        #: ``step(acc, item)``; the actor sets it anew before each batch (a restart rebinds it).
        self.step = step
        self.fresh = fresh_of(init)
        self.key: Callable[[Any], Any] = key or _no_key
        self.time = time
        self.lateness = lateness
        self.finish = finish or _same
        self.merge = merge
        self.size = windower.gap if isinstance(windower, Session) else windower.size
        self.slide = windower.step if isinstance(windower, Sliding) else self.size
        self.max_time = -math.inf
        self.clock: float | None = None
        self.kidx: dict[Any, int] = {}
        self.wins: dict[float, dict[Any, Any]] = {}
        self.sessions: dict[Any, list[list[Any]]] = {}
        #: A lower bound of the earliest end among open windows (exact after each emission).
        self.next_end = math.inf
        self.emitted = 0
        self.late = 0
        self.arrivals = 0
        #: Late items of the current batch: ``(index, event time, watermark)``.
        self.late_items: list[tuple[int, float, float]] = []
        #: After ``on_batch`` raised: the index of the item whose code raised.
        self.at = 0

    # -- the interface -------------------------------------------------------------------------

    @property
    def watermark(self) -> float:
        """Event time: the largest event time seen minus the lateness; processing time: the clock."""
        if self.time is None:
            return self.clock if self.clock is not None else -math.inf
        return self.max_time - self.lateness

    def open_windows(self) -> int:
        """How many (key, window) accumulators are open."""
        return sum(len(w) for w in self.wins.values()) + sum(len(s) for s in self.sessions.values())

    def next_due(self) -> float:
        """The earliest end of an open window (``inf`` when none): on processing time, when to wake."""
        return self.next_end

    def on_batch(self, items: list[Any], now: float | None = None, pos: int = 0) -> list[WindowResult]:
        """Fold ``items[pos:]`` (*pos* > 0 goes on after an item whose code raised) and return the
        windows that closed. Late items are listed in ``late_items``.

        Raises:
            Exception: what the user's code raised; ``at`` is then that item's index, and the items
                before it are folded (call again from ``at`` or ``at + 1``).
        """
        if pos == 0:
            self.late_items = []
        if self.time is None:
            assert now is not None, "processing time needs the clock"
            if self.clock is None or now > self.clock:
                self.clock = now
        if isinstance(self.windower, Session):
            self._fold_sessions(items, pos, now)
        elif isinstance(self.windower, Tumbling):
            self._fold_tumbling(items, pos, now)
        else:
            self._fold_sliding(items, pos, now)
        self.at = len(items)  # every item is folded (an exit while windows close puts none back)
        return self._emit(self.watermark)

    def on_time(self, now: float) -> list[WindowResult]:
        """Processing time: the clock reads *now*; the windows it has passed."""
        if self.clock is None or now > self.clock:
            self.clock = now
        return self._emit(self.watermark)

    def on_eof(self) -> list[WindowResult]:
        """The input ended: every open window, in order."""
        return self._emit(math.inf)

    # -- folding ---------------------------------------------------------------------------------

    def _times(self, now: float | None) -> Callable[[Any], Any]:
        if self.time is not None:
            return self.time
        return lambda _x: now

    def _fold_tumbling(self, items: list[Any], pos: int, now: float | None) -> None:
        # the hot path of the most common window: per item two calls of user code and a few dict
        # operations; the window last used is kept at hand (event times mostly rise)
        size, wins, kidx = self.size, self.wins, self.kidx
        timef, keyf, step, fresh = self._times(now), self.key, self.step, self.fresh
        lateness, event = self.lateness, self.time is not None
        maxt = self.max_time
        wm = maxt - lateness if event else -math.inf
        next_end = self.next_end
        last_s: float | None = None
        w: dict[Any, Any] = {}
        i = pos
        try:
            for i in range(pos, len(items)):  # `i` is read when user code raises
                x = items[i]
                t = timef(x)
                if t.__class__ is not float:
                    t = seconds(t)
                k = keyf(x)
                if t < wm:
                    self._late(i, t, wm, k)
                    continue
                s = (t // size) * size
                if s != last_s:
                    last_s = s
                    got = wins.get(s)
                    if got is None:
                        got = wins[s] = {}
                        if s + size < next_end:
                            next_end = s + size
                    w = got
                acc = w.get(k, _MISSING)
                if acc is _MISSING:
                    if k not in kidx:
                        kidx[k] = len(kidx)
                    acc = fresh()
                w[k] = step(acc, x)
                if t > maxt:
                    maxt = t
                    if event:
                        wm = maxt - lateness
        except BaseException:
            self.at = i
            raise
        finally:
            self.max_time, self.next_end = maxt, next_end

    def _fold_sliding(self, items: list[Any], pos: int, now: float | None) -> None:
        size, slide, wins, kidx = self.size, self.slide, self.wins, self.kidx
        timef, keyf, step, fresh = self._times(now), self.key, self.step, self.fresh
        event = self.time is not None
        i = pos
        try:
            for i in range(pos, len(items)):  # `i` is read when user code raises
                x = items[i]
                t = seconds(timef(x))
                k = keyf(x)
                wm = self.max_time - self.lateness if event else -math.inf
                if t < wm:
                    self._late(i, t, wm, k)
                    continue
                if k not in kidx:
                    kidx[k] = len(kidx)
                j = t // slide
                while (s := j * slide) + size > t:  # every window holding t, the latest first
                    if s <= t:
                        w = wins.get(s)
                        if w is None:
                            w = wins[s] = {}
                            self.next_end = min(self.next_end, s + size)
                        w[k] = step(w[k] if k in w else fresh(), x)
                    j -= 1
                if t > self.max_time:
                    self.max_time = t
        except BaseException:
            self.at = i
            raise

    def _fold_sessions(self, items: list[Any], pos: int, now: float | None) -> None:
        gap, sessions, kidx = self.size, self.sessions, self.kidx
        timef, keyf = self._times(now), self.key
        event = self.time is not None
        i = pos
        try:
            for i in range(pos, len(items)):  # `i` is read when user code raises
                x = items[i]
                t = seconds(timef(x))
                k = keyf(x)
                wm = self.max_time - self.lateness if event else -math.inf
                if t < wm:
                    self._late(i, t, wm, k)
                    continue
                if k not in kidx:
                    kidx[k] = len(kidx)
                open_ = sessions.get(k)
                if open_ is None:
                    open_ = sessions[k] = []
                last = open_[-1] if open_ else None
                if last is not None and last[0] <= t < last[1] + gap:  # joins (or extends) the latest session
                    self._join(last, x)
                    if t > last[1]:
                        last[1] = t
                else:
                    self._new_session(open_, t, x)
                if t > self.max_time:
                    self.max_time = t
        except BaseException:
            self.at = i
            raise

    def _join(self, session: list[Any], x: Any) -> None:
        """Add *x* to an open session: fold it (with ``merge=``) or keep it for the close."""
        if self.merge is not None:
            session[2] = self.step(session[2], x)
        else:
            session[3].append([self.arrivals, x])
            self.arrivals += 1

    def _new_session(self, open_: list[list[Any]], t: float, x: Any) -> None:
        """*x* at *t* starts a session, merged with every open session it overlaps."""
        gap = self.size
        new: list[Any] = [t, t, None, []]
        if self.merge is not None:
            new[2] = self.step(self.fresh(), x)
        else:
            new[3].append([self.arrivals, x])
            self.arrivals += 1
        touching = [z for z in open_ if z[0] < t + gap and t < z[1] + gap]
        if touching:
            parts = sorted([*touching, new], key=lambda z: z[0])
            new = [parts[0][0], max(z[1] for z in parts), None, []]
            if self.merge is not None:
                acc = parts[0][2]
                for z in parts[1:]:
                    acc = self.merge(acc, z[2])
                new[2] = acc
            else:
                new[3] = sorted((a for z in parts for a in z[3]), key=lambda a: a[0])
            open_[:] = [z for z in open_ if all(z is not y for y in touching)]
        open_.append(new)
        open_.sort(key=lambda z: z[0])
        self.next_end = min(self.next_end, new[1] + gap)

    def _late(self, i: int, t: float, wm: float, key: Any) -> None:
        self.late_items.append((i, t, wm))
        self.late += 1
        if key not in self.kidx:
            self.kidx[key] = len(self.kidx)

    # -- closing ---------------------------------------------------------------------------------

    def _emit(self, wm: float) -> list[WindowResult]:
        """The windows whose end is at or below *wm*, removed, in order of end then key."""
        if wm < self.next_end:
            return []
        kidx = self.kidx
        due: list[tuple[float, int, float, Any, Any]] = []
        if isinstance(self.windower, Session):
            try:
                self._due_sessions(wm, due)
            except Exception as exc:
                raise ClosingFailed(exc) from exc
        else:
            size, wins = self.size, self.wins
            for s in [s for s in wins if s + size <= wm]:
                for k, acc in wins.pop(s).items():
                    due.append((s + size, kidx[k], s, k, acc))
            self.next_end = min(wins, default=math.inf) + size
        due.sort(key=lambda d: (d[0], d[1]))
        finish = self.finish
        try:
            out = [WindowResult(k, s, e, finish(acc)) for e, _, s, k, acc in due]
        except Exception as exc:
            raise ClosingFailed(exc) from exc
        self.emitted += len(out)
        return out

    def _due_sessions(self, wm: float, due: list[tuple[float, int, float, Any, Any]]) -> None:
        gap, kidx, nxt = self.size, self.kidx, math.inf
        for k in list(self.sessions):
            open_ = self.sessions[k]
            keep = []
            for z in open_:
                end = z[1] + gap
                if end <= wm:
                    due.append((end, kidx[k], z[0], k, self._session_acc(z)))
                else:
                    keep.append(z)
                    nxt = min(nxt, end)
            if keep:
                open_[:] = keep
            else:
                del self.sessions[k]
        self.next_end = nxt

    def _session_acc(self, z: list[Any]) -> Any:
        if self.merge is not None:
            return z[2]
        acc, step = self.fresh(), self.step
        for _, x in z[3]:
            acc = step(acc, x)
        return acc

    # -- state -----------------------------------------------------------------------------------

    def state(self) -> WindowState:
        """The whole state as one record of plain data (lists; keys, accumulators and items as they are)."""
        return WindowState(
            max_time=self.max_time,
            clock=self.clock,
            keys=list(self.kidx),
            windows=[[s, [[k, a] for k, a in w.items()]] for s, w in self.wins.items()],
            sessions=[[k, [[z[0], z[1], z[2], [list(a) for a in z[3]]] for z in open_]]
                      for k, open_ in self.sessions.items()],
            emitted=self.emitted,
            late=self.late,
            arrivals=self.arrivals,
        )

    def restore(
        self,
        st: WindowState,
        *,
        key: Callable[[Any], Any] = _same,
        acc: Callable[[Any], Any] = _same,
        item: Callable[[Any], Any] = _same,
    ) -> None:
        """Take back what :meth:`state` gave; *key*, *acc* and *item* turn decoded plain data back
        into the key, accumulator and item types."""
        self.max_time, self.clock = st.max_time, st.clock
        self.kidx = {key(k): n for n, k in enumerate(st.keys)}
        self.wins = {s: {key(k): acc(a) for k, a in pairs} for s, pairs in st.windows}
        self.sessions = {
            key(k): [[z[0], z[1], acc(z[2]) if self.merge is not None else None,
                      [[a[0], item(a[1])] for a in z[3]]] for z in open_]
            for k, open_ in st.sessions
        }
        self.emitted, self.late, self.arrivals = st.emitted, st.late, st.arrivals
        ends = [s + self.size for s in self.wins] + [z[1] + self.size for o in self.sessions.values() for z in o]
        self.next_end = min(ends, default=math.inf)


def _no_key(_item: Any) -> None:
    return None
