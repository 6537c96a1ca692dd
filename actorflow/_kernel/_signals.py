"""SIGINT and SIGTERM: stop within half a second plus the item in progress, whatever the handlers do.

A run started with ``handle_signals=True`` (the CLI always does) installs its own handlers for the
length of the run. Python runs a signal handler in the main thread between two bytecodes — even
while a blocking sync handler holds the trio loop — so the handler here acts at once:

- the first signal says so in one line on stderr and sets ``Supervisor.stopping``: from then on
  no actor takes a new batch (they park at the checkpoint gate after the batch in hand), and a
  task is scheduled on the loop
  (``TrioToken.run_sync_soon`` is safe in a signal handler) that, with a store, writes the final
  checkpoint — waiting at most :data:`SIGNAL_PATIENCE` seconds for the actors to park, never
  behind a periodic checkpoint's own wait — and then stops the run: ``RunInterrupted`` (exit 130 for
  SIGINT, 143 for SIGTERM on the CLI). Without a store it stops the run at once.
- a second SIGINT removes the run's temporary areas (its spill directory) and exits 130 at once,
  from inside the handler; a second SIGTERM is ignored (the first one's stop is under way).

The run's temporary areas are removed when it ends, however it ends (``Runtime._end``); only
SIGKILL leaves them.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

import trio

from .._base import StoreError

if TYPE_CHECKING:
    from ._supervisor import Supervisor

#: The signals a run stops on.
SIGNALS: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
#: Seconds the final checkpoint waits for the actors to park (the batch in hand of an async or
#: remote handler); past it the run stops without it and resumes from the checkpoint before.
SIGNAL_PATIENCE = 0.4
#: The exit code of a second SIGINT (as a shell reports a process that SIGINT ended).
EXIT_AT_ONCE = 130


@contextmanager
def _handlers(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """*handler* on SIGINT and SIGTERM for the length of the block; the previous handlers after it."""
    previous: dict[int, Any] = {}
    try:
        for signum in SIGNALS:
            previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


async def watch_signals(sup: Supervisor, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Handle SIGINT/SIGTERM for *sup*'s run until cancelled (see the module docstring)."""
    token = trio.lowlevel.current_trio_token()
    async with trio.open_nursery() as nursery:

        def start_stop() -> None:  # on the loop, soon after the signal
            if not nursery.cancel_scope.cancel_called:
                nursery.start_soon(_stop, sup)

        def on_signal(signum: int, frame: FrameType | None) -> None:  # between two bytecodes of the main thread
            if sup.interrupted is not None:
                if signum == signal.SIGINT:
                    _exit_at_once(sup)
                return
            sup.interrupted = signum
            sup.stopping = True
            token.run_sync_soon(start_stop)
            _say(signum)

        with _handlers(on_signal):
            task_status.started()
            await trio.sleep_forever()


def _exit_at_once(sup: Supervisor) -> None:
    """The second SIGINT: remove the temporary areas, end the worker processes, exit 130 now."""
    sup.run.spill.discard()
    mp = sys.modules.get("multiprocessing")  # process executors' workers (never imported just for this)
    if mp is not None:
        for child in mp.active_children():
            child.kill()
    os._exit(EXIT_AT_ONCE)


def _say(signum: int) -> None:
    """One line on stderr: the run is stopping (``os.write``: safe inside a signal handler, unlike ``print``)."""
    name = signal.Signals(signum).name
    again = "; press Ctrl-C again to exit at once" if signum == signal.SIGINT else ""
    try:
        os.write(2, f"actorflow: {name}: stopping after the item in progress{again}\n".encode())
    except OSError:  # no stderr: nothing to say it on
        pass


async def _stop(sup: Supervisor) -> None:
    """The final checkpoint (with a store, within the patience), then stop the run."""
    run = sup.run
    if sup.store is not None:
        with trio.move_on_after(SIGNAL_PATIENCE):  # past it, the checkpoint before this one resumes
            try:
                await sup.checkpoint()
            except StoreError as exc:
                run.fail(exc)
                return
    run.interrupt()
