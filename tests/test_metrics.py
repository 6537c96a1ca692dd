"""Prometheus metrics: scraped over real HTTP during and after a run, parsed with prometheus_client's parser."""

from __future__ import annotations

import functools
import math
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

import actorflow as af
from actorflow.metrics import CONTENT_TYPE, Metric, exposition

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """Samples by (name, labels) and each family's type, as Prometheus itself reads the text."""
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, str, str]:
    """A real HTTP request (run in a thread, so the trio loop serves it meanwhile)."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["content-type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["content-type"], exc.read().decode()


async def scrape(url: str, **kwargs: Any) -> tuple[int, str, str]:
    return await trio.to_thread.run_sync(lambda: get(url, **kwargs))


def metered(reached: trio.Event, release: trio.Event) -> af.Flow:
    """numbers (500) -> slow (holds at item 20 until released; item 5 fails once, then retries) -> total."""
    flow = af.Flow("metered")

    @flow.source(batch_size=10)
    def numbers(n: int = 500) -> af.Stream[int]:
        yield from range(n)

    @flow.task(capacity=50, on_error=af.Retry(attempts=3, backoff=0.001))
    async def slow(numbers: int) -> int:
        if numbers == 20 and not release.is_set():
            reached.set()
            await release.wait()
        return numbers

    @flow.collector(init=0)
    def total(acc: int, slow: int) -> int:
        return acc + slow

    return af.testing.double(flow, "slow", af.testing.fail_item(slow, 5))


async def test_the_monitor_serves_metrics_during_and_after_a_run(tmp_path: Path) -> None:
    reached, release = trio.Event(), trio.Event()
    flow = metered(reached, release)
    async with af.open_run(flow, store=tmp_path / "s", checkpoint_every=None) as run, \
            af.monitor.open_monitor(run, port=0) as mon:
        await reached.wait()
        await trio.testing.wait_all_tasks_blocked()  # the source has filled slow's mailbox and waits
        status, ctype, text = await scrape(mon.metrics_url)
        assert status == 200 and ctype == CONTENT_TYPE
        during, types = parse(text)
        assert value(during, "actorflow_task_retries_total", flow="metered", task="slow") == 1
        assert value(during, "actorflow_task_failures_total", flow="metered", task="slow") == 1
        assert value(during, "actorflow_task_queue_depth", flow="metered", task="slow") > 0
        assert value(during, "actorflow_task_running", flow="metered", task="slow") == 1
        assert value(during, "actorflow_task_items_in_total", flow="metered", task="numbers") > 20
        assert value(during, "actorflow_task_items_out_total", flow="metered", task="total") == 0
        assert value(during, "actorflow_checkpoints_total", flow="metered") == 0
        assert value(during, "actorflow_run_info", flow="metered", run_id=run.run_id) == 1  # stable labels
        assert value(during, "actorflow_run_status", flow="metered", status="running") == 1
        assert value(during, "actorflow_run_status", flow="metered", status="ok") == 0
        assert value(during, "actorflow_cache_misses_total", flow="metered", task="slow") == 1
        assert types["actorflow_task_items_in"] == "counter"  # the parser names counters without _total
        assert types["actorflow_task_queue_depth"] == "gauge"
        assert types["actorflow_checkpoint_pause_seconds"] == "summary"

        release.set()
        result = await run.result()
        assert result["total"] == sum(range(500))
        _, _, text = await scrape(mon.metrics_url)
        after, _ = parse(text)

    assert value(after, "actorflow_task_items_in_total", flow="metered", task="numbers") == 500
    assert value(after, "actorflow_task_items_in_total", flow="metered", task="slow") == 500
    assert value(after, "actorflow_task_items_out_total", flow="metered", task="total") == 1
    assert value(after, "actorflow_task_queue_depth", flow="metered", task="slow") == 0
    assert value(after, "actorflow_task_running", flow="metered", task="slow") == 0
    assert value(after, "actorflow_task_retries_total", flow="metered", task="slow") == 1
    assert value(after, "actorflow_task_dead_letters_total", flow="metered", task="slow") == 0
    assert value(after, "actorflow_task_busy_seconds_total", flow="metered", task="slow") > 0
    assert value(after, "actorflow_task_elapsed_seconds", flow="metered", task="slow") > 0
    assert value(after, "actorflow_run_info", flow="metered", run_id=run.run_id) == 1
    assert value(after, "actorflow_run_status", flow="metered", status="ok") == 1
    assert value(after, "actorflow_run_status", flow="metered", status="running") == 0
    # the final checkpoint, from its CheckpointWritten event
    assert value(after, "actorflow_checkpoints_total", flow="metered") == 1
    assert value(after, "actorflow_checkpoint_pause_seconds_count", flow="metered") == 1
    assert value(after, "actorflow_checkpoint_write_seconds_count", flow="metered") == 1
    assert value(after, "actorflow_checkpoint_write_seconds_sum", flow="metered") > 0
    assert value(after, "actorflow_checkpoint_last_size_bytes", flow="metered") > 0


async def test_a_collector_without_a_monitor_counts_cache_hits_and_serves_itself(tmp_path: Path) -> None:
    reached, release = trio.Event(), trio.Event()
    release.set()
    flow = metered(reached, release)
    await af.run_async(flow, store=tmp_path / "s")  # cold: every task runs and is cached
    async with af.open_run(flow, store=tmp_path / "s") as run:
        metrics = af.metrics.collector(run)
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(functools.partial(trio.serve_tcp, metrics.handle, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            await run.result()
            status, ctype, text = await scrape(f"http://127.0.0.1:{port}/metrics")
            missing, _, _ = await scrape(f"http://127.0.0.1:{port}/other")
            nursery.cancel_scope.cancel()
    assert status == 200 and ctype == CONTENT_TYPE and missing == 404
    samples, _ = parse(text)
    for task in ("numbers", "slow", "total"):
        assert value(samples, "actorflow_cache_hits_total", flow="metered", task=task) == 1
        assert value(samples, "actorflow_cache_misses_total", flow="metered", task=task) == 0
    assert value(samples, "actorflow_task_retries_total", flow="metered", task="slow") == 0  # its code did not run
    def run_part(text: str) -> list[str]:
        return [line for line in text.splitlines() if "process_" not in line]  # the process's own figures move

    assert run_part(text) == run_part(metrics.render())  # nothing new happened: the same text


async def test_metrics_honour_the_monitor_token_and_methods() -> None:
    flow = af.Flow("tiny")

    @flow.source
    def numbers(n: int = 3) -> af.Stream[int]:
        yield from range(n)

    async with af.open_run(flow) as run, af.monitor.open_monitor(run, port=0, token="s3cret") as mon:
        await run.result()
        refused = await scrape(mon.metrics_url)
        allowed = await scrape(mon.metrics_url, headers={"Authorization": "Bearer s3cret"})
        head = await scrape(mon.metrics_url, headers={"Authorization": "Bearer s3cret"}, method="HEAD")
        post = await scrape(mon.metrics_url, headers={"Authorization": "Bearer s3cret"}, method="POST")
    assert refused[0] == 401
    assert allowed[0] == 200
    assert value(parse(allowed[2])[0], "actorflow_task_items_out_total", flow="tiny", task="numbers") == 3
    assert head[0] == 200 and head[2] == ""
    assert post[0] == 405


def test_the_exposition_escapes_labels_and_help_and_writes_special_values() -> None:
    odd = 'a "quoted" \\ back\nslash'
    text = exposition([
        Metric("x_total", "counter", "help with \\ and\nnewline", (("", (("task", odd),), 2),)),
        Metric("y", "gauge", "special values", (
            ("", (("k", "inf"),), math.inf), ("", (("k", "nan"),), math.nan), ("", (), 0.25),
        )),
    ])
    samples, types = parse(text)
    assert value(samples, "x_total", task=odd) == 2
    assert value(samples, "y", k="inf") == math.inf
    assert math.isnan(value(samples, "y", k="nan"))
    assert value(samples, "y") == 0.25
    assert types == {"x": "counter", "y": "gauge"}
    assert "# HELP x_total help with \\\\ and\\nnewline" in text
    assert text.endswith("\n")


@pytest.mark.parametrize("policy", [af.DeadLetter(), af.Restart(intensity=5, period=60.0)])
async def test_dead_letters_and_restarts_are_counted(policy: Any) -> None:
    flow = af.Flow("policies")

    @flow.source
    def numbers(n: int = 10) -> af.Stream[int]:
        yield from range(n)

    @flow.task(on_error=policy)
    def work(numbers: int) -> int:
        return numbers

    flaky = af.testing.double(flow, "work", af.testing.fail_item(work, 2, times=2))
    async with af.open_run(flaky) as run:
        metrics = af.metrics.collector(run)
        await run.result()
    samples, _ = parse(metrics.render())
    kind = "dead_letters" if isinstance(policy, af.DeadLetter) else "restarts"
    assert value(samples, f"actorflow_task_{kind}_total", flow="policies", task="work") == 2
    assert value(samples, "actorflow_task_failures_total", flow="policies", task="work") == 2
