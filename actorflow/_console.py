"""Console feedback for a run: live progress bars per task, a summary table, an event log.

Everything here reads the run's own event stream and :attr:`Run.summary`; nothing slows the run.
The progress display is redrawn from the trio loop itself (rich's refresh thread is not used).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, final

import trio
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from . import _events as ev
from ._errors import ActorflowError

if TYPE_CHECKING:
    from ._monitor import MonitorServer
    from ._result import Summary
    from ._run import Run

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
}


class _RateColumn(ProgressColumn):
    """Items per second: the recent rate while running, the overall rate once done."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            n, elapsed = task.completed, task.fields.get("elapsed", 0.0)
            speed = n / elapsed if elapsed and n else None
        return Text("-" if speed is None else f"{speed:,.0f} items/s", style="magenta")


class _CountColumn(ProgressColumn):
    """``done/total`` when the total is known, otherwise ``done``."""

    def render(self, task: Task) -> Text:
        done = f"{int(task.completed):,}"
        return Text(done if task.total is None else f"{done}/{int(task.total):,}", style="bold")


def summary_table(summary: Summary) -> Table:
    """A rich table of a run's :class:`Summary`: one row per task, with counts, time and rate."""
    icon, style = _STATUS_STYLE.get(summary.status, ("?", ""))
    table = Table(
        title=f"flow {summary.flow!r}: [{style}]{icon} {summary.status}[/] in {summary.elapsed:.3f}s "
        f"(run {summary.run_id})",
        title_justify="left",
    )
    cached = any(t.cache for t in summary.tasks.values())
    windowed = any(t.windows_text for t in summary.tasks.values())
    for col, justify in (("task", "left"), ("kind", "left"), ("status", "left"), ("in", "right"),
                         ("out", "right"), ("seconds", "right"), ("items/s", "right"),
                         *((("cache", "left"),) if cached else ()),
                         *((("keys / windows", "left"),) if windowed else ())):
        table.add_column(col, justify=justify)
    for t in summary.tasks.values():
        icon, style = _STATUS_STYLE.get(t.status, ("?", ""))
        extra: tuple[Text | str, ...] = (Text(t.cache or "-", style="cyan" if t.from_cache else ""),) if cached else ()
        if windowed:
            extra += (Text(t.windows_text or "-", style="yellow" if t.late else ""),)
        table.add_row(t.name, t.kind, Text(f"{icon} {t.status}", style=style), f"{t.items_in:,}",
                      f"{t.items_out:,}", f"{t.elapsed:.3f}", t.rate_text, *extra)
    return table


@final
class ConsoleProgress:
    """Live progress bars for every task of a run, then a summary table.

    Create it right after entering :func:`open_run` (it subscribes to events at once), then run
    :meth:`watch` in a nursery; it returns when the run ends.

    A source can declare how many items it will yield, for a bar with a total: give its function
    a ``progress_total`` attribute, an int or a function called with the source's options
    (``numbers.progress_total = lambda n: n``).

    Args:
        run: the run to show.
        console: where to draw (default: a rich console on stderr).
        refresh_interval: seconds between redraws.
        show_summary: print the summary table at the end.

    Example:
        async with af.open_run(flow) as run:
            progress = af.console.ConsoleProgress(run)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(progress.watch)
                result = await run.result()
    """

    def __init__(
        self, run: Run, console: Console | None = None, refresh_interval: float = 0.1, show_summary: bool = True
    ) -> None:
        self.run = run
        self.console = console or Console(stderr=True)
        self.refresh_interval = refresh_interval
        self.show_summary = show_summary
        self.events = run.events()
        #: Lines describing task failures, as seen in events.
        self.failures: list[str] = []
        self.progress = Progress(
            TextColumn("{task.fields[icon]}", style="bold"),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=30),
            _CountColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[state]}", style="dim"),
            console=self.console,
            auto_refresh=False,
        )
        self._ids: dict[str, TaskID] = {}
        self._totals: dict[str, int] = {}
        for name, spec in run.graph.tasks.items():
            if spec.kind == "source" and (total := self._declared_total(name)) is not None:
                self._totals[name] = total
        for name, spec in run.graph.tasks.items():
            self._ids[name] = self.progress.add_task(
                name, total=None, start=False, icon=_STATUS_STYLE["pending"][0], state="pending", elapsed=0.0,
                kind=spec.kind,
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

    def update(self) -> None:
        """Copy the run's current figures into the bars and redraw."""
        summary = self.run.summary
        for name, t in summary.tasks.items():
            tid = self._ids[name]
            state = "paused" if self.run.paused and t.status == "running" else t.status
            if t.status != "pending" and not self.progress.tasks[tid].started:
                self.progress.start_task(tid)
            hit = t.from_cache
            self.progress.update(
                tid,
                completed=t.items_out if hit else self._count(name, t.items_in, t.items_out),
                total=t.items_out if hit else self._total(name, summary.tasks),
                icon=_STATUS_STYLE.get(state, ("?", ""))[0],
                state=f"{state} (from the cache)" if hit else (
                    f"{state} ({t.windows_text})" if t.windows_text else state
                ),
                elapsed=t.elapsed,
            )
            if t.status in ("finished", "failed") and not self.progress.tasks[tid].finished_time:
                self.progress.stop_task(tid)
        self.progress.refresh()

    async def watch(self) -> None:
        """Draw until the run ends, then print the summary table (and any failures)."""
        self.progress.start()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._redraw)
                async for event in self.events:
                    if isinstance(event, ev.TaskErrored):
                        self.failures.append(f"task {event.task!r} failed at item {event.seq!r}: {event.error}")
                    elif isinstance(event, ev.ItemSlow):
                        self.progress.console.print(Text(
                            f"task {event.task!r}: item {event.seq!r} has been running {event.seconds:.1f}s",
                            style="yellow",
                        ))
                    if isinstance(event, ev.TaskStarted | ev.TaskFinished | ev.TaskErrored | ev.RunFinished):
                        self.update()
                nursery.cancel_scope.cancel()
            self.update()
        finally:
            self.events.close()
            self.progress.stop()
        if self.show_summary:
            self.console.print(summary_table(self.run.summary))
            for line in self.failures:
                self.console.print(Text(line, style="red"))

    async def _redraw(self) -> None:
        while True:
            await trio.sleep(self.refresh_interval)
            self.update()


