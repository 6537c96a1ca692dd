"""Named types: declared once, checked on options, ports and products, parent check first."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import actorflow as af

PositiveInt = af.types.define("PositiveInt", int, lambda v: v > 0, doc="must be more than zero")
Even = af.types.define("EvenPositive", PositiveInt, lambda v: v % 2 == 0)
Word = af.types.define("Word", str, str.isalpha)


def test_registry_lists_declared_types() -> None:
    reg = af.types.registry()
    assert reg["PositiveInt"] is PositiveInt and reg["EvenPositive"] is Even
    assert af.types.get("Word") is Word
    assert Even.root is int and Even.lineage() == [Even, PositiveInt]
    with pytest.raises(KeyError, match="no named type 'Nope'"):
        af.types.get("Nope")


def test_parent_check_runs_first_then_own_check() -> None:
    assert Even(4) == 4
    with pytest.raises(ValueError, match=r"expected EvenPositive .a int., got str"):
        Even("4")
    with pytest.raises(ValueError, match=r"-2 is not a valid PositiveInt \(must be more than zero\)"):
        Even(-2)  # the parent's check fails before the type's own
    with pytest.raises(ValueError, match="3 is not a valid EvenPositive"):
        Even(3)
    with pytest.raises(ValueError, match="expected PositiveInt"):
        PositiveInt(True)


def test_duplicate_or_bad_definitions_are_refused() -> None:
    with pytest.raises(af.DefinitionError, match="already defined"):
        af.types.define("PositiveInt", int, lambda v: v > 0)
    with pytest.raises(af.DefinitionError, match="identifier"):
        af.types.define("not a name", int)
    with pytest.raises(af.DefinitionError, match="check must be callable"):
        af.types.define("Odd", int, 3)  # type: ignore[arg-type]
    assert "Odd" not in af.types.registry()


def build() -> af.Flow:
    flow = af.Flow("named")

    @flow.source
    def sizes(n: PositiveInt = 3, step: Even = 2) -> Iterator[PositiveInt]:  # type: ignore[valid-type]
        for i in range(n):
            yield 1 + i * step

    @flow.collector(init=0)
    def total(acc: int, sizes: PositiveInt) -> PositiveInt:  # type: ignore[valid-type]
        return acc + sizes

    return flow


def test_named_options_are_checked_at_bind_time() -> None:
    flow = build()
    assert af.run(flow, {"sizes": {"n": "4", "step": 2}})["total"] == 1 + 3 + 5 + 7
    with pytest.raises(af.InvocationError) as info:
        flow.bind({"sizes": {"n": 0, "step": 3}})
    msg = str(info.value)
    assert "option 'n': 0 is not a valid PositiveInt (must be more than zero)" in msg
    assert "option 'step': 3 is not a valid EvenPositive" in msg


def test_named_ports_are_checked_when_items_are_sent() -> None:
    flow = af.Flow("ports")

    @flow.source
    def sizes() -> Iterator[PositiveInt]:  # type: ignore[valid-type]
        yield from [3, 2, 0, 5]

    with pytest.raises(af.MailboxTypeError) as info:
        af.run(flow)
    err = info.value
    assert (err.task, err.expected, err.seq) == ("sizes", "PositiveInt", 2)
    assert "0 is not a valid PositiveInt" in str(err)


def test_named_products_are_checked_when_produced() -> None:
    flow = af.Flow("product")

    @flow.source
    def numbers() -> Iterator[int]:
        yield from [-5, 1]

    @flow.collector(init=0)
    def total(acc: int, numbers: int) -> PositiveInt:  # type: ignore[valid-type]
        return acc + numbers

    with pytest.raises(af.MailboxTypeError, match=r"task 'total'.*-4 is not a valid PositiveInt"):
        af.run(flow)


def test_a_plain_int_stream_does_not_fit_a_named_input() -> None:
    flow = af.Flow("fit")

    @flow.source
    def numbers() -> Iterator[int]:
        yield 1

    with pytest.raises(af.DefinitionError, match=r"parameter 'numbers'.*PositiveInt"):

        @flow.task
        def use(numbers: PositiveInt) -> int:  # type: ignore[valid-type]
            return numbers

    @flow.source
    def evens() -> Iterator[Even]:  # type: ignore[valid-type]
        yield 2

    @flow.task
    def use_evens(evens: PositiveInt) -> int:  # type: ignore[valid-type]
        return evens  # a subtype fits its parent

    assert af.run(flow)["use_evens"] == [2]
