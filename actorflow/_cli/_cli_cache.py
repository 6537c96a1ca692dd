"""Command-line pieces for the product cache: ``actorflow cache ls|clear`` and ``run --watch``.

Watch mode is :func:`actorflow.watch` (``_watch.py``) with the console on top: it runs the
pipeline, then waits until the pipeline file, the ``--config`` file or a file given to an
:class:`~actorflow.File` option changes; after a short quiet period (``--debounce``) it loads the
pipeline again and re-runs it. Every run uses the cache (the ``--store`` directory, or a temporary
one for the session), so only the tasks that changed, and what depends on them, run again.
Ctrl-C (or SIGTERM) stops watching and exits with code 0. watchfiles and anyio come with the ``watch`` extra
(``pip install 'actorflow[watch]'``) and are imported only when watching starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from .._base import ActorflowError, MailboxTypeError, TaskFailed
from .._kernel import Cache
from .._run import Watch
from .._run import watch as watch_flow
from ._cli_durable import existing_store, split_target

if TYPE_CHECKING:
    from .._base import RunResult
    from .._define import RunGraph

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


def watch(
    args: argparse.Namespace,
    load: Callable[[], RunGraph],
    show: Callable[[RunResult], None],
    settings: dict[str, Any],
) -> int:
    """``run --watch``: :func:`actorflow.watch` with the console on top, until Ctrl-C/SIGTERM.

    *load* reads the pipeline (and ``--config``) afresh before every run; *settings* are the run
    settings of every run (secrets, executors).
    """
    from .._observe import observe, observe_options, open_event_log

    options = observe_options(args)
    paths = [Path(split_target(args.target)[0]), *([Path(args.config)] if args.config else [])]

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def on_signal() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()
                        return

                nursery.start_soon(on_signal)
                holder: list[Watch] = []

                def reload() -> RunGraph:
                    if holder and holder[0].changed:
                        shown = ", ".join(sorted(p.name for p in holder[0].changed))
                        print(f"actorflow: {shown} changed; running again", file=sys.stderr, flush=True)
                    return load()

                async with watch_flow(
                    reload, paths=paths, debounce=args.debounce, store=args.store,
                    observe=lambda run: observe(run, **options), **settings,
                ) as runs:
                    holder.append(runs)
                    while True:
                        await _one_run(runs, show)
                        names = ", ".join(p.name for p in runs.paths)
                        print(f"actorflow: watching {names} for changes (Ctrl-C to stop)", file=sys.stderr, flush=True)

    with contextlib.ExitStack() as stack:
        if getattr(args, "events", None):  # one event log for the whole watch session
            options["events"] = stack.enter_context(open_event_log(args.events))
        trio.run(main)
    print("actorflow: watch stopped", file=sys.stderr)
    return 0


async def _one_run(runs: Watch, show: Callable[[RunResult], None]) -> None:
    """One run of watch mode: errors are printed and watching goes on."""
    try:
        result = await runs.__anext__()
    except (TaskFailed, MailboxTypeError, ActorflowError) as exc:
        print(f"actorflow: error: {exc}", file=sys.stderr, flush=True)
        return
    show(result)
    stats = result.summary.tasks.values()
    hits = [t.name for t in stats if t.from_cache]
    ran = [t.name for t in stats if not t.from_cache]
    print(
        f"actorflow: cache: {len(hits)} from the cache ({', '.join(hits) or '-'}); "
        f"{len(ran)} ran ({', '.join(ran) or '-'})",
        file=sys.stderr, flush=True,
    )
