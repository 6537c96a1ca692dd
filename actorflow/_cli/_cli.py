"""The ``actorflow`` command line.

Subcommands (each a function registered in :data:`COMMANDS`, so more can be added):

- ``run FILE[:FLOW]``: run a flow and print its products (``--json``: one object); ``--watch``
  re-runs it, recomputing only dirty tasks, whenever its inputs change;
- ``resume --store DIR``: continue a run from its store's last checkpoint;
- ``dead-letters --store DIR``: list the items a run set aside;
- ``cache ls|clear --store DIR``: list or clear the product cache;
- ``tasks FILE``: list tasks with their options, types and defaults;
- ``graph FILE --format mermaid|dot|json``: export the graph.

Exit codes: 0 success; 1 a task failed; 2 invalid invocation or usage (also a file, folder or
address given that cannot be used, and a pipeline file that raises or calls ``sys.exit`` while it
is imported); 130/143 interrupted by SIGINT/SIGTERM after a final checkpoint. A task's own
``sys.exit(n)`` exits *n* (None: 0; any other code is printed and exits 1, as Python does) and its
KeyboardInterrupt 130, after a checkpoint when there is a store.
Errors are one clear line; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import importlib.machinery
import importlib.util
import json
import keyword
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import trio

from .._base import (
    ActorflowError,
    DeadLettered,
    DefinitionError,
    InvocationError,
    MailboxTypeError,
    RunCancelled,
    RunInterrupted,
    StoreError,
    TaskFailed,
    type_name,
)
from .._define import EXECUTOR_NAMES, Flow, describe
from .._storage import dumps
from . import _cli_ops as ops
from ._cli_cache import add_cache_parser
from ._cli_durable import (
    add_dead_letters_parser,
    add_resume_parser,
    add_store_arguments,
    check_store_dir,
    interrupted,
    last_run,
    parse_duration,
    resume_target,
    split_target,
    store_kwargs,
)
from ._cli_options import UsageError, load_config, merge_options, parse_executors, parse_secrets, parse_sets

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


# -- loading pipelines ---------------------------------------------------------------------------


def load_flow(target: str) -> Flow:
    """The flow named by ``FILE[:FLOW]``: FLOW is a variable name or a flow's name.

    Without FLOW the file must define exactly one flow. The file is imported afresh on every
    call (see :func:`import_pipeline`).
    """
    file, name = split_target(target)
    path = Path(file)
    if path.is_dir():
        raise UsageError(f"pipeline file {file!r} is a directory; give the path of a .py file in it")
    if path.exists() and not path.is_file():
        raise UsageError(f"pipeline file {file!r} is not a regular file")
    if not path.is_file():
        raise UsageError(f"pipeline file {file!r} not found")
    try:
        namespace = vars(import_pipeline(path))
    except ActorflowError:
        raise
    except SystemExit as exc:  # the file's own sys.exit() ends only the import: nothing ran
        raise UsageError(
            f"pipeline file {file!r} exited with code {exc.code!r} while being imported (sys.exit at "
            f"{_where(exc, path)}); no flow was run"
        ) from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # an Exception, or a BaseException subclass of the file's own
        raise UsageError(
            f"pipeline file {file!r} failed to load: {type(exc).__name__}: {exc} (raised while importing it, at "
            f"{_where(exc, path)})"
        ) from exc
    flows = {k: v for k, v in namespace.items() if isinstance(v, Flow)}
    if name:
        for var, flow in flows.items():
            if name in (var, flow.name):
                return flow
        raise UsageError(f"{file!r} has no flow named {name!r}; it has {sorted(flows) or 'none'}")
    unique = {id(f): f for f in flows.values()}
    if len(unique) != 1:
        raise UsageError(
            f"{file!r} defines {len(unique)} flows ({sorted(flows) or 'none'}); name one as {file}:NAME"
        )
    return next(iter(unique.values()))


def _where(exc: BaseException, path: Path) -> str:
    """``file:line`` where *exc* was raised: the last frame in the pipeline file, else the last frame."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if Path(f.filename).resolve() == path.resolve()]
    if not (mine or frames):
        return str(path)
    frame = (mine or frames)[-1]
    return f"{frame.filename}:{frame.lineno}"


