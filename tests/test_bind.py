"""The invocation phase: option values from dicts, text and TOML, structured with cattrs."""

from __future__ import annotations

import enum
from pathlib import Path

import attrs
import pytest

import actorflow as af


class Mode(enum.Enum):
    FAST = "fast"
    SAFE = "safe"


@attrs.frozen
class Retry:
    attempts: int
    wait: float = 0.5


def build() -> af.Flow:
    flow = af.Flow("opts")

    @flow.source
    def numbers(
        n: int,
        ratio: float = 1.0,
        verbose: bool = False,
        label: str = "x",
        where: Path = Path("."),
        mode: Mode = Mode.FAST,
        sizes: list[int] = [1, 2],  # noqa: B006
        retry: Retry = Retry(1),
    ) -> af.Stream[int]:
        yield from range(n)

    return flow


def test_defaults_fill_in_and_values_keep_their_type() -> None:
    graph = build().bind({"numbers": {"n": 3}})
    opts = graph.options["numbers"]
    assert opts["n"] == 3 and opts["ratio"] == 1.0 and opts["mode"] is Mode.FAST
    assert opts["retry"] == Retry(1)
    with pytest.raises(TypeError):
        graph.options["numbers"]["n"] = 4  # type: ignore[index]


def test_text_values_are_structured() -> None:
    graph = build().bind({"numbers": {
        "n": "7", "ratio": "0.25", "verbose": "yes", "where": "/tmp/data", "mode": "safe",
        "sizes": [3, 4], "retry": {"attempts": 3},
    }})
    opts = graph.options["numbers"]
    assert opts["n"] == 7 and opts["ratio"] == 0.25 and opts["verbose"] is True
    assert opts["where"] == Path("/tmp/data") and opts["mode"] is Mode.SAFE
    assert opts["sizes"] == [3, 4] and opts["retry"] == Retry(3, 0.5)
    assert build().bind({"numbers": {"n": 1, "ratio": 2}}).options["numbers"]["ratio"] == 2


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(af.InvocationError) as info:
        build().bind({"numbers": {
            "ratio": "fast", "verbose": "perhaps", "mode": "slow", "n_items": 3, "retry": {"wait": 1},
        }, "numbrs": {}})
    problems = info.value.problems
    text = "\n".join(problems)
    assert "option 'n': required (int) but not given" in text
    assert "option 'ratio': expected float, got str 'fast'" in text
    assert "option 'verbose': expected bool, got str 'perhaps'" in text
    assert "option 'mode': expected Mode, got str 'slow'" in text
    assert "option 'retry': expected Retry" in text
    assert "unknown option 'n_items'" in text
    assert "unknown task 'numbrs'; did you mean 'numbers'?" in text
    assert len(problems) == 7


def test_wrong_python_types_are_not_coerced_silently() -> None:
    with pytest.raises(af.InvocationError, match=r"option 'n': expected int, got float 2.5"):
        build().bind({"numbers": {"n": 2.5}})
    with pytest.raises(af.InvocationError, match="option 'n': expected int, got bool True"):
        build().bind({"numbers": {"n": True}})
    with pytest.raises(af.InvocationError, match="options must be a dict"):
        build().bind({"numbers": 3})  # type: ignore[dict-item]
    with pytest.raises(af.InvocationError, match="options must map task name"):
        build().bind([1])  # type: ignore[arg-type]


def test_an_input_is_not_an_option() -> None:
    flow = build()

    @flow.task
    def double(numbers: int) -> int:
        return numbers * 2

    with pytest.raises(af.InvocationError, match="'numbers' is an input from task 'numbers', not an option"):
        flow.bind({"numbers": {"n": 1}, "double": {"numbers": 3}})


def test_fingerprint_follows_options_and_wiring() -> None:
    a = build().bind({"numbers": {"n": 3}})
    assert a.fingerprint == build().bind({"numbers": {"n": "3"}}).fingerprint
    assert a.fingerprint != build().bind({"numbers": {"n": 4}}).fingerprint


def test_toml_config_values_structure_too(tmp_path: Path) -> None:
    import tomllib

    (tmp_path / "c.toml").write_text('[numbers]\nn = 2\nmode = "safe"\n[numbers.retry]\nattempts = 4\n')
    with open(tmp_path / "c.toml", "rb") as fh:
        graph = build().bind(tomllib.load(fh))
    assert graph.options["numbers"]["retry"] == Retry(4) and graph.options["numbers"]["mode"] is Mode.SAFE


def test_text_for_a_list_option_is_refused_not_split_into_characters() -> None:
    with pytest.raises(af.InvocationError, match=r"option 'sizes': expected list\[int\], got str '12' \(give a list"):
        build().bind({"numbers": {"n": 1, "sizes": "12"}})
    # text is structured only as a whole option's value: inside a container, elements keep their types
    with pytest.raises(af.InvocationError, match=r"option 'sizes': expected list\[int\], got list \['1', 2\] "
                                                 r"\(\[0\]: expected int, got str '1'\)"):
        build().bind({"numbers": {"n": 1, "sizes": ["1", 2]}})
    with pytest.raises(af.InvocationError, match=r"option 'retry': .*\(\.attempts: expected int, got str '3'\)"):
        build().bind({"numbers": {"n": 1, "retry": {"attempts": "3"}}})


def test_unknown_option_gets_a_close_match() -> None:
    with pytest.raises(af.InvocationError, match=r"unknown option 'rato'; did you mean 'ratio'\?"):
        build().bind({"numbers": {"n": 1, "rato": 2.0}})


def test_option_defaults_must_be_values_of_their_type() -> None:
    flow = af.Flow("defaults")
    with pytest.raises(af.DefinitionError, match=r"task 'a', parameter 'n': an option's default must be a value"):

        @flow.source
        def a(n: int = lambda: 3) -> af.Stream[int]:  # type: ignore[assignment]
            yield 1

    with pytest.raises(af.DefinitionError, match=r"task 'b', parameter 'n': the default 'abc' does not fit"):

        @flow.source
        def b(n: int = "abc") -> af.Stream[int]:  # type: ignore[assignment]
            yield 1

    @flow.source
    def c(n: int | None = None, src: af.File = "not-yet.txt", ratio: float = 1) -> af.Stream[int]:  # type: ignore[assignment]
        yield 1  # None, a file that need not exist yet and an int for a float are fine


def test_a_bad_enum_value_lists_the_valid_ones() -> None:
    message = r"option 'mode': expected Mode, got str 'FAST'.*one of 'fast', 'safe'"
    with pytest.raises(af.InvocationError, match=message):
        build().bind({"numbers": {"n": 1, "mode": "FAST"}})
