"""``af.JsonLinesSink`` at its edges (issue 22, point 8): what a new run does to an existing file
(``mode``), two sinks on one path, non-finite floats, and paths recorded absolute."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import actorflow as af


def build(values: list[Any] | None = None, two: bool = False) -> af.Flow:
    flow = af.Flow("lines")
    items = values if values is not None else [1, 2, 3]

    @flow.source
    def numbers() -> af.Stream[Any]:
        yield from items

    flow.add(af.JsonLinesSink, name="out", inputs={"item": "numbers"})
    if two:
        flow.add(af.JsonLinesSink, name="copy", inputs={"item": "numbers"})
    return flow


def read(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_append_keeps_what_others_wrote_between_runs(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    af.run(build(), {"out": {"path": str(out)}}, store=tmp_path / "s")
    with out.open("a") as f:
        f.write('"by hand"\n')
    af.run(build([4]), {"out": {"path": str(out)}}, store=tmp_path / "s")
    assert read(out) == [1, 2, 3, "by hand", 4]


def test_overwrite_starts_afresh_a_file_it_wrote_and_refuses_any_other(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    options = {"out": {"path": str(out), "mode": "overwrite"}}
    af.run(build(), options)
    af.run(build([7, 8]), options)
    assert read(out) == [7, 8]
    with out.open("a") as f:
        f.write('"by hand"\n')
    with pytest.raises(af.TaskFailed, match=r"will not overwrite .*o\.jsonl.*changed since this sink wrote it"):
        af.run(build([9]), options)
    assert read(out) == [7, 8, "by hand"]  # refused before an item was written
    other = tmp_path / "theirs.jsonl"
    other.write_text('"theirs"\n')
    with pytest.raises(af.TaskFailed, match="this sink did not write it"):
        af.run(build([9]), {"out": {"path": str(other), "mode": "overwrite"}})
    assert read(other) == ["theirs"]
    with pytest.raises(af.InvocationError, match="mode"):
        build().bind({"out": {"path": str(out), "mode": "truncate"}})


def test_two_sinks_on_one_path_are_refused_at_bind(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    with pytest.raises(af.InvocationError, match=r"tasks 'out' and 'copy' would both write .*o\.jsonl"):
        build(two=True).bind({"out": {"path": str(out)}, "copy": {"path": str(tmp_path / "." / "o.jsonl")}})
    assert not out.exists()
    graph = build(two=True).bind({"out": {"path": str(out)}, "copy": {"path": str(tmp_path / "p.jsonl")}})
    assert graph.options["copy"]["path"] == str(tmp_path / "p.jsonl")


def test_non_finite_floats_are_written_as_strings(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    af.run(build([1.5, float("nan"), float("inf"), {"x": float("-inf")}]), {"out": {"path": str(out)}})
    text = out.read_text()
    assert "NaN\n" not in text and "Infinity\n" not in text
    assert [json.loads(line, parse_constant=_refuse) for line in text.splitlines()] == [
        1.5, "NaN", "Infinity", {"x": "-Infinity"},
    ]


def test_a_relative_path_is_recorded_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    graph = build().bind({"out": {"path": "rel.jsonl"}})
    assert graph.options["out"]["path"] == os.path.join(str(tmp_path), "rel.jsonl")


def _refuse(constant: str) -> None:
    raise AssertionError(f"not JSON: {constant}")


def test_a_relative_path_option_is_bound_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("1 2")
    flow = af.Flow("paths")

    @flow.source
    def numbers(src: af.File, out: Path = Path("x"), label: str = "rel") -> af.Stream[int]:
        yield from map(int, src.read_text().split())

    graph = flow.bind({"numbers": {"src": "in.txt", "out": "sub/out.txt", "label": "rel"}})
    values = graph.options["numbers"]
    assert values["src"].path == tmp_path / "in.txt" and values["out"] == tmp_path / "sub" / "out.txt"
    assert values["label"] == "rel"  # text is kept as given
    assert flow.bind({"numbers": {"src": "in.txt"}}).options["numbers"]["out"] == tmp_path / "x"  # a default too
