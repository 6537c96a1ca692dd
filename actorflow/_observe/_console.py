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
from rich.text import Text

from .._base import ActorflowError
from ._progress import ConsoleProgress as ConsoleProgress
from ._progress import show_progress as show_progress
from ._progress import summary_table as summary_table

if TYPE_CHECKING:
    from .._run import Run
    from ._monitor import MonitorServer


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
    metrics_push: str | None = None,
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
        metrics_push: a Prometheus Pushgateway (``host:port`` or URL) to push the run's final
            metrics to once it ended (a push that fails is reported on the console, not raised).

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
    from ._monitor_metrics import MetricsCollector

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
        pusher = MetricsCollector(run) if metrics_push and address is None else None
        if pusher is not None:
            stack.callback(pusher.close)
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
            con.print(Text(f"monitor: dashboard at {server.http_url}  (websocket {server.url})"))
        async with trio.open_nursery() as nursery:
            if progress is not None:
                nursery.start_soon(progress.watch)
            if log is not None:
                nursery.start_soon(log.write)
            try:
                yield server
            except BaseException as exc:  # re-raised below as it is, not wrapped in an exception group
                body_error = exc
                if not run.done:  # else the watchers end by themselves: bars stopped, summary printed
                    nursery.cancel_scope.cancel()
        collector = pusher if pusher is not None else server.metrics if server is not None else None
        if metrics_push and run.done and collector is not None:
            await _push(collector, metrics_push, con)
        if server is not None and body_error is None and server.clients:
            with trio.move_on_after(linger):
                await run.wait_done()
                await trio.sleep(linger)  # let the monitor's clients receive the last events
    if body_error is not None:
        raise body_error


async def _push(collector: Any, gateway: str, con: Console) -> None:
    """Push the final metrics; a gateway that fails gets one line, never the run's exit code."""
    try:
        await collector.push(gateway)
    except OSError as exc:
        con.print(Text(f"actorflow: metrics not pushed: {exc}", style="yellow"))
    else:
        con.print(Text(f"actorflow: final metrics pushed to {gateway}", style="dim"))


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
    """Add ``--quiet``, ``--events FILE``, ``--monitor HOST:PORT``, ``--monitor-token`` and ``--metrics-push URL``
    to an argparse parser.

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
    parser.add_argument(
        "--metrics-push", metavar="URL", default=None,
        help="push the run's final Prometheus metrics to this Pushgateway (host:port or URL) when it ends",
    )


def observe_options(args: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`observe` from arguments parsed with :func:`add_observe_arguments`."""
    return {
        "quiet": bool(args.quiet),
        "events": args.events,
        "monitor": args.monitor,
        "monitor_token": args.monitor_token,
        "metrics_push": getattr(args, "metrics_push", None),
    }