def pipeline_module_name(path: Path) -> str:
    """The module name a pipeline file is imported under.

    The file's stem (``etl`` for ``etl.py``), so that worker processes import it by name from its
    folder, unless that is no module name or names another module; then ``actorflow_pipeline_<stem>``.
    """
    stem, resolved = path.stem, path.resolve()
    if stem.isidentifier() and not keyword.iskeyword(stem):
        loaded = sys.modules.get(stem)
        origin: str | None  # where the name leads now: None for nowhere, "" for something not a file
        if loaded is not None:
            origin = getattr(loaded, "__file__", None) or ""
        else:
            try:
                spec = importlib.util.find_spec(stem)
            except (ImportError, ValueError):
                origin = ""
            else:
                origin = None if spec is None else spec.origin or ""
        if origin is None or (origin and Path(origin).resolve() == resolved):
            return stem
    return "actorflow_pipeline_" + re.sub(r"\W", "_", stem)


def import_pipeline(path: Path) -> ModuleType:
    """Import a pipeline file as a fresh module, replacing any earlier import of it.

    It is a real module, registered in :data:`sys.modules` under :func:`pipeline_module_name`, so
    that its functions can be sent to worker processes; its ``__name__`` is not ``"__main__"``, so
    its ``if __name__ == "__main__":`` block does not run. The file's folder stays on
    :data:`sys.path` and is added to ``PYTHONPATH``, so that workers import the module and its
    sibling modules as this process does. Process workers (trio-parallel, which uses cloudpickle)
    get its functions by value, as for ``python FILE``, without importing it again.
    """
    path = path.resolve()
    folder = str(path.parent)
    name = pipeline_module_name(path)
    spec = importlib.util.spec_from_file_location(
        name, path, loader=importlib.machinery.SourceFileLoader(name, str(path))
    )
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    sys.path.insert(0, folder)  # as `python FILE` does, while the file runs
    try:
        # Compiled from the source every time, never from a cached .pyc: watch mode reloads a file
        # right after an edit, which may keep its size and modification second.
        exec(compile(path.read_bytes(), str(path), "exec", dont_inherit=True), module.__dict__)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    finally:
        with contextlib.suppress(ValueError):  # unless the file took it off itself
            sys.path.remove(folder)
    _reachable_by_workers(folder, module)
    return module


def _reachable_by_workers(folder: str, module: ModuleType) -> None:
    """Let worker processes (trio-parallel, Dask) load *module*'s functions and its sibling imports."""
    if folder not in sys.path:
        sys.path.append(folder)  # spawned workers start with this process's sys.path
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if folder not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([*paths, folder])  # workers started otherwise
    try:
        cloudpickle: Any = importlib.import_module("cloudpickle")
    except ImportError:  # pragma: no cover - a dependency of distributed and used by trio-parallel
        return
    cloudpickle.register_pickle_by_value(module)


