"""Command-line pieces for the product cache: ``actorflow cache ls|clear`` and ``run --watch``.

Watch mode runs the pipeline, then waits (with watchfiles, on trio through anyio) until the
pipeline file, the ``--config`` file or a file given to an :class:`~actorflow.File` option
changes; after a short quiet period (``--debounce``) it loads the pipeline again and re-runs it.
Every run uses the cache (the ``--store`` directory, or a temporary one for the session), so only
the tasks that changed, and what depends on them, run again. Ctrl-C (or SIGTERM) stops watching
and exits with code 0. watchfiles and anyio come with the ``watch`` extra
(``pip install 'actorflow[watch]'``) and are imported only when watching starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from ._cache import Cache
from ._cli_durable import existing_store
from ._errors import ActorflowError, MailboxTypeError, TaskFailed
from ._extras import load, require
from ._file import files_in
from ._store import Store, open_store

#: How watch mode names itself when its extra is missing.
WATCH_FEATURE = "actorflow run --watch"


def add_cache_parser(sub: Any) -> None:
    """Register ``actorflow cache ls --store DIR [--json]`` and ``actorflow cache clear --store DIR [--task T]``."""
    p = sub.add_parser("cache", help="list or clear the product cache of a store")
    csub = p.add_subparsers(dest="cache_command", required=True, parser_class=type(p))
    ls = csub.add_parser("ls", help="list cache entries, most recently used first")
    ls.add_argument("--store", required=True, metavar="DIR", help="the store holding the cache")
    ls.add_argument("--json", action="store_true", help="one JSON object per entry and line")
    ls.set_defaults(handler=cache_ls)
    clear = csub.add_parser("clear", help="remove cache entries (all, or one task's)")
    clear.add_argument("--store", required=True, metavar="DIR", help="the store holding the cache")
    clear.add_argument("--task", metavar="NAME", help="remove only this task's entries")
    clear.set_defaults(handler=cache_clear)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} GiB"


def cache_ls(args: argparse.Namespace) -> int:
    """List the cache: a table, or JSON lines with ``--json``."""
    with existing_store(args.store, "cache") as store:
        entries = Cache(store).entries()
    if args.json:
        for e in entries:
            print(json.dumps(e))
        return 0
    if not entries:
        print("the cache is empty")
        return 0
    rows = [("key", "flow", "task", "form", "items", "size", "last used")]
    for e in entries:
        used = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["used"]))
        rows.append((e["key"][:12], e["flow"], e["task"], e["form"], f"{e['items']:,}", _size(e["bytes"]), used))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    total = sum(e["bytes"] for e in entries)
    print(f"{len(entries)} entr{'ies' if len(entries) != 1 else 'y'}, {_size(total)}")
    return 0


def cache_clear(args: argparse.Namespace) -> int:
    """Remove entries; says how many."""
    with existing_store(args.store, "cache", readonly=False) as store:
        gone = Cache(store).clear(args.task)
    what = f" of task {args.task!r}" if args.task else ""
    print(f"removed {gone} cache entr{'ies' if gone != 1 else 'y'}{what}")
    return 0


# -- watch mode ----------------------------------------------------------------------------------------


def watched_paths(target: str, config: str | None, graph: Any) -> list[Path]:
    """What a watch re-runs on: the pipeline file, the config file and every File option's file."""
    paths = [Path(target.rsplit(":", 1)[0] if not Path(target).exists() else target)]
    if config:
        paths.append(Path(config))
    if graph is not None:
        for values in graph.options.values():
            for value in values.values():
                paths.extend(f.path for f in files_in(value))
    return [p.resolve() for p in paths]


async def _changes(paths: list[Path], debounce: float, stop: Any, ready: Callable[[], None]) -> set[str]:
    """Wait until one of *paths* changes; returns the changed paths (empty when stopped).

    *ready* is called once the watcher is in place (a change from then on is seen).
    """
    watchfiles = load("watchfiles", WATCH_FEATURE)
    wanted = {str(p) for p in paths}
    dirs = sorted({str(p.parent) for p in paths if p.parent.exists()})

    def only_ours(_change: Any, path: str) -> bool:
        return os.path.abspath(path) in wanted

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
                return {os.path.abspath(p) for _, p in batch}
    return set()


def check_watch() -> None:
    """Refuse ``--watch`` at once, naming the extra to install, when watchfiles or anyio is missing.

    Raises:
        MissingExtraError: one of them is not installed.
    """
    for module in ("watchfiles", "anyio"):
        require(module, WATCH_FEATURE)


def watch(args: argparse.Namespace, run_once: Callable[[Cache], Any]) -> int:
    """Run, then re-run on every change until Ctrl-C/SIGTERM. *run_once* returns the graph run (or None)."""
    anyio = load("anyio", WATCH_FEATURE)

    async def main() -> None:
        stop = anyio.Event()
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def on_signal() -> None:
                    async for _ in signals:
                        stop.set()
                        nursery.cancel_scope.cancel()
                        return

                async def loop(cache: Cache) -> None:
                    while True:
                        graph = await run_once(cache)
                        paths = watched_paths(args.target, args.config, graph)
                        names = ", ".join(p.name for p in paths)

                        def ready(names: str = names) -> None:
                            print(f"actorflow: watching {names} for changes (Ctrl-C to stop)", file=sys.stderr,
                                  flush=True)

                        changed = await _changes(paths, args.debounce, stop, ready)
                        if not changed:
                            return
                        shown = ", ".join(sorted(Path(p).name for p in changed))
                        print(f"actorflow: {shown} changed; running again", file=sys.stderr, flush=True)

                nursery.start_soon(on_signal)
                with _watch_store(args.store) as store:
                    await loop(Cache(store))
                    nursery.cancel_scope.cancel()

    with contextlib.ExitStack() as stack:
        if getattr(args, "events", None):
            args.events_log = stack.enter_context(open(args.events, "w", encoding="utf-8"))
        trio.run(main)
    print("actorflow: watch stopped", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _watch_store(path: str | None) -> Any:
    if path:
        with open_store(path) as store:
            yield store
        return
    with tempfile.TemporaryDirectory(prefix="actorflow-watch-") as tmp, Store(tmp) as store:
        yield store


async def run_watched(
    args: argparse.Namespace,
    cache: Cache,
    load: Callable[[], Any],
    show: Callable[[Any], None],
) -> Any:
    """One run of watch mode: errors are printed and watching goes on; returns the bound graph."""
    from ._console import observe, observe_options
    from ._run import open_run

    try:
        graph, secrets = load()
    except ActorflowError as exc:
        print(f"actorflow: error: {exc}", file=sys.stderr, flush=True)
        return None
    options = observe_options(args)
    log = getattr(args, "events_log", None)
    if log is not None:
        options["events"] = log  # one event log for the whole watch session
    try:
        async with open_run(graph, secrets=secrets, cache=cache) as run, observe(run, **options):
            result = await run.result()
    except (TaskFailed, MailboxTypeError, ActorflowError) as exc:
        print(f"actorflow: error: {exc}", file=sys.stderr, flush=True)
        return graph
    show(result)
    stats = result.summary.tasks.values()
    hits = [t.name for t in stats if t.cache in ("hit", "cutoff")]
    ran = [t.name for t in stats if t.cache not in ("hit", "cutoff")]
    print(
        f"actorflow: cache: {len(hits)} from the cache ({', '.join(hits) or '-'}); "
        f"{len(ran)} ran ({', '.join(ran) or '-'})",
        file=sys.stderr, flush=True,
    )
    return graph
