"""What a run gives back: its products (:class:`RunResult`) and its figures (:class:`Summary`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, final

import attrs


@attrs.frozen
class TaskStats:
    """What one task did in a run.

    Attributes:
        items_in: items received (for a source: items produced).
        items_out: items sent downstream (1 for a final product).
        elapsed: seconds from the task's start to its end.
        status: ``"pending"``, ``"running"``, ``"throttled"`` (waiting for its ``rate_limit``),
            ``"finished"`` or ``"failed"``.
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

    @property
    def from_cache(self) -> bool:
        """Its products came from the cache (a ``"hit"`` or a ``"cutoff"``): it did not run."""
        return self.cache in ("hit", "cutoff")

    @property
    def rate_text(self) -> str:
        """Items per second as the summary tables show it: ``"-"`` for a task from the cache, or
        with no items or no time."""
        n = max(self.items_in, self.items_out)
        return f"{n / self.elapsed:,.0f}" if self.elapsed > 0 and n and not self.from_cache else "-"


@attrs.frozen
class Summary:
    """A run's figures: status, wall time and per-task statistics. ``str()`` gives a table."""

    flow: str
    run_id: str
    status: str
    elapsed: float
    tasks: Mapping[str, TaskStats]

    def __str__(self) -> str:
        cached = any(t.cache for t in self.tasks.values())
        rows = [("task", "kind", "status", "in", "out", "seconds", "items/s", *(("cache",) if cached else ()))]
        for t in self.tasks.values():
            extra = (t.cache or "-",) if cached else ()
            rows.append(
                (t.name, t.kind, t.status, f"{t.items_in:,}", f"{t.items_out:,}", f"{t.elapsed:.3f}", t.rate_text,
                 *extra)
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"flow {self.flow!r}: {self.status} in {self.elapsed:.3f}s (run {self.run_id})"]
        for j, r in enumerate(rows):
            cells = zip(r, widths, strict=True)
            lines.append(
                ("  " + "  ".join(c.ljust(w) if i < 3 or i > 6 else c.rjust(w) for i, (c, w) in enumerate(cells)))
                .rstrip()
            )
            if j == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        return "\n".join(lines)


@final
class RunResult(Mapping[str, Any]):
    """The products of a finished run, by task name, plus its :class:`Summary`.

    Products are those of collectors, of tasks fed only final inputs and of streams nothing
    reads (a :class:`~actorflow._spill.SpilledStream`: every item in order, in flat memory).
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
