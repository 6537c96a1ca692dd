"""Command-line pieces for durable runs: store flags, `resume`, `dead-letters`, and what a store
says about its last run (for `graph --store`).

The `actorflow` CLI (``_cli.py``) wires these in; they are kept here so the run command stays
small. Exit codes follow the CLI's: 0 success, 1 a task failed, 2 invalid invocation or usage,
130/143 interrupted by SIGINT/SIGTERM after a final checkpoint.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._base import RunInterrupted, StoreError
from .._kernel import CacheRole
from .._storage import Store, dangling, open_store, unpack

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in ``"2s"``, ``"500ms"``, ``"1.5m"``, ``"1h"`` or a plain number of seconds.

    Raises:
        argparse.ArgumentTypeError: the text is not a positive duration.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|min|h)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; write it like 2s, 500ms or 1m")
    value = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the duration must be more than zero")
    return value


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """``--store DIR`` and ``--checkpoint-every DURATION`` for ``actorflow run``."""
    parser.add_argument("--store", metavar="DIR", help="checkpoint the run to this LMDB store (resumable)")
    parser.add_argument(
        "--checkpoint-every", metavar="DURATION", type=parse_duration, default=2.0,
        help="time between checkpoints when --store is given (default 2s)",
    )


def store_kwargs(args: argparse.Namespace, target: str) -> dict[str, Any]:
    """Keyword arguments for :func:`actorflow.run` from the store flags."""
    if not getattr(args, "store", None):
        return {}
    file, flow = split_target(target)
    pipeline = str(Path(file).resolve())
    return {
        "store": args.store,
        "checkpoint_every": args.checkpoint_every,
        "handle_signals": True,
        "meta": {
            # absolute, so that `actorflow resume` works from any directory
            "target": f"{pipeline}:{flow}" if flow else pipeline,
            "pipeline": pipeline,
            "checkpoint_every": args.checkpoint_every,
        },
    }


def check_store_dir(store: str) -> None:
    """Create the ``--store`` directory if missing, failing with a clear StoreError if it cannot be.

    The store would create it when the run starts; doing it first gives one clear line instead
    of an error from deep inside the run.
    """
    path = Path(store)
    if path.is_dir():
        return
    if path.exists():
        raise StoreError(f"store {store!r} is a file, not an actorflow store directory")
    if path.is_symlink():
        raise StoreError(dangling(path))
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise StoreError(f"cannot create the store directory {store!r}: {exc.strerror or exc}") from exc


def split_target(target: str) -> tuple[str, str]:
    """``FILE[:FLOW]`` as (FILE, FLOW or ""); a target naming an existing file is all FILE."""
    if not Path(target).exists() and ":" in target:
        file, _, flow = target.rpartition(":")
        return file, flow
    return target, ""


def interrupted(exc: RunInterrupted) -> int:
    """Say how to resume on stderr and return 130 (SIGINT) or 143 (SIGTERM)."""
    if exc.store is None:
        print(f"actorflow: interrupted by signal {exc.signal} (no --store: nothing to resume)", file=sys.stderr)
    else:
        print(f"actorflow: interrupted; checkpoint written. Resume with: actorflow resume --store {exc.store}",
              file=sys.stderr)
    return 130 if exc.signal == signal.SIGINT else 143


def resume_target(store: str) -> tuple[str, Mapping[str, Any], float]:
    """The pipeline target (``FILE:FLOW``), options and checkpoint interval a store records.

    Raises:
        StoreError: the store is missing, foreign or records no run.
    """
    with open_store(store, readonly=True) as st:
        info = st.run_info()
        if info is None:
            raise StoreError(st.unmade())
    if not info.get("target"):
        raise StoreError(f"store {store!r} records no pipeline to resume (was it started by `actorflow run`?)")
    if info.get("options") is None:
        raise StoreError(f"store {store!r} could not record its run's options; resume it from Python instead")
    return str(info["target"]), info["options"], float(info.get("checkpoint_every") or 2.0)


def add_resume_parser(sub: Any, handler: Callable[[argparse.Namespace], int]) -> None:
    """Register ``actorflow resume --store DIR [--json] [--checkpoint-every D] [--allow-changed] [--from-previous]``."""
    p = sub.add_parser("resume", help="continue a run from the last checkpoint of its store")
    p.add_argument("--store", required=True, metavar="DIR", help="the run's store")
    p.add_argument(
        "--allow-changed", action="store_true",
        help="resume even if tasks' code or settings changed since the run started (see docs/durability.md)",
    )
    p.add_argument(
        "--from-previous", action="store_true",
        help="resume from the checkpoint before the latest one (when the latest is damaged; see docs/durability.md)",
    )
    p.add_argument(
        "--checkpoint-every", metavar="DURATION", type=parse_duration, default=None,
        help="time between checkpoints (default: what the run was started with)",
    )
    p.set_defaults(handler=handler)


def add_dead_letters_parser(sub: Any) -> None:
    """Register ``actorflow dead-letters --store DIR [--json]``."""
    p = sub.add_parser("dead-letters", help="list the items a run set aside with on_error=af.DeadLetter()")
    p.add_argument("--store", required=True, metavar="DIR", help="the run's store")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=dead_letters)


def existing_store(path: str, holds: str, *, readonly: bool = True) -> Store:
    """Open a store a command looks into (read-only unless *readonly* is False, which a command that
    writes passes); a missing one says it holds no *holds*."""
    if not Path(path).exists():
        raise StoreError(f"store {path!r} does not exist; it holds no {holds}")
    return open_store(path, create=False, readonly=readonly)


def dead_letters(args: argparse.Namespace) -> int:
    """List dead letters: a table, or JSON lines with ``--json``."""
    with existing_store(args.store, "dead letters") as st:
        letters = sorted(st.dead_letters(), key=lambda d: (d["task"], _seq_key(d["seq"])))
    if args.json:
        for d in letters:
            print(json.dumps(d, default=repr))
        return 0
    if not letters:
        print("no dead letters")
        return 0
    for d in letters:
        seq = ".".join(map(str, d["seq"])) if isinstance(d["seq"], list) else d["seq"]
        item = repr(d["item"]) if d.get("encoded", True) else d["item"]
        print(f"{d['task']}  seq {seq}  item {item[:80]}  {d['error']}")
    print(f"{len(letters)} dead letter{'s' if len(letters) != 1 else ''}")
    return 0


def _seq_key(seq: Any) -> tuple[int, ...]:
    return tuple(seq) if isinstance(seq, list) else (seq,)


def last_run(path: str, flow: str) -> dict[str, Any]:
    """What the store at *path* says about its last run of *flow*, from its latest checkpoint:
    ``{"run": {checkpoint, final, time, status}, "tasks": {name: {status, cache, cache_key,
    items_in, items_out, failures[, product]}}}`` (see docs/cli.md). A run with no checkpoint yet
    (it failed or was cut before its first one) has status ``"unknown"`` and no tasks.

    Raises:
        StoreError: the store is missing or foreign, records no run, a run of another flow, or a
            checkpoint that cannot be read.
    """
    with existing_store(path, "run") as st:
        info, raw = st.run_info(), st.read_checkpoint()
        letters = Counter(str(d.get("task")) for d in st.dead_letters())
    if info is None:
        raise StoreError(f"store {path!r} records no run (a store used only as a cache, with cache=DIR, has none)")
    if info.get("flow") != flow:
        raise StoreError(f"store {path!r} holds a run of flow {info.get('flow')!r}, not of flow {flow!r}")
    if raw is None:
        return {"run": {"checkpoint": None, "final": False, "time": None, "status": "unknown"}, "tasks": {}}
    try:
        doc = unpack(raw)
        tasks = {str(name): _task_record(st_, letters[str(name)]) for name, st_ in doc["actors"].items()}
    except Exception as exc:
        raise StoreError(f"store {path!r}: its checkpoint cannot be read ({exc})") from exc
    final = bool(doc.get("final"))
    failed = any(t["status"] == "failed" for t in tasks.values())
    run = {"checkpoint": doc.get("number"), "final": final, "time": doc.get("time"),
           "status": "failed" if failed else "finished" if final else "unfinished"}
    return {"run": run, "tasks": tasks}


#: The largest final product (as JSON text) that ``graph --store`` shows.
PRODUCT_LIMIT = 4096


def _task_record(st: dict[str, Any], dead: int) -> dict[str, Any]:
    outcome, key = CacheRole.recorded_outcome(st.get("cache"))
    status = str(st["status"])
    record = {
        "status": status, "cache": outcome, "cache_key": key,
        "items_in": int(st["items_in"]), "items_out": int(st["items_out"]),
        "failures": dead,
    }
    if "product" in st:  # a finished task's final product, when it is small plain data
        try:
            if len(json.dumps(st["product"])) <= PRODUCT_LIMIT:
                record["product"] = st["product"]
        except (TypeError, ValueError):
            pass
    return record
