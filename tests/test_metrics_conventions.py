"""Metrics by Prometheus conventions: stable info labels and a status gauge, a batch-duration histogram,
``process_*`` metrics, series only where they mean something, final values equal to the summary, and a
push of the final values to a Pushgateway (a small local HTTP receiver stands in for it)."""

from __future__ import annotations

import base64
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

import actorflow as af
from actorflow._observe._monitor_process import PushError, push_url

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def fed_flow(rate_limit: float | None = None) -> af.Flow:
    flow = af.Flow("fed")
    flow.source(af.external_source(int, name="numbers"))

    @flow.task(on_error=af.DeadLetter(), rate_limit=rate_limit)
    def check(numbers: int) -> int:
        if numbers % 1000 == 7:
            raise ValueError(numbers)
        return numbers

    @flow.collector(init=0)
    def total(acc: int, check: int) -> int:
        return acc + check

    return flow


async def test_conventions_and_final_values_equal_the_summary_under_scrapes() -> None:
    pushes = 10_000
    async with af.open_run(fed_flow()) as run:
        metrics = af.metrics.collector(run)
        feed = af.feed(run, "numbers")
        scraped: list[str] = []

        async def scrape_often() -> None:
            while not run.done:
                scraped.append(metrics.render())
                await trio.sleep(0.002)  # a scrape every few milliseconds, as a busy Prometheus might

        async with trio.open_nursery() as nursery:
            nursery.start_soon(scrape_often)
            for i in range(pushes):
                await feed.send(i)
            feed.close()
            result = await run.result()
        final, types = parse(metrics.render())
    assert len(scraped) >= 3
    infos = {frozenset(k[1]) for text in scraped for k in parse(text)[0] if k[0] == "actorflow_run_info"}
    assert infos == {frozenset({("flow", "fed"), ("run_id", run.run_id)})}  # one series all along
    assert value(final, "actorflow_run_status", flow="fed", status="ok") == 1
    assert sum(value(final, "actorflow_run_status", flow="fed", status=s) for s in
               ("pending", "running", "ok", "failed", "cancelled", "interrupted")) == 1
    summary = result.summary
    for task, t in summary.tasks.items():
        assert value(final, "actorflow_task_items_in_total", flow="fed", task=task) == t.items_in
        assert value(final, "actorflow_task_items_out_total", flow="fed", task=task) == t.items_out
        assert value(final, "actorflow_task_dead_letters_total", flow="fed", task=task) == t.dead_letters
        assert value(final, "actorflow_task_failures_total", flow="fed", task=task) == t.failures
        assert value(final, "actorflow_task_retries_total", flow="fed", task=task) == t.retries
    assert summary.tasks["numbers"].items_out == pushes
    assert summary.tasks["check"].dead_letters == 10
    # a histogram of batch durations per task, cumulative buckets ending at +Inf == count
    assert types["actorflow_task_batch_duration_seconds"] == "histogram"
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in final.items()
                     if k[0] == "actorflow_task_batch_duration_seconds_bucket" and ("task", "check") in k[1])
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and buckets[-1][0] == float("inf")
    count = value(final, "actorflow_task_batch_duration_seconds_count", flow="fed", task="check")
    assert buckets[-1][1] == count > 0
    assert value(final, "actorflow_task_batch_duration_seconds_sum", flow="fed", task="check") > 0
    # process metrics, as Prometheus' own clients name them
    assert value(final, "process_cpu_seconds_total") > 0
    assert value(final, "process_resident_memory_bytes") > 1_000_000
    assert value(final, "process_open_fds") > 0 and value(final, "process_start_time_seconds") > 1.6e9
    # no store, no rate limit, no cache: none of their series
    present = names(final)
    assert not {n for n in present if n.startswith(("actorflow_checkpoint", "actorflow_cache"))}
    assert "actorflow_task_throttled_seconds_total" not in present


async def test_throttle_series_only_for_a_task_with_a_rate_limit() -> None:
    async with af.open_run(fed_flow(rate_limit=10_000.0)) as run:
        metrics = af.metrics.collector(run)
        feed = af.feed(run, "numbers")
        for i in range(5):
            await feed.send(i)
        feed.close()
        await run.result()
    samples, _ = parse(metrics.render())
    throttled = {dict(k[1])["task"] for k in samples if k[0] == "actorflow_task_throttled_seconds_total"}
    assert throttled == {"check"}


class _Receiver(http.server.BaseHTTPRequestHandler):
    got: list[tuple[str, str, str]]
    status = 200

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"])).decode()
        self.got.append((self.path, self.headers["content-type"], body))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    got: list[tuple[str, str, str]] = []
    handler = type("Handler", (_Receiver,), {"got": got})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()


async def test_push_puts_the_final_values_to_a_pushgateway(gateway: tuple[str, list[tuple[str, str, str]]]) -> None:
    address, got = gateway
    async with af.open_run(fed_flow()) as run:
        metrics = af.metrics.collector(run)
        feed = af.feed(run, "numbers")
        for i in range(20):
            await feed.send(i)
        feed.close()
        result = await run.result()
    assert await metrics.push(address, job="nightly") == 200
    (path, ctype, body), = got
    assert path == "/metrics/job/nightly/flow/fed"
    assert ctype.startswith("text/plain; version=0.0.4")
    samples, _ = parse(body)
    assert value(samples, "actorflow_task_items_in_total", flow="fed", task="check") == 20
    assert value(samples, "actorflow_task_dead_letters_total", flow="fed", task="check") == 1
    assert value(samples, "actorflow_run_status", flow="fed", status="ok") == 1
    assert result.summary.tasks["check"].dead_letters == 1


def test_push_url_encodes_slashes_as_the_pushgateway_does() -> None:
    encoded = base64.urlsafe_b64encode(b"data[/data]").decode()
    assert push_url("http://gw:9091/", "j b", {"flow": "data[/data]"}) == f"http://gw:9091/metrics/job/j%20b/flow@base64/{encoded}"
    assert push_url("gw:9091", "j", {"flow": "plain"}) == "http://gw:9091/metrics/job/j/flow/plain"


async def test_a_gateway_that_cannot_be_reached_is_a_push_error() -> None:
    with trio.socket.socket() as sock:  # a port nothing listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with af.open_run(fed_flow()) as run:
        metrics = af.metrics.collector(run)
        af.feed(run, "numbers").close()
        await run.result()
    with pytest.raises(PushError, match="cannot push metrics to the Pushgateway"):
        await metrics.push(f"127.0.0.1:{port}", timeout=5)


def test_cli_metrics_push(tmp_path: Path, gateway: tuple[str, list[tuple[str, str, str]]]) -> None:
    address, got = gateway
    squares = ROOT / "examples" / "squares.py"
    done = subprocess.run(
        [sys.executable, "-m", "actorflow", "run", str(squares), "--set", "numbers.n=50", "--metrics-push", address],
        capture_output=True, text=True, env=ENV, timeout=120, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert f"final metrics pushed to {address}" in done.stderr
    (path, _, body), = got
    samples, _ = parse(body)
    assert path == "/metrics/job/actorflow/flow/squares"
    assert value(samples, "actorflow_task_items_out_total", flow="squares", task="numbers") == 50