async def show_progress(run: Run, console: Console | None = None, **kwargs: Any) -> None:
    """Show live progress for *run* until it ends, then its summary table; see :class:`ConsoleProgress`.

    Call it right after entering :func:`open_run` (``nursery.start_soon`` is fine: the bars are
    driven by the run's counters, so no figure is missed).
    """
    await ConsoleProgress(run, console, **kwargs).watch()


class EventLogError(ActorflowError, OSError):
    """The event log file cannot be written (a missing folder, a directory, no permission)."""


def open_event_log(path: str | os.PathLike[str]) -> IO[str]:
    """Create (or truncate) the event log file *path* for writing.

    Raises:
        EventLogError: it cannot be opened for writing; the message says why.
    """
    try:
        return open(Path(path), "w", encoding="utf-8")
    except OSError as exc:
        raise EventLogError(f"cannot write the event log {str(path)!r}: {exc.strerror or exc}") from exc


@final
class EventLog:
    """Writes every event of a run as one JSON line (``--events FILE``).

    Create it right after entering :func:`open_run` so that ``run_started`` is the first line,
    then run :meth:`write` in a nursery; it returns after ``run_finished``.

    Args:
        run: the run to record.
        target: a path (created or truncated) or an open text file (left open).

    If the writer ever fell so far behind that batch events were dropped, a last line
    ``{"kind": "events_dropped", "count": N}`` says how many.
    """

    def __init__(self, run: Run, target: str | os.PathLike[str] | IO[str]) -> None:
        self.run = run
        self.events = run.events(maxlen=1_000_000)
        self.target = target
        #: Lines written so far.
        self.lines = 0

    async def write(self) -> None:
        """Write events until the run ends."""
        own = isinstance(self.target, str | os.PathLike)
        f: IO[str] = (
            open_event_log(self.target)  # type: ignore[arg-type]
            if own else self.target  # type: ignore[assignment]
        )
        try:
            async for event in self.events:
                f.write(json.dumps(event.to_dict(), default=repr, separators=(",", ":")) + "\n")
                self.lines += 1
                if not self.events._queue:
                    f.flush()  # caught up: make what we have visible to `tail -f`
            if self.events.dropped:
                f.write(json.dumps({"kind": "events_dropped", "count": self.events.dropped}) + "\n")
        finally:
            self.events.close()
            if own:
                f.close()
            else:
                f.flush()


def parse_host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """Read ``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` or ``PORT`` (as given to ``--monitor``).

    Raises:
        ActorflowError: the text is not of that form or the port is not in 0..65535.
    """
    raw = text.strip()
    host, port_text = default_host, raw
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0 or not raw[end + 1:].startswith(":"):
            raise ActorflowError(f"--monitor: expected [IPV6]:PORT, got {text!r}")
        host, port_text = raw[1:end], raw[end + 2:]
    elif ":" in raw:
        host, _, port_text = raw.rpartition(":")
        host = host or default_host
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ActorflowError(f"--monitor: expected HOST:PORT with a port number 0-65535, got {text!r}")
    return host, int(port_text)


