"""A stream joined with its own product (``share(xs: int, total: int)``): the stream waits in a
mailbox that spills to a temporary LMDB area, so memory stays flat; checkpoints hold it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

import actorflow as af
from actorflow._kernel._mailbox import Mailbox
from actorflow._storage._codec import restore_items
from actorflow._storage._spill import SpilledStream, SpillStore

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "tests" / "pipelines" / "share.py"
sys.path.insert(0, str(PIPELINE.parent))
import share  # noqa: E402


def test_a_spilling_mailbox_keeps_order_and_counts() -> None:
    spill = SpillStore()
    try:
        box = Mailbox("t.x", capacity=4)
        box.spill_to, box.restore = spill, lambda items: restore_items(items, int)
        box.spill(True)
        for i in range(10):
            box.put_nowait([2 * i, 2 * i + 1], [2 * i, 2 * i + 1])
        assert len(box) == 20
        assert [s for b in box.batches() for s in b[0]] == list(range(20))  # a checkpoint sees all
        box.spill(False)
        got = []
        while (batch := box.get_nowait()) is not None:
            got += batch[1]
        assert got == list(range(20)) and len(box) == 0
    finally:
        spill.close()


def _peak_mb(n: int) -> float:
    proc = subprocess.run(
        [sys.executable, str(PIPELINE), str(n)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    check, peak = proc.stdout.split()
    assert abs(float(check) - 1.0) < 1e-6  # the shares of a stream add up to one
    return float(peak)


def test_three_million_items_wait_for_their_total_in_flat_memory() -> None:
    small = _peak_mb(1000)
    big = _peak_mb(3_000_000)
    assert big - small < 60, (small, big)


async def test_spilled_items_are_in_checkpoints_and_resume(tmp_path: Path) -> None:
    n = 200_000
    store = tmp_path / "store"
    cut_with = 0
    with trio.CancelScope() as scope:
        async with af.open_run(share.flow, {"xs": {"n": n}}, store=store, checkpoint_every=0.005, cache=False) as run:
            async for event in run.events():
                if isinstance(event, af.events.CheckpointWritten) and event.queued_items > 20_000:
                    cut_with = event.queued_items
                    scope.cancel()  # a crash with many items spilled
    if cut_with:
        result = await af.run_async(share.flow, {"xs": {"n": n}}, store=store, resume=True, cache=False)
    else:  # the machine raced through before a checkpoint held many: the plain run still counts
        result = await af.run_async(share.flow, {"xs": {"n": n}}, cache=False)
    assert abs(result["check"] - 1.0) < 1e-6
    assert result["total"] == sum(i % 100 + 1 for i in range(n))


UNREAD = '''
import resource, sys
import actorflow as af

flow = af.Flow("unread")


@flow.source
def numbers(n: int) -> af.Stream[int]:
    yield from range(n)


n = int(sys.argv[1])
result = af.run(flow, options={"numbers": {"n": n}})
items = result["numbers"]
ok = len(items) == n and all(a == b for a, b in zip(items, range(n), strict=True))
ok = ok and items[-1] == n - 1 and items[n // 2] == n // 2
print(ok, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
'''


def _unread_peak_mb(n: int) -> float:
    proc = subprocess.run(
        [sys.executable, "-c", UNREAD, str(n)], capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ok, peak = proc.stdout.split()
    assert ok == "True"  # every item, in order
    return float(peak)


def test_an_unread_stream_of_three_million_items_peaks_within_40_mb_of_a_small_one() -> None:
    small = _unread_peak_mb(1000)
    big = _unread_peak_mb(3_000_000)
    assert big - small < 40, (small, big)


def test_a_spilled_stream_is_a_sequence_of_every_item_in_its_declared_type() -> None:
    import attrs

    @attrs.frozen
    class Point:
        x: int

    stream = SpilledStream(Point, bound=3)
    stream.extend(Point(i) for i in range(4))
    stream.extend([Point(4), Point(5), Point(6)])
    assert len(stream) == 7 and stream == [Point(i) for i in range(7)]
    assert stream[4] == Point(4) and stream[-1] == Point(6) and stream[1:3] == [Point(1), Point(2)]
    assert list(stream) == [Point(i) for i in range(7)] and stream != [Point(0)]
    untyped = SpilledStream(bound=2)  # Any: custom objects stay in memory, plain items spill
    untyped.extend([object, 1, 2, (3,)])
    assert list(untyped)[1:] == [1, 2, (3,)]
    with pytest.raises(IndexError):
        stream[7]
    stream.close()
