"""Compound flows: a flow used as a task inside another flow."""

from __future__ import annotations

import pytest

import actorflow as af


def cleaner() -> af.Flow:
    inner = af.Flow("clean")
    inner.input("raw", str)

    @inner.task
    def stripped(raw: str, chars: str = " ") -> str:
        return raw.strip(chars) or af.SKIP

    @inner.task
    def words(stripped: str) -> af.Stream[str]:
        yield from stripped.split()

    @inner.collector(init=0)
    def count(acc: int, words: str) -> int:
        return acc + 1

    @inner.task
    def upper(words: str) -> str:
        return words.upper()

    return inner


def outer_flow() -> af.Flow:
    outer = af.Flow("outer")

    @outer.source
    def lines() -> af.Stream[str]:
        yield from ["  hello world ", "   ", "*nested flows*"]

    outer.add(cleaner(), name="clean", inputs={"raw": "lines"})

    @outer.collector(init=[])
    def shouted(acc: list[str], clean: str) -> list[str]:
        acc.append(clean)
        return acc

    return outer


def test_nested_flow_behaves_like_a_task() -> None:
    outer = outer_flow()
    assert list(outer.tasks) == ["lines", "clean/stripped", "clean/words", "clean/count", "clean/upper", "shouted"]
    result = af.run(outer, {"clean/stripped": {"chars": " *"}})
    assert result["shouted"] == ["HELLO", "WORLD", "NESTED", "FLOWS"]
    assert result["clean/count"] == 4
    assert outer.upstream("shouted") == ["clean/upper"]
    assert ("lines", "clean/stripped") in outer.edges


async def test_inner_events_carry_the_inner_path() -> None:
    async with af.open_run(outer_flow()) as run:
        names = {e.task async for e in run.events() if isinstance(e, af.events.TaskFinished)}
    assert {"clean/stripped", "clean/words", "clean/upper", "shouted"} <= names


def test_nested_options_are_validated_by_path() -> None:
    with pytest.raises(af.InvocationError, match="task 'clean/stripped', option 'chars': expected str"):
        outer_flow().bind({"clean/stripped": {"chars": 3}})


def test_a_flow_with_inputs_does_not_run_alone() -> None:
    with pytest.raises(af.InvocationError, match=r"takes inputs \['raw'\]; it runs only inside another flow"):
        af.run(cleaner())


def test_wiring_errors_are_clear() -> None:
    outer = af.Flow("o")

    @outer.source
    def numbers() -> af.Stream[int]:
        yield 1

    with pytest.raises(af.DefinitionError, match="input 'raw' takes str, but 'numbers' produces int"):
        outer.add(cleaner(), name="clean", inputs={"raw": "numbers"})
    with pytest.raises(af.DefinitionError, match=r"missing \['raw'\]"):
        outer.add(cleaner(), name="clean", inputs={})
    with pytest.raises(af.DefinitionError, match="needs name="):
        outer.add(cleaner())
    with pytest.raises(af.DefinitionError, match="output 'nope' is not a task"):

        @outer.source
        def texts() -> af.Stream[str]:
            yield "a"

        outer.add(cleaner(), name="c2", inputs={"raw": texts}, output="nope")


def test_exports_show_nested_paths() -> None:
    outer = outer_flow()
    assert "clean__stripped" in outer.to_mermaid()
    assert '"clean/upper" -> "shouted";' in outer.to_dot()


def test_a_nested_flow_is_addressable_by_its_name() -> None:
    outer = outer_flow()
    assert outer.upstream("clean") == ["lines"]
    assert outer.downstream("clean") == ["shouted"]
    assert outer.nested_tasks("clean") == ["clean/stripped", "clean/words", "clean/count", "clean/upper"]
    with pytest.raises(af.DefinitionError, match=r"cannot remove nested flow, \['shouted'\] depend on it"):
        outer.remove("clean")
    with pytest.raises(af.InvocationError, match=r"'clean' is a nested flow: give options to its tasks by path"):
        outer.bind({"clean": {"chars": "*"}})
    outer.remove("shouted")
    result = af.run(outer, {"clean/stripped": {"chars": " *"}})
    assert result["clean"] == ["HELLO", "WORLD", "NESTED", "FLOWS"] == result["clean/upper"]
    outer.remove("clean")
    assert list(outer.tasks) == ["lines"]


def test_replacing_a_task_inside_a_nested_flow() -> None:
    outer = outer_flow()

    def upper(words: str) -> str:  # reads its sibling by its short name, as in the inner flow
        return words.lower() + "!"

    outer.replace("clean/upper", upper)
    assert af.run(outer)["shouted"] == ["hello!", "world!", "*nested!", "flows*!"]

    def wrong(words: int) -> str:
        return str(words)

    with pytest.raises(af.DefinitionError, match=r"upstream 'words' yields items of type str"):
        outer.replace("clean/upper", wrong)
    before = outer.bind({}).fingerprint

    def stripped(raw: str) -> str:  # reads the nested flow's input
        return raw.strip() or af.SKIP

    outer.replace("clean/stripped", stripped)
    assert af.run(outer)["shouted"] == ["hello!", "world!", "*nested!", "flows*!"]
    assert outer.bind({}).fingerprint != before  # another implementation: another run graph
