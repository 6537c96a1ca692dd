"""What a run gives back: its products (:class:`RunResult`) and its figures (:class:`Summary`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, final

import attrs


def task_status(task: str, run: str) -> str:
    """A task's status as figures show it: one still ``"running"`` (or pending, throttled) when its
    run had already failed, been cancelled or interrupted is ``"stopped"``."""
    if run in ("failed", "cancelled", "interrupted") and task in ("running", "pending", "throttled"):
        return "stopped"
    return task


@attrs.frozen
class TaskStats:
    """What one task did in a run.

    Attributes:
        items_in: items received (for a source: items produced).
        items_out: items sent downstream (1 for a final product).
        elapsed: seconds from the task's start to its end.
        status: ``"pending"``, ``"running"``, ``"throttled"`` (waiting for its ``rate_limit``),
            ``"finished"``, ``"failed"``, ``"interrupted"`` or ``"stopped"`` (the run ended first).
    """

    name: str
    kind: str
    status: str
    items_in: int
    items_out: int
    elapsed: float
    #: ``"hit"`` (products came from the cache), ``"cutoff"`` (a hit by early cutoff: a task it reads
    #: from ran again but sent the same items or product), ``"miss"`` (ran and was cached) or None.
    cache: str | None = None
    #: Seconds the task waited for its ``rate_limit`` (0.0 without one).
    throttled: float = 0.0
    #: Times the task's code raised on an item in this run (retried, dead-lettered or fatal).
    failures: int = 0
    #: Items the task was called on again (``af.Retry`` attempts and ``af.Restart`` restarts).
    retries: int = 0
    #: Items set aside as dead letters in this run.
    dead_letters: int = 0
    #: Items counted in ``items_in``/``items_out`` that were done before a resume (restored from the
    #: checkpoint): rates leave them out, since ``elapsed`` counts only this run's time.
    restored: int = 0
    #: Items of its zipped inputs dropped without a partner (see the ``ZipUnmatched`` event; 0 for
    #: a task with one streaming input).
    unmatched: int = 0
    #: Items that reached a window task behind its watermark (set aside as dead letters, never folded).
    late: int = 0
    #: Keys a keyed collector or window task holds state for (0 for other tasks).
    keys: int = 0
    #: (key, window) accumulators a window task holds open (0 for other tasks).
    open_windows: int = 0
    #: A window task's watermark in seconds (None: not a window task, or no item yet).
    watermark: float | None = None

    @property
    def windows_text(self) -> str:
        """Keys, open windows, watermark and late items as the console shows them ("" for other tasks)."""
        if not (self.keys or self.open_windows or self.late or self.watermark is not None):
            return ""
        parts = [f"{self.keys:,} keys"]
        if self.watermark is not None or self.open_windows:
            parts.append(f"{self.open_windows:,} open")
        if self.watermark is not None:
            parts.append(f"wm {self.watermark:,.3f}")
        if self.late:
            parts.append(f"{self.late:,} late")
        return ", ".join(parts)

    @property
    def from_cache(self) -> bool:
        """Its products came from the cache (a ``"hit"`` or a ``"cutoff"``): it did not run."""
        return self.cache in ("hit", "cutoff")

    @property
    def rate(self) -> float | None:
        """Items per second in this run: the larger of items in and out, less what a resume restored,
        over ``elapsed``. None for a task from the cache, or with no items or no time. The console,
        the dashboard and the summary table all show this one figure."""
        n = max(self.items_in, self.items_out) - self.restored
        if self.elapsed <= 0 or n <= 0 or self.from_cache:
            return None
        return n / self.elapsed

    @property
    def rate_text(self) -> str:
        """Items per second as the summary tables show it (``"-"`` when :attr:`rate` is None)."""
        rate = self.rate
        return "-" if rate is None else f"{rate:,.0f}"


@attrs.frozen
class Summary:
    """A run's figures: status, wall time and per-task statistics. ``str()`` gives a table."""

    flow: str
    run_id: str
    status: str
    elapsed: float
    tasks: Mapping[str, TaskStats]

    @property
    def failures(self) -> int:
        """Errors raised by tasks' code on items, over every task."""
        return sum(t.failures for t in self.tasks.values())

    @property
    def retries(self) -> int:
        """Items called again (retries and restarts), over every task."""
        return sum(t.retries for t in self.tasks.values())

    @property
    def dead_letters(self) -> int:
        """Items set aside as dead letters, over every task."""
        return sum(t.dead_letters for t in self.tasks.values())

    @property
    def show_failures(self) -> bool:
        """Whether tables show the failures/retries/dead columns (some task had one)."""
        return bool(self.failures or self.retries or self.dead_letters)

    def dead_letter_line(self, store: str | None = None) -> str | None:
        """One line saying which tasks set items aside, and where to see them; None without dead letters.

        Example: ``21 items dead-lettered in `validate` — see `actorflow dead-letters --store out``.
        """
        tasks = [t for t in self.tasks.values() if t.dead_letters]
        if not tasks:
            return None
        total = self.dead_letters
        where = ", ".join(f"`{t.name}`" + (f" ({t.dead_letters:,})" if len(tasks) > 1 else "") for t in tasks)
        see = (f"see `actorflow dead-letters --store {store}`" if store
               else "see result.dead_letters (a --store keeps them)")
        return f"{total:,} item{'s' if total != 1 else ''} dead-lettered in {where} — {see}"

    def __str__(self) -> str:
        cached = any(t.cache for t in self.tasks.values())
        errs = self.show_failures
        zipped = any(t.unmatched for t in self.tasks.values())
        windowed = any(t.windows_text for t in self.tasks.values())
        rows = [("task", "kind", "status", "in", "out", "seconds", "items/s",
                 *(("failures", "retries", "dead") if errs else ()), *(("unmatched",) if zipped else ()),
                 *(("cache",) if cached else ()), *(("keys / windows",) if windowed else ()))]
        for t in self.tasks.values():
            counts: tuple[str, ...] = (f"{t.failures:,}", f"{t.retries:,}", f"{t.dead_letters:,}") if errs else ()
            counts += (f"{t.unmatched:,}",) if zipped else ()
            extra = ((t.cache or "-",) if cached else ()) + ((t.windows_text or "-",) if windowed else ())
            rows.append(
                (t.name, t.kind, t.status, f"{t.items_in:,}", f"{t.items_out:,}", f"{t.elapsed:.3f}", t.rate_text,
                 *counts, *extra)
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        last_number = 6 + (3 if errs else 0) + (1 if zipped else 0)
        lines = [f"flow {self.flow!r}: {self.status} in {self.elapsed:.3f}s (run {self.run_id})"]
        for j, r in enumerate(rows):
            cells = zip(r, widths, strict=True)
            lines.append(
                ("  " + "  ".join(c.ljust(w) if i < 3 or i > last_number else c.rjust(w)
                                  for i, (c, w) in enumerate(cells))).rstrip()
            )
            if j == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        if (line := self.dead_letter_line()) is not None:
            lines.append(line)
        return "\n".join(lines)


@final
class RunResult(Mapping[str, Any]):
    """The products of a finished run, by task name, plus its :class:`Summary`.

    Products are those of collectors, of tasks fed only final inputs and of streams nothing
    reads (a :class:`~actorflow._storage._spill.SpilledStream`: every item in order, in flat memory).
    Sinks have none.
    """

    def __init__(
        self,
        products: dict[str, Any],
        summary: Summary,
        dead_letters: list[dict[str, Any]] | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self._products = products
        #: A nested flow's name reads its output task's product (``result["clean"]``).
        self._aliases = dict(aliases or {})
        self.summary = summary
        #: Items set aside by ``on_error=af.DeadLetter()`` (task, seq, item, error) in this run.
        self.dead_letters = list(dead_letters or [])

    def __getitem__(self, name: str) -> Any:
        try:
            return self._products[name]
        except KeyError:
            if name in self._aliases and self._aliases[name] in self._products:
                return self._products[self._aliases[name]]
            raise KeyError(f"no product named {name!r}; products: {sorted(self._products)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._products)

    def __len__(self) -> int:
        return len(self._products)

    def __repr__(self) -> str:
        return f"RunResult({self._products!r})"
