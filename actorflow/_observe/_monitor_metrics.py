"""A run's counters in the Prometheus text exposition format (version 0.0.4), written by hand.

:class:`MetricsCollector` reads two things: the run's own counters, read at each scrape (items
in and out, time, status, queued items, busy time), and the run's event stream for what only
events carry (failures, retries, restarts, dead letters, checkpoints and their duration, cache
hits and misses). The monitor serves it at ``GET /metrics``; a service that embeds a run mounts
:meth:`MetricsCollector.render` on its own server, or serves :meth:`MetricsCollector.handle` with
``trio.serve_tcp``.

Only lifecycle events are counted, and those are never dropped, so the figures are exact as long as
the collector was created right after :func:`~actorflow.open_run` (as every observer is).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, final
from urllib.parse import urlsplit

import attrs
import trio

from .._base import _events as ev
from ._monitor_http import read_request, refused, request_fields, respond
from ._monitor_process import process_samples, push_text

if TYPE_CHECKING:
    from .._base import Summary
    from .._run import Run

#: The ``Content-Type`` of :meth:`MetricsCollector.render`'s text.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The path the monitor (and :meth:`MetricsCollector.handle`) serves the metrics on.
METRICS_PATH = "/metrics"


#: How many lifecycle events a monitor keeps for clients that connect late.
HISTORY_LENGTH = 1000
_ERROR_EVENTS = (ev.TaskErrored, ev.ItemRetried, ev.ItemDeadLettered, ev.ActorRestarted)

#: Every status a run can have: ``actorflow_run_status`` has one series for each.
RUN_STATUSES = ("pending", "running", "ok", "failed", "cancelled", "interrupted")

#: Per-task families: (key, name, type, help). Units are in the names (seconds, bytes) as Prometheus asks.
_TASK_METRICS = (
    ("items_in", "actorflow_task_items_in_total", "counter",
     "Items a task received (for a source: items it produced)."),
    ("items_out", "actorflow_task_items_out_total", "counter", "Items a task sent downstream."),
    ("failures", "actorflow_task_failures_total", "counter",
     "Times a task's code raised on an item, whatever its policy then did."),
    ("retries", "actorflow_task_retries_total", "counter",
     "Items the task was called on again (Retry attempts and Restart restarts)."),
    ("restarts", "actorflow_task_restarts_total", "counter",
     "Times the task's actor was restarted under a Restart policy."),
    ("dead_letters", "actorflow_task_dead_letters_total", "counter", "Items set aside as dead letters."),
    ("queue", "actorflow_task_queue_depth", "gauge", "Items waiting in the task's inbox mailboxes."),
    ("busy", "actorflow_task_busy_seconds_total", "counter",
     "Worker-seconds the task spent processing batches (its code running), summed over its concurrent workers: "
     "with concurrency=4 it can grow up to 4 seconds per second."),
    ("throttled", "actorflow_task_throttled_seconds_total", "counter",
     "Seconds the task waited for its rate_limit (only tasks with a rate_limit)."),
    ("elapsed", "actorflow_task_elapsed_seconds", "gauge",
     "Seconds from the task's start to its end (or to now while it runs)."),
    ("running", "actorflow_task_running", "gauge", "1 while the task is running."),
    ("late", "actorflow_task_late_total", "counter",
     "Items that reached a window task behind its watermark (set aside as dead letters)."),
    ("keys", "actorflow_task_keys", "gauge", "Keys a keyed collector or window task holds state for."),
    ("open_windows", "actorflow_task_open_windows", "gauge", "(key, window) accumulators a window task holds open."),
    ("watermark", "actorflow_task_watermark_seconds", "gauge",
     "A window task's watermark: the largest event time seen minus its lateness (or the clock)."),
    ("batch", "actorflow_task_batch_duration_seconds", "histogram",
     "Seconds one batch took to process (the batch cycle's time, user code included)."),
    ("hits", "actorflow_cache_hits_total", "counter",
     "Cache hits: the task's products came from the cache and its code did not run (only cacheable tasks)."),
    ("misses", "actorflow_cache_misses_total", "counter",
     "Cache misses: the task ran and its products are cached (only cacheable tasks)."),
)


@attrs.define
class _TaskCounts:
    failures: int = 0
    retries: int = 0
    restarts: int = 0
    dead_letters: int = 0
    cache_hits: int = 0
    cache_misses: int = 0


@attrs.frozen
class Metric:
    """One metric family of the exposition: its name, type, help text and samples.

    Attributes:
        name: the metric's name (``actorflow_...``; counters end in ``_total``).
        type: ``"counter"``, ``"gauge"``, ``"summary"`` or ``"histogram"``.
        help: one line saying what it measures.
        samples: ``(suffix, labels, value)`` triples; *suffix* is ``""`` or, for a summary or
            histogram, ``"_sum"`` / ``"_count"`` (and ``"_bucket"``, with an ``le`` label).
    """

    name: str
    type: str
    help: str
    samples: tuple[tuple[str, tuple[tuple[str, str], ...], float], ...]


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def exposition(metrics: Iterable[Metric]) -> str:
    """*metrics* in the Prometheus text format (``# HELP``, ``# TYPE``, one line per sample)."""
    lines: list[str] = []
    for m in metrics:
        lines.append(f"# HELP {m.name} {_escape_help(m.help)}")
        lines.append(f"# TYPE {m.name} {m.type}")
        for suffix, labels, value in m.samples:
            text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
            labelled = f"{{{text}}}" if text else ""
            lines.append(f"{m.name}{suffix}{labelled} {_number(value)}")
    return "\n".join(lines) + "\n"


@final
class MetricsCollector:
    """Prometheus metrics of one run. Get it with :func:`actorflow.metrics.collector`.

    Create it right after entering :func:`~actorflow.open_run` (it subscribes to the run's events
    at once), then either run :meth:`watch` in a nursery (it counts events as they come and
    returns when the run ends) or just call :meth:`render` now and then: it first counts the
    events that arrived since the last call.

    Example:
        async with af.open_run(flow) as run:
            metrics = af.metrics.collector(run)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(metrics.watch)
                await nursery.start(trio.serve_tcp, metrics.handle, 9464)   # GET /metrics
                await run.result()
                nursery.cancel_scope.cancel()
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        # Batch events are not counted, so few need be kept: a reader behind by 64 drops them.
        self._events = run.events(maxlen=64)
        self._tasks = {name: _TaskCounts() for name in run.graph.tasks}
        self.checkpoints = 0
        self.checkpoint_pause_seconds = 0.0
        self.checkpoint_write_seconds = 0.0
        self.checkpoint_bytes = 0
        #: The run's lifecycle events so far (no batch events), newest last, as sent to a monitor
        #: client that connects late; the oldest go first past HISTORY_LENGTH.
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_LENGTH)
        #: The last error a task's code raised (its event as a dict), or None.
        self.last_error: dict[str, Any] | None = None

    # -- counting events ---------------------------------------------------------------------

    def _count(self, event: ev.Event) -> None:
        if type(event) is not ev.BatchProcessed:
            record = event.to_dict()
            self.history.append(record)
            if isinstance(event, _ERROR_EVENTS):
                self.last_error = record
        task = getattr(event, "task", None)
        counts = self._tasks.get(task) if isinstance(task, str) else None
        if isinstance(event, ev.CheckpointWritten):
            self.checkpoints += 1
            self.checkpoint_pause_seconds += event.pause_seconds
            self.checkpoint_write_seconds += event.write_seconds
            self.checkpoint_bytes = event.size_bytes
        elif counts is None:
            return
        elif isinstance(event, ev.ItemRetried):
            counts.retries += 1
            counts.failures += 1
        elif isinstance(event, ev.ActorRestarted):
            counts.restarts += 1
            counts.failures += 1
        elif isinstance(event, ev.ItemDeadLettered):
            counts.dead_letters += 1
            counts.failures += 1
        elif isinstance(event, ev.TaskErrored):
            counts.failures += 1
        elif isinstance(event, ev.CacheHit):
            counts.cache_hits += 1
        elif isinstance(event, ev.CacheMiss):
            counts.cache_misses += 1

    def history_now(self) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The run's lifecycle events up to this moment, and its last error: for a client that
        subscribes to the run's events in the same step (nothing between is lost or repeated)."""
        self._drain()
        return list(self.history), self.last_error

    def _drain(self) -> None:
        while (event := self._events.get_nowait()) is not None:
            self._count(event)

    async def watch(self) -> None:
        """Count the run's events as they come; returns once the run has ended."""
        async for event in self._events:
            self._count(event)

    def close(self) -> None:
        """Stop reading the run's events (the run's own counters can still be rendered)."""
        self._drain()
        self._events.close()

    # -- the exposition ------------------------------------------------------------------------

    def _queued(self) -> dict[str, int]:
        """Items waiting in each task's inbox mailboxes."""
        return {**dict.fromkeys(self._tasks, 0), **self.run.runtime.queued()}

    def metrics(self) -> list[Metric]:
        """The metric families as values (what :meth:`render` writes out)."""
        self._drain()
        run = self.run
        summary = run.summary
        flow = ("flow", summary.flow)
        run_labels = (flow,)
        return [
            Metric("actorflow_run_info", "gauge", "The run being measured: always 1, labelled with its flow and id.",
                   (("", (flow, ("run_id", summary.run_id)), 1),)),
            Metric("actorflow_run_status", "gauge",
                   "1 for the run's current status, 0 for the others (one series per possible status).",
                   tuple(("", (flow, ("status", s)), int(summary.status == s)) for s in RUN_STATUSES)),
            Metric("actorflow_run_elapsed_seconds", "gauge", "Seconds since the run started (its duration once ended).",
                   (("", run_labels, summary.elapsed),)),
            Metric("actorflow_run_paused", "gauge", "1 while the run is paused.", (("", run_labels, run.paused),)),
            *self._task_metrics(summary, flow),
            *self._checkpoint_metrics(run_labels),
            *(Metric(name, kind, text, (("", (), value),)) for name, kind, text, value in process_samples()),
        ]

    def _task_metrics(self, summary: Summary, flow: tuple[str, str]) -> list[Metric]:
        queued = self._queued()
        busy = self.run.runtime.busy()
        actors: Mapping[str, Any] = self.run.actors
        per_task: dict[str, list[tuple[str, tuple[tuple[str, str], ...], float]]] = {}

        def add(key: str, task: str, value: float, suffix: str = "", extra: tuple[tuple[str, str], ...] = ()) -> None:
            per_task.setdefault(key, []).append((suffix, (flow, ("task", task), *extra), value))

        for name, t in summary.tasks.items():
            counts, actor = self._tasks.get(name, _TaskCounts()), actors[name]
            for key, value in (("items_in", t.items_in), ("items_out", t.items_out), ("failures", t.failures),
                               ("retries", t.retries), ("restarts", counts.restarts),
                               ("dead_letters", t.dead_letters), ("queue", queued.get(name, 0)),
                               ("busy", busy[name]), ("elapsed", t.elapsed),
                               ("running", t.status in ("running", "throttled"))):
                add(key, name, value)
            if actor.limiter is not None:  # only tasks with a rate_limit can be throttled
                add("throttled", name, t.throttled)
            if t.keys or t.late or t.watermark is not None:  # keyed collectors and window tasks
                add("late", name, t.late)
                add("keys", name, t.keys)
                add("open_windows", name, t.open_windows)
            if t.watermark is not None:
                add("watermark", name, t.watermark)
            if actor.cached is not None or counts.cache_hits or counts.cache_misses:  # only cacheable tasks
                add("hits", name, counts.cache_hits)
                add("misses", name, counts.cache_misses)
            times = actor.batch_times
            for bound, n in times.cumulative():
                add("batch", name, n, "_bucket", (("le", _number(bound)),))
            add("batch", name, times.sum, "_sum")
            add("batch", name, times.count, "_count")
        return [Metric(metric, kind, text, tuple(per_task.get(key, ()))) for key, metric, kind, text in _TASK_METRICS
                if key in per_task]

    def _checkpoint_metrics(self, run_labels: tuple[tuple[str, str], ...]) -> list[Metric]:
        if self.run.supervisor.store is None:  # no store, no checkpoints: no series that mean nothing
            return []
        return [
            Metric("actorflow_checkpoints_total", "counter", "Checkpoints written to the run's store.",
                   (("", run_labels, self.checkpoints),)),
            Metric("actorflow_checkpoint_pause_seconds", "summary",
                   "Seconds the actors were held for a checkpoint (the consistent cut).",
                   (("_sum", run_labels, self.checkpoint_pause_seconds), ("_count", run_labels, self.checkpoints))),
            Metric("actorflow_checkpoint_write_seconds", "summary",
                   "Seconds spent writing a checkpoint to the store (small ones in the loop, large ones in a thread).",
                   (("_sum", run_labels, self.checkpoint_write_seconds), ("_count", run_labels, self.checkpoints))),
            Metric("actorflow_checkpoint_last_size_bytes", "gauge", "Size in bytes of the last checkpoint written.",
                   (("", run_labels, self.checkpoint_bytes),)),
        ]

    async def push(self, gateway: str, job: str = "actorflow", timeout: float = 10.0) -> int:
        """PUT the current metrics to the Prometheus Pushgateway at *gateway* (``host:port`` or a URL),
        grouped by *job* and the run's flow (``/metrics/job/<job>/flow/<flow>``); returns the HTTP status.

        Call it after the run ended to keep a short run's final values (``actorflow run
        --metrics-push URL`` does). The request runs in a worker thread.

        Raises:
            PushError: the gateway cannot be reached or refused the metrics (an :class:`OSError`).
        """
        text = self.render()
        grouping = {"flow": self.run.flow_name}
        return await trio.to_thread.run_sync(lambda: push_text(gateway, text, job, grouping, timeout))

    def render(self) -> str:
        """Every metric in the Prometheus text format (serve it with :data:`CONTENT_TYPE`)."""
        return exposition(self.metrics())

    async def handle(self, stream: trio.abc.Stream, token: str | None = None) -> None:
        """Answer one HTTP connection: ``GET /metrics`` (``HEAD`` too) with :meth:`render`.

        A stream handler for ``trio.serve_tcp(collector.handle, port)``. With *token*, a request
        must offer it (``Authorization: Bearer``, ``?token=``), as the monitor asks.
        """
        async with stream:
            head = await read_request(stream)
            if head is None:
                return
            conn, request, _ = head
            headers, target = request_fields(request)
            if urlsplit(target).path != METRICS_PATH:
                await respond(stream, conn, 404, f"not found: {urlsplit(target).path}\n".encode())
                return
            await answer(self, stream, conn, request.method, target, headers, token)


async def answer(
    collector: MetricsCollector,
    stream: trio.abc.Stream,
    conn: Any,
    method: bytes,
    target: str,
    headers: dict[str, str],
    token: str | None,
) -> None:
    """Answer a request for :data:`METRICS_PATH` on *conn* (405 for other methods, 401 without the token)."""
    unauthorized = b"these metrics need a token (Authorization: Bearer or ?token=)\n"
    if not await refused(stream, conn, method, target, headers, token, unauthorized):
        body = collector.render().encode()
        await respond(stream, conn, 200, body, CONTENT_TYPE, head_only=method == b"HEAD")


def collector(run: Run) -> MetricsCollector:
    """A :class:`MetricsCollector` for *run*; create it right after entering :func:`~actorflow.open_run`."""
    return MetricsCollector(run)
