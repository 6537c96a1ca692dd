"""Class-based tasks: options and settings as class attributes, inherited, nearest wins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

import actorflow as af


class Numbers(af.Task):
    kind = "source"
    batch_size = 8
    count: int = 10

    def run(self) -> Iterator[int]:
        yield from range(self.count)


class Scale(af.Task):
    """Multiply each number."""

    concurrency = 2
    retries = 1
    factor: int = 2
    offset: int = 0

    async def run(self, numbers: int) -> int:
        await trio.sleep(0)
        return numbers * self.factor + self.offset


class Triple(Scale):
    factor: int = 3  # nearest definition wins
    capacity = 64
    cache = False


class Total(af.Task):
    kind = "collector"
    init = 0

    def run(self, acc: int, triple: int) -> int:
        return acc + triple


def build() -> af.Flow:
    flow = af.Flow("classes")
    flow.add(Numbers)
    flow.add(Triple)
    flow.add(Total)
    return flow


def test_class_tasks_run_with_inherited_run_and_settings() -> None:
    flow = build()
    spec = flow.tasks["triple"]
    assert spec.concurrency == 2 and spec.capacity == 64 and spec.cache is False
    assert flow.tasks["total"].cache is True
    assert isinstance(spec.on_error, af.Retry) and spec.on_error.attempts == 2
    assert [(o.name, o.default) for o in spec.options] == [("factor", 3), ("offset", 0)]
    assert spec.is_async and [i.name for i in spec.inputs] == ["numbers"]
    assert flow.tasks["numbers"].batch_size == 8 and flow.tasks["numbers"].is_generator
    assert af.run(flow)["total"] == 3 * sum(range(10))
    assert af.run(flow, {"triple": {"offset": 1}, "numbers": {"count": 4}})["total"] == 3 * 6 + 4


def test_options_of_class_tasks_are_validated() -> None:
    with pytest.raises(af.InvocationError, match="task 'triple', option 'factor': expected int"):
        build().bind({"triple": {"factor": "lots"}})


def test_one_instance_per_actor_and_a_fresh_one_on_restart() -> None:
    instances: list[int] = []

    class Fragile(af.Task):
        on_error = af.Restart(intensity=2, period=60)

        def __init__(self) -> None:
            instances.append(id(self))
            self.calls = 0

        def run(self, numbers: int) -> int:
            self.calls += 1
            if numbers == 5 and len(instances) == 1:
                raise RuntimeError("first instance breaks on 5")
            return numbers

    flow = af.Flow("restart")
    flow.add(Numbers)
    flow.add(Fragile)
    assert af.run(flow)["fragile"] == list(range(10))
    assert len(instances) == 2  # one at start, one after the restart


def test_bad_task_classes_are_refused() -> None:
    flow = af.Flow("bad")

    class NoRun(af.Task):
        pass

    with pytest.raises(af.DefinitionError, match="does not define run"):
        flow.add(NoRun)
    with pytest.raises(af.DefinitionError, match=r"subclass of af\.Task"):
        flow.add(int)

    class WrongKind(af.Task):
        kind = "transformer"

        def run(self) -> int:
            return 1

    with pytest.raises(af.DefinitionError, match="kind must be task, source, sink or collector"):
        flow.add(WrongKind)

    class Clash(af.Task):
        numbers: int = 1

        def run(self, numbers: int) -> int:
            return numbers

    with pytest.raises(af.DefinitionError, match=r"both run.. parameters and options"):
        flow.add(Clash)


@pytest.mark.parametrize("retries", ["two", -1, 1.5, True])
def test_retries_must_be_a_whole_number(retries: object) -> None:
    class Flaky(af.Task):
        def run(self) -> int:
            return 1

    Flaky.retries = retries  # type: ignore[assignment]
    with pytest.raises(af.DefinitionError, match=r"task class .*Flaky: retries must be a whole number"):
        af.Flow("bad").add(Flaky)


def test_secrets_of_a_class_must_be_a_list_of_names() -> None:
    class Keyed(af.Task):
        secrets = "KEY"  # type: ignore[assignment]

        def run(self) -> int:
            return 1

    with pytest.raises(af.DefinitionError, match="secrets must be a list of names, got 'KEY'"):
        af.Flow("bad").add(Keyed)
