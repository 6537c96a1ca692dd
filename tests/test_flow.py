"""Definition-time rules: wiring by name, readiness by annotation, refusals with clear messages."""

from __future__ import annotations

from typing import Any

import pytest

import actorflow as af


def make_numbers(flow: af.Flow) -> None:
    @flow.source
    def numbers(n: int = 10) -> af.Stream[int]:
        yield from range(n)


def test_parameters_named_after_tasks_are_inputs_the_rest_options() -> None:
    flow = af.Flow("f")
    make_numbers(flow)

    @flow.task
    def scale(numbers: int, factor: int = 2, label: str = "x") -> int:
        return numbers * factor

    spec = flow.tasks["scale"]
    assert [i.name for i in spec.inputs] == ["numbers"]
    assert spec.inputs[0].streaming
    assert [(o.name, o.annotation, o.default) for o in spec.options] == [("factor", int, 2), ("label", str, "x")]
    assert flow.edges == [("numbers", "scale")]
    assert flow.upstream("scale") == ["numbers"]
    assert flow.downstream("numbers") == ["scale"]
    assert flow.topological_order() == ["numbers", "scale"]


def test_option_without_default_is_required() -> None:
    flow = af.Flow("f")

    @flow.source
    def numbers(n: int) -> af.Stream[int]:
        yield from range(n)

    assert flow.tasks["numbers"].options[0].required


def test_list_annotation_makes_a_final_input() -> None:
    flow = af.Flow("f")
    make_numbers(flow)

    @flow.task
    def everything(numbers: list[int]) -> int:
        return len(numbers)

    spec = flow.tasks["everything"]
    assert not spec.inputs[0].streaming and spec.inputs[0].gather
    assert not spec.streaming


def test_decorators_return_the_plain_function() -> None:
    flow = af.Flow("f")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield 1

    @flow.task
    def double(numbers: int) -> int:
        return numbers * 2

    assert double(4) == 8
    assert list(numbers()) == [1]


def test_duplicate_name_is_refused() -> None:
    flow = af.Flow("f")
    make_numbers(flow)
    with pytest.raises(af.DefinitionError, match=r"task 'numbers'.*already defined"):
        make_numbers(flow)


def test_input_type_that_does_not_fit_is_refused_naming_task_and_parameter() -> None:
    flow = af.Flow("f")
    make_numbers(flow)
    with pytest.raises(af.DefinitionError) as info:

        @flow.task
        def shout(numbers: str) -> str:
            return numbers.upper()

    msg = str(info.value)
    assert "task 'shout'" in msg and "parameter 'numbers'" in msg and "int" in msg and "str" in msg


def test_list_input_with_wrong_item_type_is_refused() -> None:
    flow = af.Flow("f")
    make_numbers(flow)
    with pytest.raises(af.DefinitionError, match=r"parameter 'numbers'.*list\[str\]"):

        @flow.task
        def joined(numbers: list[str]) -> str:
            return "".join(numbers)


def test_int_items_fit_a_float_parameter_and_unions() -> None:
    flow = af.Flow("f")
    make_numbers(flow)

    @flow.task
    def half(numbers: float) -> float:
        return numbers / 2

    @flow.task
    def maybe(numbers: int | None) -> Any:
        return numbers

    assert flow.tasks["half"].inputs[0].streaming and flow.tasks["maybe"].inputs[0].streaming


def test_source_must_be_a_generator() -> None:
    flow = af.Flow("f")
    with pytest.raises(af.DefinitionError, match="source must be a generator"):

        @flow.source
        def numbers() -> list[int]:
            return [1]


def test_source_cannot_stream_from_a_task() -> None:
    flow = af.Flow("f")
    make_numbers(flow)
    with pytest.raises(af.DefinitionError, match="cannot stream from another task"):

        @flow.source
        def again(numbers: int) -> af.Stream[int]:
            yield numbers


def test_collector_needs_a_streaming_input() -> None:
    flow = af.Flow("f")
    with pytest.raises(af.DefinitionError, match="collector needs a streaming input"):

        @flow.collector(init=0)
        def total(acc: int, x: int) -> int:
            return acc + x


def test_per_must_be_an_ancestor_stream() -> None:
    flow = af.Flow("f")
    make_numbers(flow)

    @flow.source
    def other() -> af.Stream[int]:
        yield 1

    with pytest.raises(af.DefinitionError, match="per='other'"):

        @flow.collector(init=0, per=other)
        def total(acc: int, numbers: int) -> int:
            return acc + numbers


def test_per_names_an_unknown_task() -> None:
    flow = af.Flow("f")
    make_numbers(flow)
    with pytest.raises(KeyError, match="no task 'nope'"):
        flow.collector(init=0, per="nope")


