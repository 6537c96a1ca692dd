"""Console progress for a run: live bars per task on a terminal, plain lines in logs, the summary table.

Everything here reads the run's own event stream and :attr:`Run.summary`; nothing slows the run.
The progress display is redrawn from the trio loop itself (rich's refresh thread is not used).
Every rate shown is :attr:`TaskStats.rate`, the one formula the summary table uses too. User
text (flow and task names) is never read as rich markup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, final

import trio
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from .._base import _events as ev

if TYPE_CHECKING:
    from .._base import Summary, TaskStats
    from .._run import Run

_STATUS_STYLE = {
    "pending": ("·", "dim"),
    "running": ("▶", "cyan"),
    "throttled": ("⧗", "magenta"),
    "finished": ("✔", "green"),
    "ok": ("✔", "green"),
    "failed": ("✘", "bold red"),
    "cancelled": ("■", "yellow"),
    "interrupted": ("■", "yellow"),
    "paused": ("‖", "yellow"),
    "stopped": ("■", "yellow"),
}


class _CountColumn(ProgressColumn):
    """``done/total`` when the total is known, otherwise ``done``."""

    def render(self, task: Task) -> Text:
        done = f"{int(task.completed):,}"
        return Text(done if task.total is None else f"{done}/{int(task.total):,}", style="bold")


class _FieldColumn(ProgressColumn):
    """One of the figures :meth:`ConsoleProgress.update` computes, from the task's fields (never markup)."""

    def __init__(self, field: str, style: str = "") -> None:
        super().__init__()
        self.field = field
        self.style = style

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get(self.field, "")), style=self.style)


class _Progress(Progress):
    """Rich's progress bars with one status line under them (checkpoints, dead letters)."""

    status: Text = Text()

    def get_renderables(self) -> Any:
        yield self.make_tasks_table(self.tasks)
        if self.status.plain:
            yield self.status


def _eta(t: TaskStats, total: int | None, done: int) -> str:
    rate = t.rate
    if total is None or t.status != "running" or not rate or done >= total:
        return ""
    return "ETA " + _duration((total - done) / rate)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _rate(t: TaskStats) -> str:
    rate = t.rate
    return "-" if rate is None else f"{rate:,.0f} items/s"


def _counts(t: TaskStats) -> str:
    """``2 retries, 21 dead`` for a task's failures (empty when none)."""
    parts = [f"{t.retries:,} retr{'ies' if t.retries != 1 else 'y'}" if t.retries else "",
             f"{t.dead_letters:,} dead" if t.dead_letters else "",
             f"{t.failures:,} error{'s' if t.failures != 1 else ''}" if t.failures and not t.retries
             and not t.dead_letters else ""]
    return ", ".join(p for p in parts if p)


def summary_table(summary: Summary) -> Table:
    """A rich table of a run's :class:`Summary`: one row per task, with counts, time and rate, and
    failures, retries and dead letters when there were any. Names are never read as markup."""
    icon, style = _STATUS_STYLE.get(summary.status, ("?", ""))
    title = Text(f"flow {summary.flow!r}: ")
    title.append(f"{icon} {summary.status}", style=style)
    title.append(f" in {summary.elapsed:.3f}s (run {summary.run_id})")
    table = Table(title=title, title_justify="left")
    cached = any(t.cache for t in summary.tasks.values())
    errs = summary.show_failures
    zipped = any(t.unmatched for t in summary.tasks.values())
    windowed = any(t.windows_text for t in summary.tasks.values())
    for col, justify in (("task", "left"), ("kind", "left"), ("status", "left"), ("in", "right"),
                         ("out", "right"), ("seconds", "right"), ("items/s", "right"),
                         *((("failures", "right"), ("retries", "right"), ("dead", "right")) if errs else ()),
                         *((("unmatched", "right"),) if zipped else ()),
                         *((("cache", "left"),) if cached else ()),
                         *((("keys / windows", "left"),) if windowed else ())):
        table.add_column(col, justify=justify)
    for t in summary.tasks.values():
        icon, style = _STATUS_STYLE.get(t.status, ("?", ""))
        counts: tuple[Text | str, ...] = (
            f"{t.failures:,}", f"{t.retries:,}", Text(f"{t.dead_letters:,}", style="red" if t.dead_letters else "")
        ) if errs else ()
        counts += (f"{t.unmatched:,}",) if zipped else ()
        extra: tuple[Text | str, ...] = (Text(t.cache or "-", style="cyan" if t.from_cache else ""),) if cached else ()
        if windowed:
            extra += (Text(t.windows_text or "-", style="yellow" if t.late else ""),)
        table.add_row(Text(t.name), t.kind, Text(f"{icon} {t.status}", style=style), f"{t.items_in:,}",
                      f"{t.items_out:,}", f"{t.elapsed:.3f}", t.rate_text, *counts, *extra)
    return table