@asynccontextmanager
async def observe(
    run: Run,
    *,
    quiet: bool = False,
    events: str | os.PathLike[str] | IO[str] | None = None,
    monitor: str | None = None,
    monitor_token: str | None = None,
    console: Console | None = None,
    linger: float = 0.5,
    monitor_listeners: Sequence[trio.SocketListener] | None = None,
) -> AsyncIterator[MonitorServer | None]:
    """Attach what ``actorflow run`` shows to *run*: live console progress, an event log, a monitor.

    Enter it right after :func:`open_run` and wait for the run inside the block. On leaving, the
    summary table is printed and the monitor (if any) keeps serving for *linger* seconds so its
    clients receive the last events.

    Args:
        run: the run to observe.
        quiet: no progress bars and no summary table.
        events: a path (or open text file) to write every event to as one JSON line.
        monitor: ``HOST:PORT`` to serve the websocket monitor and dashboard on.
        monitor_token: the token the monitor requires (needed for a non-loopback host).
        console: where progress goes (default: stderr).
        linger: seconds the monitor stays up after the run ended.
        monitor_listeners: sockets already listening on *monitor* (see :func:`prepare_observe`).

    The event log file is opened and the monitor's address bound on entering, before anything is
    shown; if either fails, nothing is started.

    Yields:
        The :class:`MonitorServer` when *monitor* was given, else None.

    Raises:
        EventLogError: the *events* file cannot be written.
        MonitorBindError: the *monitor* address cannot be listened on.
        ActorflowError: *monitor* is not ``HOST:PORT``, or needs a token.

    Example:
        async with af.open_run(flow) as run, af.console.observe(run, monitor="127.0.0.1:8765") as server:
            result = await run.result()
    """
    from ._monitor import open_monitor

    con = console or Console(stderr=True)
    server: MonitorServer | None = None
    body_error: BaseException | None = None
    async with AsyncExitStack() as stack:
        if isinstance(events, str | os.PathLike):
            events = stack.enter_context(open_event_log(events))  # a bad path fails before anything starts
        address = parse_host_port(monitor) if monitor is not None else None
        # subscribed before the first await, so that no event is missed
        progress = None if quiet else ConsoleProgress(run, con)
        log = EventLog(run, events) if events is not None else None
        if address is not None:
            try:
                server = await stack.enter_async_context(
                    open_monitor(run, *address, token=monitor_token, listeners=monitor_listeners)
                )
            except BaseException:
                for watcher in (progress, log):
                    if watcher is not None:
                        watcher.events.close()
                raise
            con.print(f"monitor: dashboard at {server.http_url}  (websocket {server.url})")
        async with trio.open_nursery() as nursery:
            if progress is not None:
                nursery.start_soon(progress.watch)
            if log is not None:
                nursery.start_soon(log.write)
            try:
                yield server
            except BaseException as exc:  # re-raised below as it is, not wrapped in an exception group
                body_error = exc
                nursery.cancel_scope.cancel()
        if server is not None and body_error is None and server.clients:
            with trio.move_on_after(linger):
                await run.wait_done()
                await trio.sleep(linger)  # let the monitor's clients receive the last events
    if body_error is not None:
        raise body_error


@asynccontextmanager
async def prepare_observe(options: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """:func:`observe`'s *options* with the event log opened and the monitor bound, for a run to come.

    Enter it before :func:`open_run`: a bad ``--events`` file or ``--monitor`` address then fails
    before the run (and its store) is touched. The file and sockets are closed on leaving.

    Raises:
        EventLogError, MonitorBindError, ActorflowError: as :func:`observe` would.
    """
    from ._monitor import bind_monitor

    out = dict(options)
    async with AsyncExitStack() as stack:
        events = out.get("events")
        if isinstance(events, str | os.PathLike):
            out["events"] = stack.enter_context(open_event_log(events))
        if out.get("monitor") is not None and not out.get("monitor_listeners"):
            host, port = parse_host_port(out["monitor"])
            listeners = await bind_monitor(host, port, out.get("monitor_token"))
            for listener in listeners:
                stack.push_async_callback(listener.aclose)  # already closed once a monitor served on it
            out["monitor_listeners"] = listeners
        yield out


def add_observe_arguments(parser: Any) -> None:
    """Add ``--quiet``, ``--events FILE``, ``--monitor HOST:PORT`` and ``--monitor-token`` to an argparse parser.

    The CLI then wraps its run in ``observe(run, **observe_options(args))``.
    """
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars and no summary table")
    parser.add_argument("--events", metavar="FILE", default=None, help="write every event to FILE as one JSON line")
    parser.add_argument(
        "--monitor", metavar="HOST:PORT", default=None,
        help="serve the websocket monitor and the live dashboard (e.g. 127.0.0.1:8765)",
    )
    parser.add_argument(
        "--monitor-token", metavar="TOKEN", default=os.environ.get("ACTORFLOW_MONITOR_TOKEN"),
        help="token every monitor client must present; needed to bind a non-loopback address "
        "(default: $ACTORFLOW_MONITOR_TOKEN)",
    )


def observe_options(args: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`observe` from arguments parsed with :func:`add_observe_arguments`."""
    return {
        "quiet": bool(args.quiet),
        "events": args.events,
        "monitor": args.monitor,
        "monitor_token": args.monitor_token,
    }
