"""The dashboard an operator can use, in a real headless Chromium at 1400x900: the graph fits the
window (and zooms and pans), rates are right on first load, a late page gets the run's history,
failures, retries, dead letters and the last error, and ``actorflow dashboard --store DIR`` shows a
finished run read-only. Screenshots are decoded and checked for the things named."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import trio

import actorflow as af
from tests.test_dashboard import ARGS, BROWSER, pytestmark  # noqa: F401 - the same Chromium, skipped alike

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
VIEWPORT = {"width": 1400, "height": 900}
FINISHED = (0x8F, 0xBF, 0x6A)  # --finished in style.css: a finished node's border
RUNNING = (0x5A, 0xA9, 0xE6)


def pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """A PNG screenshot's width, height and rows of RGBA/RGB pixels (8-bit, not interlaced, as Chromium writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", data[:10])
            assert depth == 8 and color in (2, 6)
            channels = 4 if color == 6 else 3
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw, stride, rows = zlib.decompress(idat), width * channels, []
    prev = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r) if channels == 3 else bytes(x for j, x in enumerate(r) if j % 4 != 3)
                           for r in rows]


def has_color(shot: tuple[int, int, list[bytes]], box: dict[str, float], color: tuple[int, int, int]) -> bool:
    """Whether the screenshot shows *color* (within a few levels) inside *box* (CSS pixels)."""
    _, _, rows = shot
    x0, y0 = max(0, int(box["x"])), max(0, int(box["y"]))
    for y in range(y0, min(len(rows), int(box["y"] + box["height"]) + 1)):
        row = rows[y]
        for x in range(x0, min(len(row) // 3, int(box["x"] + box["width"]) + 1)):
            r, g, b = row[3 * x:3 * x + 3]
            if abs(r - color[0]) < 12 and abs(g - color[1]) < 12 and abs(b - color[2]) < 12:
                return True
    return False


wide = af.Flow("wide_graph")


@wide.source
def read_customers(n: int = 300) -> af.Stream[int]:
    yield from range(n)


@wide.task
def clean(read_customers: int) -> int:
    return read_customers


@wide.task
def enrich(clean: int) -> int:
    return clean + 1


@wide.task
def score(enrich: int) -> int:
    return enrich * 2


@wide.task
def rank(score: int) -> int:
    return score


@wide.collector(init=0)
def report(acc: int, rank: int) -> int:
    return acc + rank


def browse(fn: Any) -> Any:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BROWSER, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            out = fn(page)
            out["errors"] = errors
            return out
        finally:
            browser.close()


async def test_the_graph_fits_the_window_and_zooms_and_pans(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    result = None
    async with af.open_run(wide) as run, af.monitor.open_monitor(run, port=0) as mon:
        result = await run.result()

        def drive(page: Any) -> dict[str, Any]:
            seen: dict[str, Any] = {}
            page.goto(mon.http_url)
            expect(page.locator("#status")).to_have_attribute("data-status", "ok")
            names = page.eval_on_selector_all("g.node", "ns => ns.map(n => n.dataset.task)")
            boxes = {n: page.locator(f'g.node[data-task="{n}"] rect').bounding_box() for n in names}
            seen["inside"] = all(0 <= b["x"] and b["x"] + b["width"] <= VIEWPORT["width"]
                                 and 0 <= b["y"] and b["y"] + b["height"] <= VIEWPORT["height"]
                                 for b in boxes.values())
            seen["scroll"] = page.evaluate(
                "[document.documentElement.scrollWidth - innerWidth,"
                " document.documentElement.scrollHeight - innerHeight]"
            )
            shot = pixels(page.screenshot())
            seen["drawn"] = {n: has_color(shot, b, FINISHED) for n, b in boxes.items()}
            (tmp_path / "fit.png").write_bytes(page.screenshot())
            zoom = float(page.get_attribute("#graph", "data-zoom") or 0)
            page.click("#zoom-in")
            seen["zoomed_in"] = float(page.get_attribute("#graph", "data-zoom") or 0) > zoom
            graph = page.locator("#graph").bounding_box()
            page.mouse.move(graph["x"] + graph["width"] / 2, graph["y"] + graph["height"] / 2)
            page.mouse.wheel(0, 400)
            seen["wheel_out"] = float(page.get_attribute("#graph", "data-zoom") or 0) < zoom * 1.25
            before = page.get_attribute("#graph", "viewBox")
            page.mouse.down()
            page.mouse.move(graph["x"] + graph["width"] / 2 + 150, graph["y"] + graph["height"] / 2 + 40, steps=5)
            page.mouse.up()
            seen["panned"] = page.get_attribute("#graph", "viewBox") != before
            page.click("#fit")
            seen["fit_again"] = abs(float(page.get_attribute("#graph", "data-zoom") or 0) - zoom) < 1e-3
            return seen

        seen = await trio.to_thread.run_sync(lambda: browse(drive))
    assert result is not None and result["report"] == sum((i + 1) * 2 for i in range(300))
    assert seen["inside"], "a node is cut off"
    assert seen["scroll"] == [0, 0], "the page scrolls"
    assert seen["drawn"] == {n: True for n in ("read_customers", "clean", "enrich", "score", "rank", "report")}
    assert seen["zoomed_in"] and seen["wheel_out"] and seen["panned"] and seen["fit_again"]
    assert seen["errors"] == []


late = af.Flow("late_page")
late.source(af.external_source(int, name="numbers"))
ATTEMPTS: dict[int, int] = {}


@late.task(on_error=af.DeadLetter())
def check(numbers: int) -> int:
    if numbers in (3, 5):
        raise ValueError(f"bad number {numbers}")
    return numbers


@late.task(on_error=af.Retry(attempts=2, backoff=0.0))
def flaky(check: int) -> int:
    ATTEMPTS[check] = ATTEMPTS.get(check, 0) + 1
    if check == 7 and ATTEMPTS[check] == 1:
        raise OSError("try again")
    return check


@late.collector(init=0)
def added(acc: int, flaky: int) -> int:
    return acc + flaky


async def test_a_late_page_gets_history_counts_the_last_error_and_real_rates() -> None:
    from playwright.sync_api import expect

    ATTEMPTS.clear()
    async with af.open_run(late) as run, af.monitor.open_monitor(run, port=0, stats_interval=60.0) as mon:
        feed = af.feed(run, "numbers")
        for i in range(10):
            await feed.send(i)
        while run.summary.tasks["flaky"].items_in < 8:  # every item went through before the page loads
            await trio.sleep(0.01)

        def drive(page: Any) -> dict[str, Any]:
            seen: dict[str, Any] = {}
            page.goto(mon.http_url)
            page.wait_for_selector('#tasks tr[data-task="check"]')
            row = '#tasks tr[data-task="{}"] .{}'
            seen["dead"] = page.text_content(row.format("check", "dead"))
            seen["failures"] = page.text_content(row.format("check", "failures"))
            seen["retries"] = page.text_content(row.format("flaky", "retries"))
            seen["rate"] = page.text_content(row.format("check", "rate"))  # from hello alone (stats every 60 s)
            seen["events"] = page.eval_on_selector_all("#events li", "ls => ls.map(l => l.textContent)")
            expect(page.locator("#last-error")).to_be_visible()
            seen["last_error"] = page.text_content("#last-error .text")
            shot = pixels(page.screenshot())
            seen["running_drawn"] = has_color(shot, page.locator('g.node[data-task="check"] rect').bounding_box(),
                                              RUNNING)
            return seen

        seen = await trio.to_thread.run_sync(lambda: browse(drive))
        feed.close()
        result = await run.result()
    assert result["added"] == sum(range(10)) - 3 - 5
    assert seen["dead"] == "2" and seen["failures"] == "2" and seen["retries"] == "1"
    assert seen["rate"] not in ("0", "-", "")
    events = "\n".join(seen["events"])
    assert "run_started" in events and events.count("dead_lettered check") == 2
    assert "item_retried flaky" in events
    assert "OSError: try again" in seen["last_error"] and "flaky" in seen["last_error"]
    assert seen["running_drawn"]
    assert seen["errors"] == []


def test_dashboard_store_shows_a_finished_run_read_only(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    (tmp_path / "dl.py").write_text(
        "import actorflow as af\nflow = af.Flow('stored')\n"
        "@flow.source\ndef numbers(n: int = 100) -> af.Stream[int]:\n    yield from range(n)\n"
        "@flow.task(on_error=af.DeadLetter())\ndef validate(numbers: int) -> int:\n"
        "    if numbers % 10 == 3:\n        raise ValueError(f'bad {numbers}')\n    return numbers\n"
        "@flow.collector(init=0)\ndef total(acc: int, validate: int) -> int:\n    return acc + validate\n"
    )
    done = subprocess.run([sys.executable, "-m", "actorflow", "run", "dl.py", "--store", "st", "--quiet"],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    proc = subprocess.Popen([sys.executable, "-m", "actorflow", "dashboard", "--store", "st", "--monitor",
                             "127.0.0.1:0"], cwd=tmp_path, env=ENV, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "(finished, read-only)" in line, line
        url = line.split(" at ", 1)[1].split()[0]

        def drive(page: Any) -> dict[str, Any]:
            seen: dict[str, Any] = {}
            page.goto(url)
            expect(page.locator("#read-only")).to_be_visible()
            page.wait_for_selector('g.node[data-task="total"]')
            seen["status"] = page.text_content("#status")
            seen["nodes"] = page.eval_on_selector_all("g.node", "ns => ns.map(n => n.dataset.task)")
            seen["items"] = page.text_content('#tasks tr[data-task="validate"] .count')
            seen["dead"] = page.text_content('#tasks tr[data-task="validate"] .dead')
            seen["events"] = page.eval_on_selector_all("#events li", "ls => ls.length")
            seen["disabled"] = page.eval_on_selector_all("nav button", "bs => bs.every(b => b.disabled)")
            seen["last_error"] = page.text_content("#last-error .text")
            shot = pixels(page.screenshot())
            seen["drawn"] = has_color(shot, page.locator('g.node[data-task="total"] rect').bounding_box(), FINISHED)
            return seen

        seen = browse(drive)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0
    assert seen["status"] == "finished"
    assert seen["nodes"] == ["numbers", "validate", "total"]
    assert seen["items"] == "100" and seen["dead"] == "10"
    assert seen["events"] == 10 and seen["disabled"] is True
    assert "ValueError: bad" in seen["last_error"]
    assert seen["drawn"]
    assert seen["errors"] == []