def failure_line(event: ev.TaskErrored) -> str:
    """How the console reports a task failure: task, item seq and short repr, error, ``file:line``."""
    item = f" ({event.item})" if event.item is not None else ""
    where = f" — at {event.where}" if event.where else ""
    return f"task {event.task!r} failed at item {event.seq!r}{item}: {event.error}{where}"


@final
class ConsoleProgress:
    """Live progress bars for every task of a run, then a summary table.

    Create it right after entering :func:`open_run` (it subscribes to events at once), then run
    :meth:`watch` in a nursery; it returns when the run ends.

    On a terminal it draws bars with counts, percent and ETA (where a total is known), the rate,
    elapsed time (stopped when a task ends) and a status line (checkpoints, dead letters). When the
    console is not a terminal (a CI log, a file) it prints plain lines instead: one per task every
    *log_interval* seconds and at the end, then the summary as plain text, never cut to a width.

    A source can declare how many items it will yield, for a bar with a total: give its function
    a ``progress_total`` attribute, an int or a function called with the source's options
    (``numbers.progress_total = lambda n: n``).

    Args:
        run: the run to show.
        console: where to draw (default: a rich console on stderr).
        refresh_interval: seconds between redraws.
        show_summary: print the summary table at the end.
        plain: print plain lines (default: when the console is not a terminal).
        log_interval: seconds between plain progress lines.

    Example:
        async with af.open_run(flow) as run:
            progress = af.console.ConsoleProgress(run)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(progress.watch)
                result = await run.result()
    """

    def __init__(
        self, run: Run, console: Console | None = None, refresh_interval: float = 0.1, show_summary: bool = True,
        plain: bool | None = None, log_interval: float = 5.0,
    ) -> None:
        self.run = run
        self.console = console or Console(stderr=True)
        self.refresh_interval = refresh_interval
        self.show_summary = show_summary
        self.plain = not self.console.is_terminal if plain is None else plain
        self.log_interval = log_interval
        self.events = run.events()
        #: Lines describing task failures, as seen in events.
        self.failures: list[str] = []
        #: Checkpoints written during the run (seen in events).
        self.checkpoints = 0
        self.progress = _Progress(
            TextColumn("{task.fields[icon]}", style="bold"),
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(bar_width=30),
            _CountColumn(),
            _FieldColumn("percent"),
            _FieldColumn("rate", "magenta"),
            _FieldColumn("clock", "yellow"),
            _FieldColumn("eta", "cyan"),
            _FieldColumn("state", "dim"),
            console=self.console,
            auto_refresh=False,
        )
        self._ids: dict[str, TaskID] = {}
        self._totals: dict[str, int] = {}
        self._ended = False
        for name, spec in run.graph.tasks.items():
            if spec.kind == "source" and (total := self._declared_total(name)) is not None:
                self._totals[name] = total
        for name, spec in run.graph.tasks.items():
            self._ids[name] = self.progress.add_task(
                name, total=None, start=False, icon=_STATUS_STYLE["pending"][0], state="pending", kind=spec.kind,
                percent="", rate="-", clock="0:00", eta="",
            )

    def _count(self, name: str, items_in: int, items_out: int) -> int:
        return items_out if self.run.graph.tasks[name].kind == "source" else items_in

    def _declared_total(self, name: str) -> int | None:
        """A source's ``progress_total`` attribute: an int, or a function of the source's options."""
        hint = getattr(self.run.graph.tasks[name].fn, "progress_total", None)
        if callable(hint):
            try:
                hint = hint(**dict(self.run.graph.options.get(name, {})))
            except Exception:  # a broken hint must not break the display
                return None
        return hint if isinstance(hint, int) and not isinstance(hint, bool) and hint >= 0 else None

    def _total(self, name: str, stats: Mapping[str, Any]) -> int | None:
        """Declared by a source, or known once the one upstream of a one-item-per-item task finished."""
        spec = self.run.graph.tasks[name]
        if name in self._totals:
            return self._totals[name]
        if spec.kind == "source" or (spec.is_generator and spec.kind == "task"):
            return None
        ups = spec.streaming_inputs
        if len(ups) != 1:
            return None
        up_name = ups[0].upstream
        up = stats[up_name]
        if up.status == "finished":
            return int(up.items_out)
        return self._totals.get(up_name)

    def _state(self, t: TaskStats) -> str:
        state = "paused" if self.run.paused and t.status == "running" else t.status
        if self._ended and state in ("running", "pending", "throttled"):
            state = "stopped"  # the run ended (a failure elsewhere, a cancel) before this task did
        if t.from_cache:
            state += " (from the cache)"
        if t.restored:
            state += f" (restored {t.restored:,})"
        if counts := _counts(t):
            state += f" [{counts}]"
        return state

    def figures(self) -> dict[str, dict[str, Any]]:
        """Per task: what its bar and its plain line show (count, total, percent, rate, clock, ETA, state)."""
        summary = self.run.summary
        out: dict[str, dict[str, Any]] = {}
        for name, t in summary.tasks.items():
            done = t.items_out if t.from_cache else self._count(name, t.items_in, t.items_out)
            total = t.items_out if t.from_cache else self._total(name, summary.tasks)
            if total is None and t.status == "finished":
                total = done  # a finished bar is full, not pulsing
            percent = f"{min(100.0, 100 * done / total):.0f}%" if total else ""
            out[name] = {"stats": t, "completed": done, "total": total, "percent": percent, "rate": _rate(t),
                         "clock": _duration(t.elapsed), "eta": _eta(t, total, done), "state": self._state(t)}
        return out

    def update(self) -> None:
        """Copy the run's current figures into the bars and redraw."""
        for name, f in self.figures().items():
            tid, t = self._ids[name], f["stats"]
            if t.status != "pending" and not self.progress.tasks[tid].started:
                self.progress.start_task(tid)
            state = f["state"].split(" ")[0]
            self.progress.update(
                tid, completed=f["completed"], total=f["total"], icon=_STATUS_STYLE.get(state, ("■", ""))[0],
                state=f["state"], percent=f["percent"], rate=f["rate"], clock=f["clock"], eta=f["eta"],
            )
            if (t.status not in ("running", "pending", "throttled") or self._ended) \
                    and not self.progress.tasks[tid].finished_time and self.progress.tasks[tid].started:
                self.progress.stop_task(tid)
        self.progress.status = Text(self._status_line(), style="dim")
        if not self.plain:
            self.progress.refresh()

    def _status_line(self) -> str:
        parts = []
        if self.checkpoints:
            parts.append(f"⛁ checkpoint #{self.checkpoints} written")
        dead = self.run.summary.dead_letters
        if dead:
            parts.append(f"{dead:,} dead letter{'s' if dead != 1 else ''}")
        return "  ".join(parts)

    def plain_lines(self) -> list[str]:
        """One plain line per task (for logs): never cut, whatever the console's width."""
        clock = _duration(self.run.summary.elapsed)
        lines = []
        for name, f in self.figures().items():
            count = f"{f['completed']:,}" + (f"/{f['total']:,}" if f["total"] is not None else "")
            cells = [f"[{clock}]", name, f["state"], count, f["percent"], f["rate"], f["clock"], f["eta"]]
            lines.append("  ".join(c for c in cells if c))
        if status := self._status_line():
            lines.append(f"[{clock}] {status}")
        return lines

    def _write_plain(self, text: str) -> None:
        self.console.file.write(text + "\n")
        self.console.file.flush()

    async def watch(self) -> None:
        """Draw until the run ends, then print the summary table (and any failures)."""
        if not self.plain:
            self.progress.start()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._plain_log if self.plain else self._redraw)
                async for event in self.events:
                    self._on_event(event)
                nursery.cancel_scope.cancel()
            self._ended = True
            self.update()
        finally:
            self.events.close()
            if not self.plain:
                self.progress.stop()
        if self.plain:
            self._write_plain("\n".join(self.plain_lines()))
        if self.show_summary:
            summary = self.run.summary
            if self.plain:
                self._write_plain(str(summary))
            else:
                self.console.print(summary_table(summary))
            for line in self.failures:
                if self.plain:
                    self._write_plain(line)
                else:
                    self.console.print(Text(line, style="red"))

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.TaskErrored):
            self.failures.append(failure_line(event))
        elif isinstance(event, ev.CheckpointWritten):
            self.checkpoints += 1
        elif isinstance(event, ev.ItemSlow):
            line = f"task {event.task!r}: item {event.seq!r} has been running {event.seconds:.1f}s"
            if self.plain:
                self._write_plain(line)
            else:
                self.progress.console.print(Text(line, style="yellow"))
        if isinstance(event, ev.RunFinished):
            self._ended = True
        if isinstance(event, ev.TaskStarted | ev.TaskFinished | ev.TaskErrored | ev.RunFinished):
            self.update()

    async def _redraw(self) -> None:
        while True:
            await trio.sleep(self.refresh_interval)
            self.update()

    async def _plain_log(self) -> None:
        while True:
            await trio.sleep(self.log_interval)
            self._write_plain("\n".join(self.plain_lines()))


async def show_progress(run: Run, console: Console | None = None, **kwargs: Any) -> None:
    """Show live progress for *run* until it ends, then its summary table; see :class:`ConsoleProgress`.

    Call it right after entering :func:`open_run` (``nursery.start_soon`` is fine: the bars are
    driven by the run's counters, so no figure is missed).
    """
    await ConsoleProgress(run, console, **kwargs).watch()
