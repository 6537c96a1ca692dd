"""Fan-out and fan-in: one stream read by two tasks, whose outputs are zipped back together.

``readings`` feeds both ``celsius`` and ``alarm``; ``label`` receives one item of each for every
reading (zipped by sequence number). ``offset`` runs once (it has no streaming input) and its
product is a constant final input to every ``celsius`` call.
``alarm`` drops readings that are not alarming with ``af.SKIP``; ``label`` then only sees those.
"""

from __future__ import annotations

import actorflow as af

flow = af.Flow("fanout_fanin")


@flow.source
def readings(count: int = 20) -> af.Stream[float]:
    """Fake Fahrenheit readings."""
    for i in range(count):
        yield 50.0 + (i * 7) % 60


@flow.task
def offset(bias: float = -0.5) -> float:
    """A calibration constant, computed once."""
    return bias


@flow.task
def celsius(readings: float, offset: float) -> float:
    return round((readings - 32) * 5 / 9 + offset, 2)


@flow.task
def alarm(readings: float, threshold: float = 100.0) -> str:
    return "HOT" if readings >= threshold else af.SKIP


@flow.task
def label(celsius: float, alarm: str) -> str:
    """Fan-in: one celsius value and one alarm for the same reading."""
    return f"{alarm} {celsius}C"


@flow.collector(init=[], finish=lambda acc: (min(acc), max(acc)))
def stats(acc: list[float], celsius: float) -> tuple[float, float]:
    acc.append(celsius)
    return acc


@flow.collector(init=[])
def hot(acc: list[str], label: str) -> list[str]:
    acc.append(label)
    return acc


if __name__ == "__main__":
    result = af.run(flow)
    print("alarms:", result["hot"])
    print("range:", result["stats"])
    print(result.summary)
