"""Watch mode: run a flow, then run it again whenever one of its watched input files changes.

:func:`watch` yields a :class:`Watch`; iterating it gives the :class:`RunResult` of the first run
and of every re-run. Every run goes through one product cache (the store's, or a temporary one
for the session), so only the tasks whose inputs changed -- and what reads them -- run again.
The files watched are those given to :class:`~actorflow.File` options, plus ``paths=`` (the
command line adds the pipeline file and its ``--config`` file, and hands a loader that reads them
again). After a run the watcher is set up before the result is handed out, so a change made
once the result is in hand is always seen. ``actorflow run --watch`` is this loop with the
console on top. watchfiles and anyio (the ``watch`` extra) are imported when watching starts.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Unpack, final

import trio

from .._base import ActorflowError, RunResult, files_in, load, require
from .._define import Flow, RunGraph, is_user_file, positive_seconds
from .._kernel import Cache, fingerprint, open_cache
from .._storage import Store
from ._run import Options, Run, RunOptions, open_run

__all__ = ["Watch", "watch"]

#: How watch mode names itself when its extra is missing.
FEATURE = "af.watch"

#: What :func:`watch` runs: a flow, a bound run graph, or a function returning either, called
#: again before every run (so that a pipeline file can be read afresh).
Source = Flow | RunGraph | Callable[[], Flow | RunGraph]
#: Wraps each run, for example to show it (``actorflow run --watch`` attaches the console).
Observe = Callable[[Run], AbstractAsyncContextManager[Any]]


def require_watch(feature: str) -> None:
    """Refuse watching at once, naming the extra to install, when watchfiles or anyio is missing;
    *feature* is what the message says needs it.

    Raises:
        MissingExtraError: one of them is not installed.
    """
    for module in ("watchfiles", "anyio"):
        require(module, feature)


def watched_paths(graph: RunGraph | None, extra: Iterable[Path]) -> list[Path]:
    """The files a watch re-runs on: *extra*, every :class:`~actorflow.File` option's file and the
    user's source files the tasks' code fingerprints read (helpers in sibling modules too)."""
    paths = list(extra)
    if graph is not None:
        for values in graph.options.values():
            for value in values.values():
                paths.extend(f.path for f in files_in(value))
        for spec in graph.tasks.values():
            paths.extend(Path(f) for f in fingerprint(spec).files if os.path.exists(f))
    return sorted({p.resolve() for p in paths})


async def _changes(paths: list[Path], debounce: float, stop: Any, ready: Callable[[], None]) -> set[Path]:
    """Wait until one of *paths* changes; returns the changed paths (empty when stopped).

    *ready* is called once the watcher is in place (a change from then on is seen).
    """
    watchfiles = load("watchfiles", FEATURE)
    wanted = {str(p) for p in paths}
    dirs = sorted({str(p.parent) for p in paths if p.parent.exists()})

    def only_ours(_change: Any, path: str) -> bool:
        return os.path.abspath(path) in wanted

    if not dirs:
        ready()
        await trio.sleep_forever()
    changes = watchfiles.awatch(
        *dirs, watch_filter=only_ours, debounce=int(debounce * 1000), step=20, stop_event=stop,
        recursive=False, rust_timeout=100, yield_on_timeout=True,
    )
    announced = False
    async with contextlib.aclosing(changes) as stream:
        async for batch in stream:
            if not announced:
                announced = True
                ready()  # the first yield (a timeout or a change) comes after the watch was set up
            if batch:
                return {Path(os.path.abspath(p)) for _, p in batch}
    return set()


@final
class Watch:
    """A flow being watched: ``async for result in watch`` gives each run's :class:`RunResult`.

    Get it from :func:`watch`. The first iteration runs the flow at once; each later one waits
    until a watched file changed, then runs it again through the cache. A run that fails raises
    its error from the iteration; the watch goes on, and iterating again waits for the next change.

    Attributes:
        paths: the files watched now (after the latest run).
        changed: the files whose change started the latest run (empty for the first one).
        runs: how many runs were started.
    """

    def __init__(
        self, source: Source, options: Options | None, extra: list[Path], debounce: float, cache: Cache,
        observe: Observe | None, settings: dict[str, Any], nursery: trio.Nursery, stop: Any,
    ) -> None:
        self._source, self._options, self._extra, self._debounce = source, options, extra, debounce
        self._cache, self._observe, self._settings = cache, observe, settings
        self._nursery, self._stop = nursery, stop
        self._graph: RunGraph | None = None
        self._change = trio.Event()
        self._changed: set[Path] = set()
        self.paths: tuple[Path, ...] = ()
        self.changed: frozenset[Path] = frozenset()
        self.runs = 0

    def __repr__(self) -> str:
        return f"Watch(runs={self.runs}, paths={[str(p) for p in self.paths]})"

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> RunResult:
        if self.runs:
            await self._change.wait()
            self.changed = frozenset(self._changed)
        self._change = trio.Event()
        self.runs += 1
        try:
            reload_changed(self.changed, self._extra)
            graph = self._graph = self._load()
            return await self._run(graph)
        finally:  # watch again before the result (or error) is handed out: no change is missed
            self.paths = tuple(watched_paths(self._graph, self._extra))
            await self._nursery.start(self._watch, list(self.paths))

    def _load(self) -> RunGraph:
        source = self._source
        flow = source if isinstance(source, Flow | RunGraph) else source()
        if isinstance(flow, RunGraph):
            if self._options:
                raise ActorflowError("watch: pass options to flow.bind() or to watch(), not both")
            return flow
        if not isinstance(flow, Flow):
            raise TypeError(f"watch: expected a Flow or a bound RunGraph, got {type(flow).__name__}")
        return flow.bind(self._options)

    async def _run(self, graph: RunGraph) -> RunResult:
        async with open_run(graph, cache=self._cache, **self._settings) as run:
            async with self._observe(run) if self._observe is not None else contextlib.nullcontext():
                return await run.result()

    async def _watch(self, paths: list[Path], task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._changed = await _changes(paths, self._debounce, self._stop, task_status.started)
        self._change.set()


def reload_changed(changed: Iterable[Path], loaded_by_caller: Iterable[Path]) -> None:
    """Import again every module of the user's whose file is in *changed* (a helper module next to
    the pipeline file), except the files the caller's loader reads afresh itself."""
    skip = {Path(p).resolve() for p in loaded_by_caller}
    wanted = {Path(p).resolve() for p in changed} - skip
    if not wanted:
        return
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and is_user_file(file) and Path(file).resolve() in wanted:
            importlib.reload(module)