def test_a_stream_joined_with_its_own_product_runs() -> None:
    """Once refused as a deadlock: the stream now waits, spilled, for its own total."""
    flow = af.Flow("f")
    make_numbers(flow)

    @flow.collector(init=0)
    def total(acc: int, numbers: int) -> int:
        return acc + numbers

    @flow.task
    def share(numbers: int, total: int) -> float:
        return numbers / total

    result = af.run(flow, {"numbers": {"n": 10_000}})
    assert result["share"] == [i / sum(range(10_000)) for i in range(10_000)]


def test_zipping_streams_of_different_generator_levels_is_refused() -> None:
    flow = af.Flow("f")

    @flow.source
    def lines() -> af.Stream[str]:
        yield "a b"

    @flow.task
    def words(lines: str) -> af.Stream[str]:
        yield from lines.split()

    with pytest.raises(af.DefinitionError, match="different generator levels"):

        @flow.task
        def pair(lines: str, words: str) -> str:
            return lines + words


def test_bad_settings_are_refused() -> None:
    flow = af.Flow("f")
    make_numbers(flow)
    with pytest.raises(af.DefinitionError, match="concurrency must be a positive int"):

        @flow.task(concurrency=0)
        def a(numbers: int) -> int:
            return numbers

    with pytest.raises(af.DefinitionError, match="capacity must be a positive int"):

        @flow.task(capacity=-1)
        def b(numbers: int) -> int:
            return numbers


def test_varargs_are_refused() -> None:
    flow = af.Flow("f")
    with pytest.raises(af.DefinitionError, match=r"\*args and \*\*kwargs"):

        @flow.source
        def numbers(*args: int) -> af.Stream[int]:
            yield 1


def test_sink_has_no_product_to_read() -> None:
    flow = af.Flow("f")
    make_numbers(flow)

    @flow.sink
    def show(numbers: int) -> None:
        pass

    with pytest.raises(af.DefinitionError, match="'show' is a sink"):

        @flow.task
        def after(show: int) -> int:
            return show


def test_non_generator_declared_as_stream_is_refused() -> None:
    flow = af.Flow("f")
    make_numbers(flow)
    with pytest.raises(af.DefinitionError, match="not a generator function"):

        @flow.task
        def fake(numbers: int) -> af.Stream[int]:
            return [numbers]  # type: ignore[return-value]


def test_flow_needs_a_name() -> None:
    with pytest.raises(af.DefinitionError, match="non-empty string name"):
        af.Flow("")


def graph_flow() -> af.Flow:
    flow = af.Flow("g")
    make_numbers(flow)

    @flow.task
    def fetch(numbers: int) -> str:
        raise ConnectionError("no network in tests")

    @flow.collector(init=0)
    def total(acc: int, fetch: str) -> int:
        return acc + len(fetch)

    return flow


def test_replace_swaps_in_a_test_double() -> None:
    flow = graph_flow()

    def fake_fetch(numbers: int) -> str:
        return "x" * numbers

    flow.replace("fetch", fake_fetch)
    assert af.run(flow, {"numbers": {"n": 4}})["total"] == 6
    assert list(flow.tasks) == ["numbers", "fetch", "total"]
    assert flow.task_name(fake_fetch) == "fetch"


def test_replace_checks_ports_and_types() -> None:
    flow = graph_flow()

    def wrong_type(numbers: int) -> float:
        return 1.0

    with pytest.raises(af.DefinitionError, match=r"task 'total', parameter 'fetch'.*produces float"):
        flow.replace("fetch", wrong_type)

    def wrong_input(total: int) -> str:
        return ""

    with pytest.raises(af.DefinitionError, match=r"needs a|collector|stream"):
        flow.replace("fetch", wrong_input)

    def a_generator(numbers: int) -> af.Stream[str]:
        yield "a"

    with pytest.raises(af.DefinitionError, match="same generator level"):
        flow.replace("fetch", a_generator)
    with pytest.raises(KeyError, match="no task 'nope'"):
        flow.replace("nope", wrong_type)


def test_copy_is_independent() -> None:
    flow = graph_flow()
    double = flow.copy()
    double.replace("fetch", lambda numbers: "ab")
    with pytest.raises(af.TaskFailed):
        af.run(flow)
    assert af.run(double, {"numbers": {"n": 3}})["total"] == 6


def test_remove_refuses_tasks_others_depend_on() -> None:
    flow = graph_flow()
    with pytest.raises(af.DefinitionError, match=r"cannot remove it, \['fetch'\] depend on it"):
        flow.remove("numbers")
    flow.remove("total")
    flow.remove("fetch")
    assert list(flow.tasks) == ["numbers"]


def test_exports_name_tasks_and_edges() -> None:
    import json

    flow = graph_flow()
    doc = json.loads(flow.to_json())
    assert doc["flow"] == "g" and [t["kind"] for t in doc["tasks"]] == ["source", "task", "collector"]
    assert "numbers --> fetch" in flow.to_mermaid()
    assert '"fetch" -> "total";' in flow.to_dot()
