"""Traffic on the live graph: the ``edges`` of the monitor's ``stats``, read by a real websocket client."""

from __future__ import annotations

import json
from typing import Any

import trio
from trio_websocket import open_websocket_url

import actorflow as af

N = 50
#: The gate the slow reader waits on; each test run puts a fresh event here.
GATE: dict[str, trio.Event] = {}


def inner_flow() -> af.Flow:
    inner = af.Flow("inner")
    inner.input("raw", int)

    @inner.task
    def plus(raw: int) -> int:
        return raw + 1

    @inner.task(batch_size=4)
    async def gated(plus: int) -> int:
        await GATE["open"].wait()  # held until the test saw items queue up in front of it
        return plus

    return inner


def traffic_flow() -> af.Flow:
    flow = af.Flow("traffic")

    @flow.source
    def numbers(n: int = N) -> af.Stream[int]:
        yield from range(n)

    @flow.task
    def double(numbers: int) -> int:  # numbers fans out to double and triple
        return 2 * numbers

    @flow.task
    def triple(numbers: int) -> int:
        return 3 * numbers

    @flow.task
    def pair(double: int, triple: int) -> int:  # a zip: two edges in
        return double + triple

    flow.add(inner_flow(), name="held", inputs={"raw": "pair"})

    @flow.collector(init=0)
    def total(acc: int, held: int) -> int:
        return acc + held

    return flow


async def test_stats_carry_every_edges_traffic_and_a_blocked_readers_queue() -> None:
    GATE["open"] = trio.Event()
    with trio.fail_after(30):
        async with af.open_run(traffic_flow()) as run, \
                af.monitor.open_monitor(run, port=0, stats_interval=0.02) as mon, \
                open_websocket_url(mon.url) as ws:
            hello = json.loads(await ws.get_message())
            graph_edges = [tuple(e) for e in hello["graph"]["edges"]]
            stats: list[dict[str, Any]] = [hello]
            max_queued = 0
            ended = False
            while True:
                msg = json.loads(await ws.get_message())
                if msg["type"] == "event" and msg["event"]["kind"] == "run_finished":
                    ended = True
                if msg["type"] != "stats":
                    continue
                stats.append(msg)
                held = next(e for e in msg["edges"] if e["to"] == "held/gated")
                max_queued = max(max_queued, held["queued"])
                if held["queued"] > 0:
                    GATE["open"].set()
                if ended:  # a stats message after run_finished: the final figures
                    break
            result = await run.result()

    assert result["total"] == sum(5 * x + 1 for x in range(N))
    assert set(graph_edges) == {
        ("numbers", "double"), ("numbers", "triple"), ("double", "pair"), ("triple", "pair"),
        ("pair", "held/plus"), ("held/plus", "held/gated"), ("held/gated", "total"),
    }
    for msg in stats:
        assert [(e["from"], e["to"]) for e in msg["edges"]] == graph_edges
        assert all(set(e) == {"from", "to", "sent", "queued"} for e in msg["edges"])
        assert all(e["queued"] >= 0 for e in msg["edges"])
    for i in range(len(graph_edges)):
        sent = [msg["edges"][i]["sent"] for msg in stats]
        assert sent == sorted(sent), f"edge {graph_edges[i]}: sent went down: {sent}"
    assert max_queued > 0
    final = stats[-1]["edges"]
    assert [e["sent"] for e in final] == [N] * len(graph_edges)
    assert [e["queued"] for e in final] == [0] * len(graph_edges)


product_flow = af.Flow("product_edge")


@product_flow.source
def values(n: int = 5) -> af.Stream[int]:
    yield from range(n)


@product_flow.collector(init=0)
def summed(acc: int, values: int) -> int:
    return acc + values


@product_flow.task
def scaled(values: int, summed: int) -> float:  # a stream zipped with nothing: reads the product whole
    return values / (summed or 1)


async def test_an_edge_that_hands_over_a_whole_product() -> None:
    async with af.open_run(product_flow) as run, af.monitor.open_monitor(run, port=0) as mon:
        await run.result()
        async with open_websocket_url(mon.url) as ws:
            hello = json.loads(await ws.get_message())
    edges = {(e["from"], e["to"]): e for e in hello["edges"]}
    assert set(edges) == {tuple(e) for e in hello["graph"]["edges"]}
    assert edges[("values", "summed")]["sent"] == 5
    assert edges[("values", "scaled")]["sent"] == 5
    assert edges[("summed", "scaled")] == {"from": "summed", "to": "scaled", "sent": 1, "queued": 0}