@asynccontextmanager
async def watch(
    flow: Source,
    options: Options | None = None,
    *,
    paths: Iterable[str | os.PathLike[str]] = (),
    debounce: float = 0.3,
    observe: Observe | None = None,
    **settings: Unpack[RunOptions],
) -> AsyncIterator[Watch]:
    """Run *flow*, then run it again whenever a watched input file changes (needs the ``watch`` extra).

    Iterate the :class:`Watch` for the :class:`RunResult` of the first run and of every re-run.
    Files given to :class:`~actorflow.File` options are watched, and the files in *paths*. Only
    dirty tasks run again: every run reads and fills one product cache -- the store's with
    ``store=``, else a temporary one kept for the session (``cache=`` a Cache or directory picks
    another). Leaving the block stops watching; nothing is left running.

    Args:
        flow: a :class:`Flow`, a bound run graph, or a function returning either, called before
            every run (``actorflow run --watch`` reloads the pipeline file with it).
        options: option values, as for :func:`run`.
        paths: more files to watch (the pipeline file and a config file, with a loader).
        debounce: seconds of quiet after a change before running again.
        observe: wraps each run, ``observe(run)`` being an async context manager.
        settings: the run settings of :class:`RunOptions`, for every run (not ``resume``).

    Example:
        async with af.watch(flow, options={"lines": {"src": af.File("data.txt")}}) as runs:
            async for result in runs:
                print(result["count"])

    Raises:
        MissingExtraError: watchfiles or anyio is not installed.
        ActorflowError: ``resume=True`` or ``cache=False`` (a watch re-runs through the cache).
    """
    require_watch(FEATURE)
    if settings.get("resume"):
        raise ActorflowError("watch: resume=True does not apply; a watch starts afresh and re-runs through the cache")
    if settings.get("cache") is False:
        raise ActorflowError("watch re-runs only what changed, which needs the cache; drop cache=False")
    if not positive_seconds(debounce):
        raise ActorflowError(f"watch: debounce must be a positive number of seconds, got {debounce!r}")
    extra = [Path(p) for p in paths]
    store, cache = settings.pop("store", None), settings.pop("cache", None)
    stop = load("anyio", FEATURE).Event()
    with _cache_for(store, cache, settings.get("cache_limit")) as the_cache:
        async with trio.open_nursery() as nursery:
            try:
                yield Watch(flow, options, extra, debounce, the_cache, observe, dict(settings), nursery, stop)
            finally:
                stop.set()
                nursery.cancel_scope.cancel()


@contextlib.contextmanager
def _cache_for(store: Any, cache: Any, limit: int | None) -> Iterator[Cache]:
    """The one cache every run of a watch uses: ``cache=`` and ``store=`` as a run takes them
    (:func:`~actorflow._kernel._cache.open_cache`), or a cache in a temporary store when neither is given."""
    target = store if cache is None or cache is True else cache
    if target is None:
        with tempfile.TemporaryDirectory(prefix="actorflow-watch-") as tmp, Store(tmp) as temporary:
            yield Cache(temporary, limit)
        return
    found, opened = open_cache(target, None, limit)
    assert found is not None  # cache=False was refused above
    try:
        yield found
    finally:
        if opened is not None:
            opened.close()