def print_products(products: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        print(dumps(dict(products)))  # valid JSON: non-finite floats as strings (see _jsontext)
        return
    for name, value in products.items():
        try:
            text = repr(value)
        except ValueError:  # an int of more than 4,300 digits has no repr(): its JSON digits
            text = dumps(value)
        print(f"{name} = {text if len(text) <= 2000 else text[:2000] + ' …'}")


# -- commands ----------------------------------------------------------------------------------------


def _execute(flow: Flow, options: Mapping[str, Any], args: argparse.Namespace, target: str) -> int:
    from .._observe import observe, observe_options, prepare_observe
    from .._run import open_run

    graph = flow.bind(options)
    kwargs: dict[str, Any]
    if getattr(args, "resume_store", None):
        kwargs = {"store": args.resume_store, "resume": True, "handle_signals": True,
                  "checkpoint_every": args.checkpoint_every, "allow_changed": args.allow_changed,
                  "from_previous": args.from_previous}
        new_store = None  # resume reads the store it was given: nothing new to make
    else:
        kwargs = store_kwargs(args, target)  # {} without --store
        kwargs.update(ops.run_ops_kwargs(args))
        if getattr(args, "no_cache", False):
            kwargs["cache"] = False
        new_store = getattr(args, "store", None) or None

    kwargs["handle_signals"] = True  # with or without a store: SIGINT/SIGTERM stop the run cleanly
    secrets = parse_secrets(getattr(args, "secret", []))
    kwargs["executors"] = parse_executors(getattr(args, "executor", []))

    async def main() -> Any:
        # The event log is opened, the monitor bound and the store's folder made first: a bad
        # --events, --monitor or --store fails before the run starts or its store is written.
        async with prepare_observe(observe_options(args)) as observing:
            if new_store:
                check_store_dir(new_store)
            async with open_run(graph, secrets=secrets, **kwargs) as run, observe(run, **observing):
                return await run.result()

    try:
        result = trio.run(main)
    except DeadLettered as exc:  # --strict: the products are printed, then the error line
        result = exc.result
    print_products(result, args.json)
    return ops.report_dead_letters(result.summary, args)


def cmd_run(args: argparse.Namespace) -> int:
    """``actorflow run FILE[:FLOW]``."""
    if args.watch:
        return _watch(args)
    return _execute(load_flow(args.target), run_options(args), args, args.target)


def run_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The option values of ``run``: the ``--config`` file, then ``--set`` on top."""
    config = load_config(args.config) if args.config else {}
    return merge_options(config, parse_sets(args.set))


def _watch(args: argparse.Namespace) -> int:
    """``actorflow run FILE --watch``: run, then re-run what is dirty whenever an input changes."""
    from .._run import require_watch
    from ._cli_cache import WATCH_FEATURE, watch

    require_watch(WATCH_FEATURE)  # the watch extra, before anything else
    if args.no_cache:
        raise UsageError("--watch re-runs only what changed, which needs the cache; drop --no-cache")
    settings = {"secrets": parse_secrets(args.secret), "executors": parse_executors(args.executor)}
    _check_observe_options(args)  # a missing variable or bad flag is a usage error before anything runs
    if args.store:
        check_store_dir(args.store)

    def load() -> Any:
        return load_flow(args.target).bind(run_options(args))

    return watch(args, load, lambda r: print_products(r, args.json), settings)


def _check_observe_options(args: argparse.Namespace) -> None:
    """Fail now, as a usage error, if the --events file cannot be written or --monitor not bound.

    Watch mode opens and binds them itself, later; this finds a mistake before anything runs.
    """
    from .._observe import observe_options, prepare_observe

    async def check() -> None:
        async with prepare_observe(observe_options(args)):
            pass

    trio.run(check)


def cmd_resume(args: argparse.Namespace) -> int:
    """``actorflow resume --store DIR``."""
    target, options, every = resume_target(args.store)
    if not args.from_previous and ops.finished_store(args.store):
        return EXIT_OK
    flow = load_flow(target)
    args.resume_store = args.store
    if args.checkpoint_every is None:
        args.checkpoint_every = every
    return _execute(flow, options, args, target)


def cmd_tasks(args: argparse.Namespace) -> int:
    """``actorflow tasks FILE``: one block per task with inputs and options."""
    flow = load_flow(args.target)
    for spec in flow.tasks.values():
        doc = f"  — {spec.description.splitlines()[0]}" if spec.description else ""
        print(f"{spec.name} ({spec.kind}) -> {type_name(spec.out_type)}{doc}")
        for i in spec.inputs:
            print(f"    input  {i.name}: {type_name(i.annotation)} ({'stream' if i.streaming else 'final'})")
        for o in spec.options:
            default = "required" if o.required else f"default {o.default!r}"
            print(f"    option {o.name}: {type_name(o.annotation)} ({default})")
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    """``actorflow graph FILE --format mermaid|dot|json [--store DIR]``."""
    if args.store is not None and args.format != "json":
        raise UsageError(f"--store works with --format json only, not --format {args.format}")
    flow = load_flow(args.target)
    if args.store is not None:
        doc = describe(flow)
        last = last_run(args.store, flow.name)
        doc["last_run"] = last["run"]
        for task in doc["tasks"]:
            task["last_run"] = last["tasks"].get(task["name"])
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return EXIT_OK
    exporters: dict[str, Callable[[], str]] = {"mermaid": flow.to_mermaid, "dot": flow.to_dot, "json": flow.to_json}
    sys.stdout.write(exporters[args.format]().rstrip("\n") + "\n")
    return EXIT_OK


def _add_run(sub: Any) -> None:
    from .._observe import add_observe_arguments

    p = sub.add_parser("run", help="run a flow and print its products")
    p.add_argument("target", metavar="FILE[:FLOW]", help="pipeline file, optionally :FLOW (variable or flow name)")
    p.add_argument("--set", action="append", default=[], metavar="TASK.OPTION=VALUE", help="set an option")
    p.add_argument("--config", metavar="FILE.toml", help="options from a TOML file, one [table] per task")
    p.add_argument("--json", action="store_true", help="print the products as one JSON object")
    p.add_argument(
        "--secret", action="append", default=[], metavar="NAME=ENV_VAR",
        help="give the run a secret, read from an environment variable (tasks declare the names they read)",
    )
    _add_executor_argument(p)
    add_store_arguments(p)
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the store's product cache")
    p.add_argument(
        "--watch", action="store_true",
        help="after the run, re-run whenever the pipeline, --config or an af.File input changes (Ctrl-C stops)",
    )
    p.add_argument(
        "--debounce", metavar="DURATION", type=parse_duration, default=0.3,
        help="with --watch: wait for this much quiet after a change before re-running (default 300ms)",
    )
    add_observe_arguments(p)
    ops.add_run_ops_arguments(p)
    p.set_defaults(handler=cmd_run)


def _add_resume(sub: Any) -> None:
    from .._observe import add_observe_arguments

    add_resume_parser(sub, cmd_resume)
    p = sub.choices["resume"]
    p.add_argument("--json", action="store_true", help="print the products as one JSON object")
    p.add_argument("--secret", action="append", default=[], metavar="NAME=ENV_VAR", help="as for run")
    _add_executor_argument(p)
    add_observe_arguments(p)


def _add_executor_argument(p: Any) -> None:
    p.add_argument(
        "--executor", action="append", default=[], metavar="TASK=NAME",
        help=f"run TASK on another executor this time: {', '.join(EXECUTOR_NAMES)} (repeatable)",
    )


def _add_tasks(sub: Any) -> None:
    p = sub.add_parser("tasks", help="list tasks with their options, types and defaults")
    p.add_argument("target", metavar="FILE[:FLOW]")
    p.set_defaults(handler=cmd_tasks)


def _add_graph(sub: Any) -> None:
    p = sub.add_parser("graph", help="export the graph")
    p.add_argument("target", metavar="FILE[:FLOW]")
    p.add_argument("--format", choices=["mermaid", "dot", "json"], default="mermaid")
    p.add_argument(
        "--store", metavar="DIR",
        help="with --format json: add each task's last run from this store (status, cache key, item counts)",
    )
    p.set_defaults(handler=cmd_graph)


#: Subcommand registrations, in the order ``--help`` lists them. Append to add a command.
COMMANDS: list[Callable[[Any], None]] = [
    _add_run, _add_resume, add_dead_letters_parser, add_cache_parser, _add_tasks, _add_graph,
    functools.partial(ops.add_dashboard_parser, load_flow=load_flow),
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"actorflow: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="actorflow", description="Run actorflow pipelines.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    ops.add_version_argument(parser)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for register in COMMANDS:
        register(sub)
    _debug_everywhere(sub)
    return parser


def _debug_everywhere(sub: Any) -> None:
    """Accept ``--debug`` after the subcommand too (``actorflow run FILE --debug``)."""
    for p in sub.choices.values():
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                _debug_everywhere(action)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``actorflow`` console script and ``python -m actorflow``."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except BaseException as raised:
        code = _exit_code(_sole(raised), raised, args.debug)
        if code is None:
            raise
        return code


def _exit_code(exc: BaseException, raised: BaseException, debug: bool) -> int | None:
    """Report *exc* (the error *raised*, or the one error in that group) and give the exit code.

    None for an error that is not mapped: it propagates as it is (a bug shows its traceback).
    """
    if isinstance(exc, RunInterrupted):
        return interrupted(exc)
    if isinstance(exc, TaskFailed | MailboxTypeError | RunCancelled):
        return _fail(exc, raised, EXIT_FAILED, debug)
    if isinstance(exc, InvocationError | DefinitionError | StoreError | UsageError | ActorflowError):
        return _fail(exc, raised, EXIT_USAGE, debug)
    if isinstance(exc, OSError):  # a path or address given on the command line that cannot be used
        return _fail(_os_error_text(exc), raised, EXIT_USAGE, debug)
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return _exited(exc, debug)
    return None


def _exited(exc: KeyboardInterrupt | SystemExit, debug: bool) -> int:
    """A task's (or the user's) KeyboardInterrupt or SystemExit: one line, and the exit code Python gives.

    ``SystemExit(n)`` exits *n*, ``SystemExit(None)`` 0, any other code is printed and exits 1 (as
    Python does); KeyboardInterrupt exits 130.
    """
    if debug:
        traceback.print_exception(exc)
    notes = [n.removeprefix("actorflow: ") for n in getattr(exc, "__notes__", ()) if n.startswith("actorflow: ")]
    where = f" ({'; '.join(notes)})" if notes else ""
    if isinstance(exc, KeyboardInterrupt):
        print(f"actorflow: interrupted by KeyboardInterrupt{where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    code = exc.code
    print(f"actorflow: SystemExit({code!r}){where}", file=sys.stderr)
    if code is None:
        return EXIT_OK
    return code if isinstance(code, int) and not isinstance(code, bool) else EXIT_FAILED


def _sole(exc: BaseException) -> BaseException:
    """The one error inside nested exception groups holding exactly one; else *exc* itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _os_error_text(exc: OSError) -> str:
    """``No such file or directory: '/x/y'`` rather than ``[Errno 2] No such file or directory: '/x/y'``."""
    if exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {exc.filename!r}"
    return exc.strerror or str(exc)


def _fail(exc: BaseException | str, raised: BaseException, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exception(raised)
    print(f"actorflow: error: {exc}", file=sys.stderr)
    return code


