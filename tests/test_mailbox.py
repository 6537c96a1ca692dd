from __future__ import annotations

import pytest
import trio
import trio.testing

from actorflow.mailbox import Mailbox


async def test_batches_come_out_in_order() -> None:
    box = Mailbox("t.in", capacity=10)
    await box.put([0, 1], ["a", "b"])
    await box.put([2], ["c"])
    assert len(box) == 3
    assert box.get_nowait() == ([0, 1], ["a", "b"])
    assert await box.get() == ([2], ["c"])
    assert box.get_nowait() is None


async def test_get_splits_a_batch_when_asked_for_fewer_items() -> None:
    box = Mailbox("t.in")
    await box.put([0, 1, 2], ["a", "b", "c"])
    assert box.get_nowait(2) == ([0, 1], ["a", "b"])
    assert box.get_nowait(2) == ([2], ["c"])


async def test_full_mailbox_makes_the_sender_wait() -> None:
    box = Mailbox("t.in", capacity=2)
    await box.put([0, 1], ["a", "b"])
    sent = trio.Event()

    async def sender() -> None:
        await box.put([2], ["c"])
        sent.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        assert not sent.is_set()
        assert box.get_nowait() == ([0, 1], ["a", "b"])
        await sent.wait()
    assert box.get_nowait() == ([2], ["c"])


async def test_close_ends_the_stream_after_queued_items() -> None:
    box = Mailbox("t.in")
    await box.put([0], ["a"])
    box.close()
    assert not box.done
    assert await box.get() == ([0], ["a"])
    assert box.done
    assert await box.get() is None
    with pytest.raises(RuntimeError, match="closed"):
        await box.put([1], ["b"])


async def test_receiver_waits_until_a_batch_arrives() -> None:
    box = Mailbox("t.in")
    got = []

    async def receiver() -> None:
        got.append(await box.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        await box.put([7], ["x"])
    assert got == [([7], ["x"])]


async def test_snapshot_copies_queued_batches() -> None:
    box = Mailbox("t.in")
    await box.put([0, 1], ["a", "b"])
    snap = box.snapshot()
    assert snap == [([0, 1], ["a", "b"])]
    snap[0][1].append("z")
    assert box.snapshot() == [([0, 1], ["a", "b"])]


async def test_abandoned_mailbox_drops_items_and_releases_senders() -> None:
    box = Mailbox("t.in", capacity=1)
    await box.put([0], ["a"])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.put, [1], ["b"])
        await trio.testing.wait_all_tasks_blocked()
        box.abandon()
    assert len(box) == 0
    assert box.get_nowait() is None


async def test_sent_counts_every_item_queued_and_only_grows() -> None:
    box = Mailbox("t.in", capacity=10)
    await box.put([0, 1], ["a", "b"])
    box.put_nowait([2], ["c"])
    assert box.get_nowait(1) == ([0], ["a"])
    assert (box.sent, len(box)) == (3, 2)  # taking does not lower it
    box.put_front([0], ["a"])  # a batch put back (restored) counts again, as its queue does
    assert (box.sent, len(box)) == (4, 3)
    await box.put([], [])
    box.abandon()
    box.put_nowait([3], ["d"])  # dropped: never reached the reader
    assert (box.sent, len(box)) == (4, 0)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        Mailbox("t.in", capacity=0)
