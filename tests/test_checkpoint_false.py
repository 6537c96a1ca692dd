"""``checkpoint=False`` (issue 22, point 6): a product that cannot (or need not) be stored is kept
out of checkpoints and the cache, and a resumed run computes it again from its inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import actorflow as af

CALLS: dict[str, int] = {"model": 0}
ARMED: dict[str, Any] = {"at": -1}


class Model:
    """Not plain data, not attrs, no codec: it cannot be stored."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def apply(self, x: int) -> int:
        return x * self.factor


def make_flow(checkpoint: bool = False) -> af.Flow:
    flow = af.Flow("modelled")

    @flow.source
    def numbers(n: int = 50) -> af.Stream[int]:
        yield from range(n)

    @flow.collector(init=0)
    def total(acc: int, numbers: int) -> int:
        return acc + numbers

    @flow.task(checkpoint=checkpoint)
    def model(total: int) -> Model:
        CALLS["model"] += 1
        return Model(total % 7 + 2)

    @flow.task
    def scored(numbers: int, model: Model) -> int:
        if numbers == ARMED["at"]:
            ARMED["at"] = -1  # once: the resumed run goes on
            raise KeyboardInterrupt
        return model.apply(numbers)

    @flow.collector(init=0)
    def out(acc: int, scored: int) -> int:
        return acc + scored

    return flow


EXPECTED = sum(x * (sum(range(50)) % 7 + 2) for x in range(50))


def test_an_unstorable_product_is_refused_with_a_store_unless_checkpoint_false(tmp_path: Path) -> None:
    with pytest.raises(af.StoreError, match=r"'model' produces a product of type .*Model.*checkpoint=False"):
        af.run(make_flow(checkpoint=True), store=tmp_path / "refused")
    result = af.run(make_flow(), store=tmp_path / "store")
    assert result["out"] == EXPECTED and result.summary.tasks["model"].cache is None


def test_a_resumed_run_computes_the_product_again(tmp_path: Path) -> None:
    flow = make_flow()
    CALLS["model"] = 0
    ARMED["at"] = 30
    with pytest.raises(KeyboardInterrupt):
        af.run(flow, store=tmp_path / "store", cache=False)
    assert CALLS["model"] == 1
    result = af.run(flow, store=tmp_path / "store", resume=True)
    assert result["out"] == EXPECTED
    assert CALLS["model"] == 2  # not in the checkpoint: computed again from total's stored product


def test_checkpoint_false_needs_a_product_from_whole_inputs() -> None:
    flow = af.Flow("streamed")

    @flow.source
    def numbers() -> af.Stream[int]:
        yield from range(3)

    with pytest.raises(af.DefinitionError, match=r"checkpoint=False .* reads the stream 'numbers' item by item"):

        @flow.task(checkpoint=False)
        def doubled(numbers: int) -> int:
            return 2 * numbers

    with pytest.raises(af.DefinitionError, match="checkpoint must be True or False"):

        @flow.task(checkpoint="no")  # type: ignore[call-overload]
        def whole(numbers: list[int]) -> int:
            return sum(numbers)

    @flow.task(checkpoint=False)
    def gathered(numbers: list[int]) -> int:  # a whole stream, gathered: allowed
        return sum(numbers)

    assert af.run(flow)["gathered"] == 3
