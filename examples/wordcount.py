"""Count words in a folder of text files: files -> lines -> words -> counts.

Shows generator tasks chaining (each file yields lines, each line yields words), a plain
collector over the whole stream and a per-file collector (``per=files``).

Run it with ``python examples/wordcount.py FOLDER``.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import actorflow as af

flow = af.Flow("wordcount")


@flow.source
def files(folder: Path = Path("."), pattern: str = "*.txt") -> af.Stream[Path]:
    """Every matching file of the folder, in name order."""
    yield from sorted(Path(folder).glob(pattern))


@flow.task
def lines(files: Path) -> af.Stream[str]:
    """The lines of one file."""
    with open(files, encoding="utf-8") as fh:
        yield from fh


@flow.task
def words(lines: str) -> af.Stream[str]:
    """The lower-cased words of one line."""
    for word in lines.split():
        word = word.strip(".,;:!?\"'()[]").lower()
        if word:
            yield word


@flow.collector(init=Counter())
def counts(acc: Counter[str], words: str) -> Counter[str]:
    """How often each word occurs in all files."""
    acc[words] += 1
    return acc


@flow.collector(init=0, per=files)
def words_per_file(acc: int, words: str) -> int:
    """How many words each file holds, one product per file, in file order."""
    return acc + 1


@flow.task
def report(files: list[Path], words_per_file: list[int]) -> dict[str, int]:
    """File name -> word count."""
    return {f.name: n for f, n in zip(files, words_per_file, strict=True)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else Path(".")
    result = af.run(flow, options={"files": {"folder": folder}})
    for word, n in result["counts"].most_common(10):
        print(f"{n:8,}  {word}")
    for name, n in result["report"].items():
        print(f"{name}: {n:,} words")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
