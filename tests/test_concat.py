"""``af.concat``: ordered output from writers and parallel flows, cached parts, no temp files left."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import actorflow as af

calls: Counter[str] = Counter()
active = {"now": 0, "max": 0}


def chapter_flow(gate: trio.Event | None = None, width: int = 0) -> af.Flow:
    """A part: a stream of byte lines for chapter *i*."""
    flow = af.Flow("chapter")

    @flow.source
    async def lines(i: int = 0, n: int = 3) -> af.Stream[bytes]:
        calls[f"lines{i}"] += 1
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        try:
            if gate is not None:
                if active["now"] >= width:
                    gate.set()
                await gate.wait()  # every part waits until `width` of them run at once
            for j in range(n):
                await trio.lowlevel.checkpoint()
                yield f"chapter {i} line {j}\n".encode()
        finally:
            active["now"] -= 1

    @flow.task
    def indent(lines: bytes) -> bytes:
        return b"  " + lines

    return flow


def summary_flow() -> af.Flow:
    """A part whose output is one bytes product."""
    flow = af.Flow("summary")

    @flow.task
    def summary(chapters: int = 3) -> bytes:
        calls["summary"] += 1
        return f"{chapters} chapters\n".encode()

    return flow


def title(out: Any) -> None:
    out.write(b"TITLE\n")


async def colophon(out: Any) -> None:
    await trio.lowlevel.checkpoint()
    out.write(b"-- end --\n")


def parts(k: int = 6, flow: af.Flow | None = None) -> list[Any]:
    flow = flow or chapter_flow()
    return [title, *(flow.bind({"lines": {"i": i}}) for i in range(k)), summary_flow().bind({}), colophon]


def expected(k: int = 6) -> bytes:
    body = b"".join(f"  chapter {i} line {j}\n".encode() for i in range(k) for j in range(3))
    return b"TITLE\n" + body + b"3 chapters\n-- end --\n"


def test_output_is_byte_for_byte_the_serial_one(tmp_path: Path) -> None:
    serial = af.concat(tmp_path / "serial.txt", parts(), limit=1)
    parallel = af.concat(tmp_path / "parallel.txt", parts(), limit=16)
    assert (tmp_path / "serial.txt").read_bytes() == (tmp_path / "parallel.txt").read_bytes() == expected()
    assert serial.bytes == parallel.bytes == len(expected())
    assert [p.kind for p in parallel.parts] == ["writer", *["flow"] * 7, "writer"]
    assert [p.bytes for p in parallel.parts][:2] == [6, len(b"  chapter 0 line 0\n") * 3]
    buf = io.BytesIO()
    af.concat(buf, parts(), limit=4)  # a binary file object
    assert buf.getvalue() == expected()


async def test_into_a_trio_stream(tmp_path: Path) -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    got = bytearray()

    async def read() -> None:
        while data := await receive.receive_some():
            got.extend(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await af.concat_async(send, parts(), limit=3)
        await send.aclose()
    assert bytes(got) == expected()


async def test_at_most_limit_flows_run_at_once(tmp_path: Path) -> None:
    active.update(now=0, max=0)
    gate = trio.Event()
    flow = chapter_flow(gate, width=3)
    out = io.BytesIO()
    await af.concat_async(out, [flow.bind({"lines": {"i": i}}) for i in range(8)], limit=3)
    assert active["max"] == 3  # three ran together (the gate needs it), never more
    assert out.getvalue() == b"".join(f"  chapter {i} line {j}\n".encode() for i in range(8) for j in range(3))


def test_cached_parts_are_not_run(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    calls.clear()
    first = af.concat(tmp_path / "a.txt", parts(), cache=cache)
    assert calls["lines0"] == 1 and calls["summary"] == 1 and first.hits == 0
    assert {p.cache for p in first.parts if p.kind == "flow"} == {"miss"}
    calls.clear()
    events: list[Any] = []
    second = af.concat(tmp_path / "b.txt", parts(), cache=cache, on_event=events.append)
    assert sum(calls.values()) == 0  # every flow part came from the cache
    assert second.hits == 7 and (tmp_path / "b.txt").read_bytes() == expected()
    hits = [e for e in events if isinstance(e, af.events.CacheHit)]
    assert {e.task for e in hits} == {"lines", "indent", "summary"} and len(hits) == 6 * 2 + 1
    # one part changed: only it runs
    calls.clear()
    changed = parts()
    changed[3] = chapter_flow().bind({"lines": {"i": 2, "n": 1}})
    third = af.concat(tmp_path / "c.txt", changed, cache=cache)
    assert calls == Counter({"lines2": 1}) and third.hits == 6
    assert b"chapter 2 line 1" not in (tmp_path / "c.txt").read_bytes()


def test_temp_files_are_gone_after_success_and_after_failure(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    af.concat(tmp_path / "ok.txt", parts(), tmp_dir=tmp)
    assert list(tmp.iterdir()) == []

    broken = af.Flow("broken")

    @broken.source
    def lines(fail_at: int = 2) -> af.Stream[bytes]:
        for j in range(5):
            if j == fail_at:
                raise OSError("disk went away")
            yield b"x\n"

    (tmp_path / "out.txt").write_bytes(b"previous")
    with pytest.raises(af.TaskFailed, match="disk went away") as info:
        af.concat(tmp_path / "out.txt", [*parts(), broken.bind({})], tmp_dir=tmp)
    assert any("concat part 9" in note for note in info.value.__notes__)
    assert list(tmp.iterdir()) == []  # spill files removed
    assert (tmp_path / "out.txt").read_bytes() == b"previous"  # the output is replaced only on success
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.txt", "out.txt", "tmp"]  # no .part file left


def test_bad_parts_are_refused_before_anything_runs(tmp_path: Path) -> None:
    calls.clear()
    good = parts()
    strings = af.Flow("strings")

    @strings.source
    def words() -> af.Stream[str]:
        yield "a"

    two = af.Flow("two")

    @two.source
    def a() -> af.Stream[bytes]:
        yield b"a"

    @two.source
    def b() -> af.Stream[bytes]:
        yield b"b"

    needs = af.Flow("needs")

    @needs.task
    def blob(size: int) -> bytes:
        return b"x" * size

    cases = [
        ([*good, strings.bind({})], r"concat part 9 \(flow 'strings'\): its output task 'words' produces a stream "
                                    r"of str; a concat part must produce bytes"),
        ([*good, two.bind({})], r"concat part 9 \(flow 'two'\): a part needs exactly one output task"),
        ([*good, 42], r"concat part 9: expected a writer function .* got int 42"),
        ([*good, needs], r"concat part 9 \(flow 'needs'\): bind it first(.|\n)*'size': required"),
        ("title", r"parts must be a list"),
    ]
    for bad, message in cases:
        with pytest.raises(af.ActorflowError, match=message):
            af.concat(tmp_path / "out.txt", bad)
    with pytest.raises(af.ActorflowError, match="limit must be a positive int"):
        af.concat(tmp_path / "out.txt", good, limit=0)
    with pytest.raises(af.ActorflowError, match=r"folder of output .* does not exist"):
        af.concat(tmp_path / "no" / "out.txt", good)
    with pytest.raises(af.ActorflowError, match="output must be a path, a binary file object or a trio stream"):
        af.concat(3.5, good)  # type: ignore[arg-type]
    assert sum(calls.values()) == 0
    assert not (tmp_path / "out.txt").exists()

    def shouts(out: Any) -> None:
        out.write("text, not bytes")

    with pytest.raises(af.ActorflowError, match=r"concat part 0 \(shouts\): write\(\) takes bytes, got str"):
        af.concat(tmp_path / "out.txt", [shouts])
    assert not (tmp_path / "out.txt").exists()
