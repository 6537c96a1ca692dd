"""Concatenate a folder of text files into one document, the files processed in parallel.

Every ``*.txt`` file of the folder becomes a part: a small flow that reads the file (an
``af.File`` option, so the cache knows when it changed), tidies each line and numbers it. Writer
functions add a header and a separator before each file. ``af.concat`` runs up to ``--limit``
file flows at once and writes everything, in file-name order, exactly as a serial run would.

With ``--store DIR`` the parts are cached: run it again and only the files that changed are read.

Usage::

    python examples/concat_folder.py SRC_DIR OUT_FILE [--store DIR] [--limit 16]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import actorflow as af

flow = af.Flow("tidy_file")


@flow.source
def lines(src: af.File) -> af.Stream[str]:
    """The file's lines, without their line ends."""
    with open(src, encoding="utf-8") as fh:
        for line in fh:
            yield line.rstrip("\r\n")


@flow.task
def tidy(lines: str, seq: af.Seq) -> Iterator[bytes]:
    """Collapse runs of spaces, drop blank lines, number the rest."""
    text = " ".join(lines.split())
    if text:
        yield f"{seq + 1:4d}  {text}\n".encode()


def header(folder: Path, files: list[Path]) -> Any:
    def write(out: Any) -> None:
        out.write(f"# {len(files)} files from {folder.name}\n".encode())

    return write


def separator(path: Path) -> Any:
    def write(out: Any) -> None:
        out.write(f"\n== {path.name} ==\n".encode())

    write.__name__ = f"separator_{path.stem}"
    return write


def parts_for(folder: Path) -> list[Any]:
    """The concat parts for *folder*: a header, then a separator and a flow per file."""
    files = sorted(folder.glob("*.txt"))
    parts: list[Any] = [header(folder, files)]
    for path in files:
        parts += [separator(path), flow.bind({"lines": {"src": path}})]
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Concatenate a folder of text files, in parallel, in order.")
    parser.add_argument("src", type=Path, help="folder of *.txt files")
    parser.add_argument("out", type=Path, help="the file to write")
    parser.add_argument("--store", help="cache parts in this store; unchanged files are not read again")
    parser.add_argument("--limit", type=int, default=16, help="most files processed at once (default 16)")
    args = parser.parse_args(argv)
    if not args.src.is_dir():
        print(f"concat_folder: {str(args.src)!r} is not a folder", file=sys.stderr)
        return 2
    try:
        report = af.concat(args.out, parts_for(args.src), limit=args.limit, cache=args.store)
    except af.ActorflowError as exc:
        print(f"concat_folder: {exc}", file=sys.stderr)
        return 1
    flows = [p for p in report.parts if p.kind == "flow"]
    print(f"wrote {report.bytes:,} bytes to {args.out} from {len(flows)} files "
          f"({report.hits} from the cache, {len(flows) - report.hits} processed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
