"""Command-line pieces for what the person running a flow sees: ``--version``, ``--strict``,
``--resume-if-unfinished``, the dead-letter line a run ends with, ``resume`` of a finished store
and ``dashboard --store DIR``.

The `actorflow` CLI (``_cli.py``) wires these in. Exit codes follow the CLI's: 0 success, 1 a
task failed (or, with ``--strict``, a dead letter), 2 invalid invocation or usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from ._convert import converter
from ._errors import DeadLettered, StoreError
from ._result import Summary


def version_text() -> str:
    """``actorflow X.Y.Z`` (the installed distribution's version), with the Python version."""
    try:
        version = metadata.version("actorflow")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        from . import __version__ as version
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


def report_dead_letters(summary: Summary, store: str | None) -> None:
    """Print the run's last line about dead letters on stderr (nothing when there were none)."""
    line = summary.dead_letter_line(store)
    if line is not None:
        print(f"actorflow: {line}", file=sys.stderr)


def dead_lettered(exc: DeadLettered, store: str | None) -> str:
    """The one error line of a ``--strict`` run that set items aside."""
    line = exc.result.summary.dead_letter_line(store) or str(exc)
    return f"{line} (--strict: a dead letter fails the run)"


def finished_store(store: str) -> str | None:
    """A line saying *store* holds a finished run (``resume`` then has nothing to do), else None."""
    from ._run import store_state

    try:
        if store_state(store) != "finished":
            return None
    except StoreError:  # a damaged checkpoint: resume says what to do about it
        return None
    return f"store {store!r} holds a finished run: nothing to resume (start a new run with `actorflow run`)"


def _jsonable(value: Any) -> Any:
    try:
        plain = converter.unstructure(value)
    except Exception:  # an exotic product still prints
        return repr(value)
    return repr(value) if plain is value else plain  # bytes, sets…: JSON has no type for them


def _json_keys(value: Any) -> Any:
    """*value* with dict keys JSON cannot hold (tuples…) written as their repr."""
    if isinstance(value, dict):
        plain = (str, int, float, type(None))
        return {k if isinstance(k, plain) else repr(k): _json_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_keys(v) for v in value]
    return value


def print_products(products: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({k: _json_keys(v) for k, v in products.items()}, default=_jsonable))
        return
    for name, value in products.items():
        text = repr(value)
        print(f"{name} = {text if len(text) <= 2000 else text[:2000] + ' …'}")
