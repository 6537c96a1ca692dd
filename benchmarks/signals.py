"""Signals: how long ``actorflow run`` takes to exit after SIGINT/SIGTERM behind a blocking handler.

The pipeline is ``tests/pipelines/blocking.py``: from item ``--slow-from`` on (default 0: every
item, as in issue 21's measurement), ``work`` blocks for ``--delay`` seconds per item. With fast
items first, the batch in progress when the slow ones begin holds several of them and a signal
waits for that batch (the item loop has no stop between the items of a sync batch yet). Once it
started a slow item, the script waits a third of the delay, sends the signal and times the exit.
``overshoot_s`` is that time minus what was left of the item in progress (the promise: at most
0.5 s); it includes the interpreter's own exit. A second SIGINT is timed from the moment the first
one's line appears on stderr, behind a 60 s item (``second_sigint_s``). Run inline, on the thread
and on the process executor, with and without a store.

Usage: ``python benchmarks/signals.py [--quick] [--delay S]``. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "tests" / "pipelines" / "blocking.py"


#: The first slow item (``--slow-from``): 0, every item is slow, as in issue 21's measurement.
SLOW_FROM = [0]


def _start(tmp: Path, executor: str | None, store: bool, delay: float) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "actorflow", "run", str(PIPELINE), "--json", "--quiet", "--set", f"work.delay={delay}",
           "--set", f"work.slow_from={SLOW_FROM[0]}"]
    if store:
        cmd += ["--store", str(tmp / "store"), "--checkpoint-every", "0.2s"]
    if executor:
        cmd += ["--executor", f"work={executor}"]
    (tmp / "tmp").mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp / "tmp")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "working " in line:
            return proc
    raise RuntimeError(f"the run ended before its slow items: {proc.communicate()}")


def overshoot(executor: str | None, store: bool, signum: int, delay: float) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        proc = _start(Path(tmp), executor, store, delay)
        ready = time.perf_counter()
        time.sleep(delay / 3)
        sent = time.perf_counter()
        proc.send_signal(signum)
        proc.communicate(timeout=120)
        exited = time.perf_counter() - sent
        left = max(0.0, delay - (sent - ready))
        return exited - left, proc.returncode


def second_sigint(executor: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        proc = _start(Path(tmp), executor, True, 60.0)
        assert proc.stderr is not None
        proc.send_signal(signal.SIGINT)
        proc.stderr.readline()
        start = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="inline only")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds per slow item")
    parser.add_argument("--slow-from", type=int, default=0, help="the first slow item (later: fast items first)")
    args = parser.parse_args()
    SLOW_FROM[0] = args.slow_from
    executors = [None] if args.quick else [None, "thread", "process"]
    figures: dict[str, float | int] = {"delay_s": args.delay, "slow_from": args.slow_from}
    worst = 0.0
    for executor in executors:
        for store in (False, True):
            for signum in (signal.SIGINT, signal.SIGTERM):
                over, code = overshoot(executor, store, signum, args.delay)
                key = f"{executor or 'inline'}_{'store' if store else 'no_store'}_{signal.Signals(signum).name}"
                figures[f"{key}_overshoot_s"] = round(over, 3)
                figures[f"{key}_exit_code"] = code
                worst = max(worst, over)
                print(f"{key}: exit {code}, {over:+.3f} s past the item in progress", flush=True)
        figures[f"{executor or 'inline'}_second_sigint_s"] = round(second_sigint(executor), 3)
    figures["max_overshoot_s"] = round(worst, 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
