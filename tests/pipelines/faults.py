"""A pipeline for fault tests (tests/test_faults.py): a source, a task whose code a test changes, a
collector keyed by tuples and one whose state grows with the option ``blob`` (to fill a store).

``python faults.py STORE`` runs it with a store and a checkpoint every 2 ms (a test SIGKILLs it).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import trio

import actorflow as af


def make(factor: int = 2) -> af.Flow:
    """The same names and wiring each time; *factor* changes the code of ``weigh``."""
    flow = af.Flow("faults")

    @flow.source(batch_size=32)
    async def numbers(n: int = 3000) -> AsyncIterator[int]:
        for i in range(n):
            if i % 50 == 0:
                await trio.sleep(0.001)  # the run lasts long enough for many checkpoints, the loop free meanwhile
            yield i

    if factor == 2:
        @flow.task
        def weigh(numbers: int) -> int:
            return numbers * 2
    else:
        @flow.task
        def weigh(numbers: int) -> int:
            return numbers * 3

    @flow.collector(init={})
    def pairs(acc: dict[Any, int], weigh: int) -> dict[Any, int]:
        key = (weigh % 7, "k")  # tuple keys: they must come back from a checkpoint as keys
        acc[key] = acc.get(key, 0) + weigh
        return acc

    @flow.collector(init=[])
    def kept(acc: list[bytes], numbers: int, blob: int = 0) -> list[bytes]:
        acc.append(bytes(blob))  # blob > 0: the state, and so each checkpoint, grows as the run goes on
        return acc

    return flow


flow = make()  # for `actorflow run faults.py:flow`


def products(result: Any) -> dict[str, Any]:
    """What a run produced, to compare with an uninterrupted run."""
    return {"pairs": result["pairs"], "kept": len(result["kept"]), "bytes": sum(map(len, result["kept"]))}


if __name__ == "__main__":
    af.run(flow, store=sys.argv[1], checkpoint_every=0.002)
