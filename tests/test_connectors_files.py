"""File sources: items as documented, glob order, malformed lines as failed items, the byte-offset cursor on resume."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

import actorflow as af
from actorflow._define import _connect_files
from actorflow._storage._codec import unpack
from actorflow._storage._store import open_store

#: Test switch: the `slow` task raises KeyboardInterrupt at item number CTL["interrupt_at"].
CTL: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _clean() -> None:
    CTL.clear()


def collect(source: type[af.Task], **add: Any) -> af.Flow:
    """source → slow (may hold) → collector `got` (the list of items)."""
    flow = af.Flow("files")
    flow.add(source, name="src", **add)

    @flow.task(batch_size=4, capacity=8)
    def slow(src: Any, seq: af.Seq) -> Any:
        if seq == CTL.get("interrupt_at"):
            raise KeyboardInterrupt
        return src

    @flow.collector(init=[])
    def got(acc: list[Any], slow: Any) -> list[Any]:
        return [*acc, slow]

    return flow


def run(source: type[af.Task], path: Any, **add: Any) -> af.RunResult:
    return af.run(collect(source, **add), {"src": {"path": str(path)}})


def test_lines_are_text_without_their_newline(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"one\r\ntwo\n\nthree \nlast without newline")
    assert run(af.LinesSource, tmp_path / "a.txt")["got"] == ["one", "two", "", "three ", "last without newline"]


def test_a_glob_reads_its_files_in_sorted_order_and_recurses(tmp_path: Path) -> None:
    for name, text in (("b.log", "b1\nb2\n"), ("a.log", "a1\n"), ("sub/c.log", "c1\n"), ("x.txt", "no\n")):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    assert run(af.LinesSource, tmp_path / "*.log")["got"] == ["a1", "b1", "b2"]
    assert run(af.LinesSource, tmp_path / "**" / "*.log")["got"] == ["a1", "b1", "b2", "c1"]
    with pytest.raises(af.TaskFailed, match=r"no file matches .*\*\.csv"):
        run(af.LinesSource, tmp_path / "*.csv")


def test_json_lines_are_parsed_and_blank_lines_skipped(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"a": 1}\n\n  \n[1, 2]\n"s"\n3.5\n')
    assert run(af.JsonLinesSource, tmp_path / "a.jsonl")["got"] == [{"a": 1}, [1, 2], "s", 3.5]


def test_a_malformed_line_fails_the_run_naming_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"a": 1}\n\n{"a": oops}\n{"a": 3}\n')
    with pytest.raises(af.TaskFailed) as info:
        run(af.JsonLinesSource, tmp_path / "in.jsonl")
    assert isinstance(info.value.__cause__, af.MalformedLineError)
    assert (info.value.__cause__.file, info.value.__cause__.line) == ("in.jsonl", 3)
    assert "in.jsonl, line 3: not JSON" in str(info.value) and "src" in str(info.value)


def test_dead_letters_set_malformed_lines_aside_and_reading_goes_on(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('1\nbad\n2\n')
    (tmp_path / "b.jsonl").write_text('3\n{\n4\n')
    result = run(af.JsonLinesSource, tmp_path / "*.jsonl", on_error=af.DeadLetter())
    assert result["got"] == [1, 2, 3, 4]
    assert [(d["seq"], d["error"].split(": not")[0]) for d in result.dead_letters] == [
        (1, "MalformedLineError: a.jsonl, line 2"), (4, "MalformedLineError: b.jsonl, line 2"),
    ]

    class Lenient(af.LinesSource):  # the policy as a subclass attribute; bad UTF-8 is a failed item too
        on_error = af.DeadLetter()

    (tmp_path / "c.txt").write_bytes(b"ok\n\xff\xfe\nfine\n")
    result = run(Lenient, tmp_path / "c.txt")
    assert result["got"] == ["ok", "fine"]
    assert "c.txt, line 2: not UTF-8" in result.dead_letters[0]["error"]


def test_a_source_without_a_cursor_still_cannot_dead_letter() -> None:
    flow = af.Flow("x")
    with pytest.raises(af.DefinitionError, match=r"cannot dead-letter unless it takes an af\.Cursor"):
        @flow.source(on_error=af.DeadLetter())
        def numbers() -> af.Stream[int]:
            yield 1


CSV_TEXT = 'id,name,price\n1,"multi\nline",2.5\n2,plain,3\n\n3,short\n4,extra,1,more\n'


def test_csv_rows_are_dicts_as_csv_dictreader_gives_them(tmp_path: Path) -> None:
    (tmp_path / "o.csv").write_text(CSV_TEXT)
    with open(tmp_path / "o.csv", newline="") as f:
        expected = list(csv.DictReader(f))
    got = run(af.CsvSource, tmp_path / "o.csv")["got"]
    assert got == expected and got[0]["name"] == "multi\nline" and got[2]["price"] is None
    assert got[3][None] == ["more"]


@attrs.frozen
class Order:
    id: int
    name: str
    price: float
    paid: bool = False
    note: str | None = None


@dataclasses.dataclass
class Plain:
    id: int
    name: str


class Orders(af.CsvSource):
    record = Order


class Plains(af.CsvSource):
    record = Plain


def test_csv_rows_become_the_record_class_of_a_subclass(tmp_path: Path) -> None:
    (tmp_path / "o.csv").write_text('id,name,price,paid,note\n1,"a,b",2.5,yes,\n2,c,3,false,hi\n')
    assert run(Orders, tmp_path / "o.csv")["got"] == [Order(1, "a,b", 2.5, True, None), Order(2, "c", 3.0, False, "hi")]
    assert run(Plains, tmp_path / "o.csv")["got"] == [Plain(1, "a,b"), Plain(2, "c")]
    (tmp_path / "bad.csv").write_text("id,name,price\n1,a,2\nx,b,3\n")
    with pytest.raises(af.TaskFailed, match=r"bad.csv, line 3: not a Order"):
        run(Orders, tmp_path / "bad.csv")
    with pytest.raises(af.DefinitionError, match="record must be an attrs class or a dataclass"):
        class Wrong(af.CsvSource):
            record = dict


def test_gzip_files_are_read(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as f:
        f.write("".join(f"{i}\n" for i in range(100)))
    assert run(af.JsonLinesSource, tmp_path / "a.jsonl.gz")["got"] == list(range(100))


# -- resume at the cursor -----------------------------------------------------------------------------


async def checkpoint_at(source: type[af.Task], path: Path, store: Path, at: int) -> None:
    """Run until item *at* reaches the task, which raises KeyboardInterrupt: a checkpoint is written, the run stops."""
    CTL["interrupt_at"] = at
    with pytest.raises(KeyboardInterrupt):
        await af.run_async(collect(source), {"src": {"path": str(path)}}, store=store)
    CTL.clear()


def saved_position(store: Path) -> dict[str, Any]:
    """The source's position in the store's latest checkpoint."""
    with open_store(store, create=False) as st:
        blob = st.read_checkpoint()
    assert blob is not None
    doc = unpack(blob)
    found = [v["position"] for v in _walk(doc) if isinstance(v, dict) and "position" in v and "cursor" in v]
    assert len(found) == 1, doc
    return found[0]  # type: ignore[no-any-return]


def _walk(value: Any) -> Any:
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


class SeekSpy(io.BufferedReader):
    seeks: ClassVar[list[int]] = []

    def seek(self, pos: int, whence: int = 0) -> int:
        SeekSpy.seeks.append(pos)
        return super().seek(pos, whence)


def lines(n: int, start: int = 0) -> str:
    return "".join(json.dumps({"i": i, "pad": "x" * (i % 7)}) + "\n" for i in range(start, start + n))


async def test_a_resumed_run_seeks_to_the_saved_offset_and_reads_on(tmp_path: Path, monkeypatch: Any) -> None:
    path, store = tmp_path / "in.jsonl", tmp_path / "store"
    path.write_text(lines(20000))
    await checkpoint_at(af.JsonLinesSource, path, store, 150)
    pos = saved_position(store)
    count = pos["count"]
    assert 150 <= count < 20000 and pos["file"] == str(path) and pos["line"] == count
    assert pos["offset"] == len(lines(count).encode())  # the byte offset of the first item not read
    SeekSpy.seeks = []
    monkeypatch.setattr(_connect_files, "open_binary", lambda p: SeekSpy(io.FileIO(p)))
    result = await af.run_async(collect(af.JsonLinesSource), {"src": {"path": str(path)}}, store=store, resume=True)
    assert SeekSpy.seeks[0] == pos["offset"]  # no re-reading: straight to the cursor
    assert [x["i"] for x in result["got"]] == list(range(20000))


@pytest.mark.parametrize("change", ["edit", "truncate", "replace"])
async def test_a_file_changed_under_its_cursor_is_refused_naming_it(tmp_path: Path, change: str) -> None:
    path, store = tmp_path / "in.jsonl", tmp_path / "store"
    path.write_text(lines(20000))
    await checkpoint_at(af.JsonLinesSource, path, store, 150)
    text = path.read_text()
    if change == "edit":  # the same size, one value changed before the cursor
        path.write_text(text.replace('"i": 7,', '"i": 8,', 1))
    elif change == "truncate":
        path.write_text(text[:100])
    else:
        path.write_text(lines(500, start=1000))
    with pytest.raises(af.TaskFailed) as info:
        await af.run_async(collect(af.JsonLinesSource), {"src": {"path": str(path)}}, store=store, resume=True)
    cause = info.value.__cause__
    assert isinstance(cause, af.InputChangedError) and cause.path == str(path)
    assert str(path) in str(info.value) and "changed under the source's cursor" in str(info.value)


async def test_a_file_that_only_grew_is_read_on_from_the_cursor(tmp_path: Path) -> None:
    path, store = tmp_path / "in.jsonl", tmp_path / "store"
    path.write_text(lines(20000))
    await checkpoint_at(af.JsonLinesSource, path, store, 150)
    with open(path, "a") as f:
        f.write(lines(50, start=20000))
    result = await af.run_async(collect(af.JsonLinesSource), {"src": {"path": str(path)}}, store=store, resume=True)
    assert [x["i"] for x in result["got"]] == list(range(20050))


async def test_a_file_added_before_the_cursor_of_a_glob_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (tmp_path / "b.jsonl").write_text(lines(100))
    (tmp_path / "c.jsonl").write_text(lines(20000, start=100))
    await checkpoint_at(af.JsonLinesSource, tmp_path / "*.jsonl", store, 200)
    assert saved_position(store)["file"] == str(tmp_path / "c.jsonl")
    (tmp_path / "a.jsonl").write_text(lines(5, start=900))
    with pytest.raises(af.TaskFailed, match="before or at the cursor are not the ones the checkpoint saw"):
        await af.run_async(collect(af.JsonLinesSource), {"src": {"path": str(tmp_path / "*.jsonl")}}, store=store,
                           resume=True)
    (tmp_path / "a.jsonl").unlink()
    (tmp_path / "d.jsonl").write_text(lines(5, start=20100))  # after the cursor: read
    result = await af.run_async(collect(af.JsonLinesSource), {"src": {"path": str(tmp_path / "*.jsonl")}},
                                store=store, resume=True)
    assert [x["i"] for x in result["got"]] == list(range(20105))


async def test_csv_and_gzip_resume_at_their_cursor(tmp_path: Path) -> None:
    path, store = tmp_path / "o.csv", tmp_path / "store"
    path.write_text("id,name\n" + "".join(f'{i},"n\n{i}"\n' for i in range(5000)))
    await checkpoint_at(Plains, path, store, 100)
    pos = saved_position(store)
    assert pos["header"] == ["id", "name"] and pos["line"] == 1 + 2 * pos["count"]
    result = await af.run_async(collect(Plains), {"src": {"path": str(path)}}, store=store, resume=True)
    plain = [x if isinstance(x, dict) else dataclasses.asdict(x) for x in result["got"]]  # restored: as dicts
    assert plain == [{"id": i, "name": f"n\n{i}"} for i in range(5000)]

    gz, store2 = tmp_path / "a.jsonl.gz", tmp_path / "store2"
    with gzip.open(gz, "wt") as f:
        f.write(lines(20000))
    await checkpoint_at(af.JsonLinesSource, gz, store2, 150)
    assert saved_position(store2)["line"] == saved_position(store2)["count"]  # a .gz cursor: the line count
    result = await af.run_async(collect(af.JsonLinesSource), {"src": {"path": str(gz)}}, store=store2, resume=True)
    assert [x["i"] for x in result["got"]] == list(range(20000))
