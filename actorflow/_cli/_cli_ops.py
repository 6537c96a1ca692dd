"""Command-line pieces for what the person running a flow sees: ``--version``, ``--strict``,
``--resume-if-unfinished``, the dead-letter line a run ends with, ``resume`` of a finished store
and ``dashboard --store DIR``.

The `actorflow` CLI (``_cli.py``) wires these in. Exit codes follow the CLI's: 0 success, 1 a
task failed (or, with ``--strict``, a dead letter), 2 invalid invocation or usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib import metadata
from typing import Any

import trio

from .._base import StoreError, Summary
from ._cli_durable import existing_store, last_run, resume_target


def version_text() -> str:
    """``actorflow X.Y.Z`` (the installed distribution's version), with the Python version."""
    try:
        version = metadata.version("actorflow")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        from .. import __version__ as version
    return f"actorflow {version} (Python {sys.version.split()[0]})"


def add_version_argument(parser: argparse.ArgumentParser) -> None:
    """``actorflow --version``: print the version and exit 0."""
    parser.add_argument("--version", action="version", version=version_text())


def add_run_ops_arguments(parser: argparse.ArgumentParser) -> None:
    """``--strict`` and ``--resume-if-unfinished`` for ``actorflow run``."""
    parser.add_argument(
        "--strict", action="store_true",
        help="any dead letter fails the run (exit 1) after it ended; without it dead letters are counted and named",
    )
    parser.add_argument(
        "--resume-if-unfinished", action="store_true",
        help="with --store: resume the store's unfinished run if it holds one, else start a fresh run",
    )


def run_ops_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings ``--strict`` and ``--resume-if-unfinished`` give.

    Raises:
        StoreError: ``--resume-if-unfinished`` without ``--store``.
    """
    out: dict[str, Any] = {}
    if getattr(args, "strict", False):
        out["strict"] = True
    if getattr(args, "resume_if_unfinished", False):
        if not getattr(args, "store", None):
            raise StoreError("--resume-if-unfinished needs --store DIR: the store to resume from or start in")
        out["resume"] = "auto"
    return out


def store_of(args: argparse.Namespace) -> str | None:
    """The store a run command wrote to (``--store`` or ``resume --store``), if any."""
    return getattr(args, "resume_store", None) or getattr(args, "store", None) or None


def report_dead_letters(summary: Summary, args: argparse.Namespace) -> int:
    """End a run command: the line about dead letters on stderr (none without), and the exit code:
    1 when ``--strict`` and items were dead-lettered, else 0."""
    store = store_of(args)
    line = summary.dead_letter_line(store)
    if line is None:
        return 0
    if getattr(args, "strict", False):
        print(f"actorflow: error: {line} (--strict: a dead letter fails the run)", file=sys.stderr)
        return 1
    print(f"actorflow: {line}", file=sys.stderr)
    return 0


def add_dashboard_parser(sub: Any, load_flow: Callable[[str], Any]) -> None:
    """Register ``actorflow dashboard --store DIR [--monitor HOST:PORT] [--monitor-token TOKEN]``.

    *load_flow* loads ``FILE[:FLOW]`` (the CLI's loader), to draw the graph the store's run ran.
    """
    p = sub.add_parser("dashboard", help="show a finished or stopped run's dashboard from its store (read-only)")
    p.add_argument("--store", required=True, metavar="DIR", help="the run's store (only read)")
    p.add_argument("--monitor", metavar="HOST:PORT", default="127.0.0.1:8765",
                   help="where to serve the dashboard (default 127.0.0.1:8765; port 0 picks one)")
    p.add_argument("--monitor-token", metavar="TOKEN", default=None,
                   help="token every client must present; needed to bind a non-loopback address")
    p.set_defaults(handler=lambda args: dashboard(args, load_flow))


def dashboard(args: argparse.Namespace, load_flow: Callable[[str], Any]) -> int:
    """``actorflow dashboard --store DIR``: serve the stored run's dashboard until Ctrl-C (exit 0)."""
    from .._observe import bind_monitor, parse_host_port, serve_stored, stored_hello

    target, options, _ = resume_target(args.store)
    flow = load_flow(target)
    graph = flow.bind(options)
    last = last_run(args.store, flow.name)
    with existing_store(args.store, "dead letters") as st:
        letters = list(st.dead_letters())
    hello = stored_hello(graph, last, letters)
    host, port = parse_host_port(args.monitor)

    async def main() -> None:
        for listener in await bind_monitor(host, port, args.monitor_token):  # checks host and token first
            await listener.aclose()
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(serve_stored, hello, host, port, args.monitor_token)
            shown = f"[{host}]" if ":" in host else host
            query = f"?token={args.monitor_token}" if args.monitor_token else ""
            print(f"actorflow: dashboard of the run in {args.store!r} ({last['run']['status']}, read-only) at "
                  f"http://{shown}:{bound}/{query}  (Ctrl-C stops)", file=sys.stderr, flush=True)

    try:
        trio.run(main)
    except BaseException as exc:  # Ctrl-C is how this command ends: exit 0
        if not _interrupted(exc):
            raise
    return 0


def _interrupted(exc: BaseException) -> bool:
    """Whether *exc* is a KeyboardInterrupt, or an exception group of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_interrupted(e) for e in exc.exceptions)
    return isinstance(exc, KeyboardInterrupt)


def finished_store(store: str) -> bool:
    """Whether *store* holds a finished run (``resume`` then has nothing to do); if so, say so on stderr."""
    from .._run import store_state

    try:
        if store_state(store) != "finished":
            return False
    except StoreError:  # a damaged checkpoint: resume says what to do about it
        return False
    print(f"actorflow: store {store!r} holds a finished run: nothing to resume (start a new run with "
          "`actorflow run`)", file=sys.stderr)
    return True
