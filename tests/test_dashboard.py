"""The live web dashboard, driven in a real headless Chromium (Debian's ``chromium`` package)."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest
import trio

import actorflow as af

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason="playwright is not installed"),
    pytest.mark.skipif(
        BROWSER is None, reason="no Chromium on this machine (CI installs Debian's chromium in .ci/run)"
    ),
]
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]

flow = af.Flow("dashboard_demo")
flow.source(af.external_source(int, name="numbers"))


@flow.task
def square(numbers: int) -> int:
    return numbers * numbers


@flow.collector(init=0)
def total(acc: int, square: int) -> int:
    return acc + square


async def test_dashboard_draws_the_graph_and_live_counts(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    async with af.open_run(flow) as run, \
            af.monitor.open_monitor(run, port=0, token="s3cret", stats_interval=0.1) as mon:
        feed = af.feed(run, "numbers")

        async def push(items: list[int]) -> None:
            for x in items:
                await feed.send(x)

        seen: dict[str, object] = {}

        def drive() -> None:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=BROWSER, headless=True, args=ARGS)
                try:
                    page = browser.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    # Without the token the page is refused.
                    refused = page.goto(mon.http_url.split("?")[0])
                    seen["refused"] = refused.status if refused else None
                    page.goto(mon.http_url)
                    page.wait_for_selector('g.node[data-task="total"]')
                    seen["nodes"] = page.eval_on_selector_all("g.node", "ns => ns.map(n => n.dataset.task)")
                    seen["edges"] = page.eval_on_selector_all(
                        "path.edge", "es => es.map(e => [e.dataset.from, e.dataset.to])"
                    )
                    seen["flow"] = page.text_content("#flow")
                    trio.from_thread.run(push, [1, 2, 3])
                    expect(page.locator('g.node[data-task="square"]')).to_have_attribute("data-count", "3")
                    seen["first"] = page.text_content('#tasks tr[data-task="square"] .count')
                    trio.from_thread.run(push, [4, 5])
                    expect(page.locator('g.node[data-task="square"]')).to_have_attribute("data-count", "5")
                    seen["second"] = page.text_content('#tasks tr[data-task="square"] .count')
                    page.screenshot(path=str(tmp_path / "dashboard.png"))
                    page.click("#pause")
                    expect(page.locator("#status")).to_have_attribute("data-status", "paused")
                    expect(page.locator("#message")).to_have_text("pause: ok")
                    seen["paused"] = trio.from_thread.run_sync(lambda: run.paused)
                    page.click("#checkpoint")
                    expect(page.locator("#message")).to_contain_text("checkpoints need a store")
                    page.click("#resume")
                    expect(page.locator("#status")).to_have_attribute("data-status", "running")
                    seen["resumed"] = not trio.from_thread.run_sync(lambda: run.paused)
                    trio.from_thread.run_sync(feed.close)
                    expect(page.locator("#status")).to_have_attribute("data-status", "ok")
                    seen["state"] = page.get_attribute('g.node[data-task="total"]', "data-state")
                    seen["errors"] = errors
                finally:
                    browser.close()

        await trio.to_thread.run_sync(drive)
        result = await run.result()

    assert seen["refused"] == 401
    assert seen["flow"] == "dashboard_demo"
    assert seen["nodes"] == ["numbers", "square", "total"]
    assert seen["edges"] == [["numbers", "square"], ["square", "total"]]
    assert seen["first"] == "3"
    assert seen["second"] == "5"
    assert seen["state"] == "finished"
    assert seen["paused"] is True and seen["resumed"] is True
    assert seen["errors"] == []
    assert (tmp_path / "dashboard.png").stat().st_size > 0
    assert result["total"] == 1 + 4 + 9 + 16 + 25


cached = af.Flow("dashboard_cached")


@cached.source
def numbers(n: int = 10) -> af.Stream[int]:
    yield from range(n)


@cached.collector(init=0)
def added(acc: int, numbers: int, offset: int = 0) -> int:
    return acc + numbers + offset


async def test_dashboard_marks_tasks_that_came_from_the_cache(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    await af.run_async(cached, store=tmp_path / "s")
    seen: dict[str, object] = {}
    options = {"added": {"offset": 1}}  # the collector is dirty; the source comes from the cache
    async with af.open_run(cached, options, store=tmp_path / "s") as run, af.monitor.open_monitor(run, port=0) as mon:
        result = await run.result()

        def drive() -> None:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=BROWSER, headless=True, args=ARGS)
                try:
                    page = browser.new_page()
                    page.goto(mon.http_url)
                    expect(page.locator('g.node[data-task="numbers"]')).to_have_attribute("data-cache", "hit")
                    expect(page.locator('g.node[data-task="added"]')).to_have_attribute("data-cache", "miss")
                    seen["numbers"] = page.text_content('#tasks tr[data-task="numbers"] .state')
                    seen["added"] = page.text_content('#tasks tr[data-task="added"] .state')
                finally:
                    browser.close()

        await trio.to_thread.run_sync(drive)
    assert result["added"] == 45 + 10
    assert seen == {"numbers": "finished (cached)", "added": "finished"}


queueing = af.Flow("dashboard_queue")
#: Holds the slow reader until the page showed its queue; each test run puts a fresh event here.
GATE: dict[str, trio.Event] = {}


@queueing.source
def fast(n: int = 200) -> af.Stream[int]:
    yield from range(n)


@queueing.task(capacity=8)
async def slow(fast: int) -> int:
    await GATE["open"].wait()
    return fast


@queueing.collector(init=0)
def kept(acc: int, slow: int) -> int:
    return acc + 1


async def test_dashboard_shows_a_slow_readers_queue_and_edge_traffic() -> None:
    from playwright.sync_api import expect, sync_playwright

    GATE["open"] = trio.Event()
    seen: dict[str, object] = {}
    async with af.open_run(queueing) as run, af.monitor.open_monitor(run, port=0, stats_interval=0.05) as mon:

        def drive() -> None:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=BROWSER, headless=True, args=ARGS)
                try:
                    page = browser.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    page.goto(mon.http_url)
                    label = page.locator('text.queue[data-from="fast"][data-to="slow"]')
                    expect(label).to_have_attribute("data-queued", re.compile(r"^[1-9]\d*$"), timeout=20_000)
                    seen["label"] = label.text_content()
                    seen["queued"] = int(label.get_attribute("data-queued") or 0)
                    trio.from_thread.run_sync(GATE["open"].set)
                    expect(page.locator("#status")).to_have_attribute("data-status", "ok", timeout=20_000)
                    edge = page.locator('path.edge[data-from="slow"][data-to="kept"]')
                    expect(edge).to_have_attribute("data-sent", "200")
                    expect(label).to_have_attribute("data-queued", "0")
                    seen["after"] = label.text_content()
                    seen["rate"] = int(edge.get_attribute("data-rate") or 0)
                    seen["width"] = edge.evaluate("e => parseFloat(getComputedStyle(e).strokeWidth)")
                    seen["errors"] = errors
                finally:
                    browser.close()

        await trio.to_thread.run_sync(drive)
        result = await run.result()

    assert result["kept"] == 200
    assert isinstance(seen["queued"], int) and seen["queued"] > 0
    assert seen["label"] == f"{seen['queued']} queued"
    assert seen["after"] == ""
    assert isinstance(seen["rate"], int) and seen["rate"] > 0  # the items the gate let through, per second
    assert isinstance(seen["width"], float) and seen["width"] > 2  # wider than an idle edge
    assert seen["errors"] == []
