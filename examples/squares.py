"""The quick start's main job: square numbers and add them up, then print a summary.

Run it with ``python examples/squares.py [N]``.
"""

from __future__ import annotations

import sys

import actorflow as af

flow = af.Flow("squares")


@flow.source
def numbers(n: int = 10) -> af.Stream[int]:
    """The integers 0 .. n-1."""
    yield from range(n)


@flow.task
async def square(numbers: int) -> int:
    """One number squared."""
    return numbers * numbers


@flow.collector(init=0)
def total(acc: int, square: int) -> int:
    """The sum of the squares."""
    return acc + square


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 1_000_000
    result = af.run(flow, options={"numbers": {"n": n}})
    print(f"sum of the squares of 0..{n - 1} = {result['total']:,}")
    print(result.summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
