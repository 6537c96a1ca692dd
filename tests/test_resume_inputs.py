"""Resume checks its inputs, not only its code, and the owner lock cannot be lost to an ``rm``
(issue 22, point 9): real stores, real files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import actorflow as af
from actorflow._storage._store import Store

ARMED: dict[str, Any] = {"at": -1}


def build() -> af.Flow:
    flow = af.Flow("summed")

    @flow.source
    def numbers(src: af.File) -> af.Stream[int]:
        yield from (int(line) for line in src.read_text().split())

    @flow.collector(init=0)
    def total(acc: int, numbers: int) -> int:
        if numbers == ARMED["at"]:
            ARMED["at"] = -1
            raise KeyboardInterrupt
        return acc + numbers

    return flow


def interrupted_run(tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    data, store = tmp_path / "data.txt", tmp_path / "store"
    data.write_text("\n".join(str(i) for i in range(1000)))
    options = {"numbers": {"src": str(data)}}
    ARMED["at"] = 700
    with pytest.raises(KeyboardInterrupt):
        af.run(build(), options, store=store, checkpoint_every=0.001)
    return data, store, options


def test_a_resume_over_a_changed_input_file_is_refused_naming_it(tmp_path: Path) -> None:
    data, store, options = interrupted_run(tmp_path)
    data.write_text("\n".join(str(i * 1000) for i in range(1000)))
    with pytest.raises(af.ResumeError, match=r"input file .*data\.txt.* \(numbers\.src, its content differs\)"):
        af.run(build(), options, store=store, resume=True)
    resumed = af.run(build(), options, store=store, resume=True, allow_changed=True)  # said so: goes on
    assert resumed.summary.status == "ok"


def test_a_resume_over_the_same_file_gives_the_uninterrupted_product(tmp_path: Path) -> None:
    data, store, options = interrupted_run(tmp_path)
    data.write_text(data.read_text())  # rewritten, same content
    assert af.run(build(), options, store=store, resume=True)["total"] == sum(range(1000))


def test_deleting_the_lock_file_does_not_let_a_second_owner_in(tmp_path: Path) -> None:
    first = Store(tmp_path / "store", owner=True)
    try:
        (tmp_path / "store" / "owner.lock").unlink()
        with pytest.raises(af.StoreError, match="is in use by"):
            Store(tmp_path / "store", owner=True)
    finally:
        first.close()
    Store(tmp_path / "store", owner=True).close()  # released with its owner
