"""The run store: metadata, checkpoints, dead letters, and refusing what it cannot use."""

from __future__ import annotations

import os
from pathlib import Path

import lmdb
import pytest

import actorflow as af
from actorflow._storage._codec import pack, unpack
from actorflow._storage._store import SCHEMA_VERSION


def small_flow() -> af.Flow:
    flow = af.Flow("small")

    @flow.source
    def numbers(n: int = 100) -> af.Stream[int]:
        yield from range(n)

    @flow.collector(init=0)
    def total(acc: int, numbers: int) -> int:
        return acc + numbers

    return flow


def test_new_store_records_kind_schema_and_run(tmp_path: Path) -> None:
    store = tmp_path / "s"
    result = af.run(small_flow(), {"numbers": {"n": 10}}, store=store, meta={"pipeline": "p.py"})
    assert result["total"] == 45
    with af.store.open_store(store, create=False) as st:
        info = st.run_info()
        assert info is not None
        assert info["flow"] == "small" and info["pipeline"] == "p.py"
        assert info["options"]["numbers"] == {"n": 10}
        assert info["fingerprint"] == small_flow().bind({"numbers": {"n": 10}}).fingerprint
        assert st.read_checkpoint() is not None


def test_checkpoints_are_msgpack_not_pickle(tmp_path: Path) -> None:
    af.run(small_flow(), store=tmp_path / "s")
    with af.store.open_store(tmp_path / "s") as st:
        blob = st.read_checkpoint()
    assert blob is not None and not blob.startswith(b"\x80")  # pickle protocol marker
    import msgpack

    doc = msgpack.unpackb(blob, raw=False, strict_map_key=False)
    assert doc["final"] is True and doc["actors"]["total"]["product"] == sum(range(100))


def test_missing_store_cannot_be_resumed(tmp_path: Path) -> None:
    with pytest.raises(af.StoreError, match="does not exist; nothing to resume"):
        af.run(small_flow(), store=tmp_path / "nope", resume=True)


def test_a_file_is_not_a_store(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("hello")
    with pytest.raises(af.StoreError, match="is a file, not an actorflow store"):
        af.run(small_flow(), store=f)


def test_foreign_lmdb_is_refused(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "foreign"), max_dbs=2)
    db = env.open_db(b"customers")
    with env.begin(write=True) as txn:
        txn.put(b"k", b"v", db=db)
    env.close()
    with pytest.raises(af.StoreError, match="not an actorflow store"):
        af.run(small_flow(), store=tmp_path / "foreign")


def test_corrupt_and_truncated_files_are_refused(tmp_path: Path) -> None:
    af.run(small_flow(), store=tmp_path / "s")
    data = tmp_path / "s" / "data.mdb"
    raw = data.read_bytes()
    data.write_bytes(raw[:100])
    with pytest.raises(af.StoreError, match="truncated or corrupt"):
        af.run(small_flow(), store=tmp_path / "s", resume=True)
    data.write_bytes(b"\x00garbage" * 2000)
    with pytest.raises(af.StoreError, match=r"cannot be opened as an LMDB store|not an actorflow store"):
        af.run(small_flow(), store=tmp_path / "s", resume=True)


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    af.run(small_flow(), store=tmp_path / "s")
    env = lmdb.open(str(tmp_path / "s"), max_dbs=8)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(b"schema", str(SCHEMA_VERSION + 1).encode(), db=meta)
    env.close()
    with pytest.raises(af.StoreError, match=rf"schema version {SCHEMA_VERSION + 1}"):
        af.store.open_store(tmp_path / "s")


def test_changed_options_or_graph_cannot_resume(tmp_path: Path) -> None:
    af.run(small_flow(), {"numbers": {"n": 10}}, store=tmp_path / "s")
    with pytest.raises(af.ResumeError, match="other tasks or options"):
        af.run(small_flow(), {"numbers": {"n": 11}}, store=tmp_path / "s", resume=True)
    other = small_flow()

    @other.sink
    def show(numbers: int) -> None:
        pass

    with pytest.raises(af.ResumeError, match="other tasks or options"):
        af.run(other, {"numbers": {"n": 10}}, store=tmp_path / "s", resume=True)


def test_map_full_gives_a_clear_error_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    store = af.store.open_store(tmp_path / "s", map_size=256 * 1024)
    try:
        store.write_checkpoint(b"good" * 10, [])
        full = r"is full: its map size is 262,144 bytes.* needs about 1,048,5\d\d more; the last good checkpoint"
        with pytest.raises(af.StoreError, match=full):
            store.write_checkpoint(os.urandom(1024 * 1024), [])
        assert store.read_checkpoint() == b"good" * 10
    finally:
        store.close()


def test_map_full_during_a_run_fails_it_clearly(tmp_path: Path) -> None:
    flow = af.Flow("big")

    @flow.source
    def blobs(n: int = 50) -> af.Stream[bytes]:
        for _ in range(n):
            yield os.urandom(64 * 1024)

    @flow.task
    def everything(blobs: list[bytes]) -> int:
        return len(blobs)

    store = af.store.open_store(tmp_path / "s", map_size=512 * 1024)
    try:
        with pytest.raises(af.StoreError, match="is full"):
            af.run(flow, store=store)
    finally:
        store.close()


def test_unfinished_run_in_store_is_not_overwritten(tmp_path: Path) -> None:
    af.run(small_flow(), store=tmp_path / "s")
    with af.store.open_store(tmp_path / "s", create=False) as st:
        blob = st.read_checkpoint()
        assert blob is not None
        doc = unpack(blob)
        doc["final"] = False
        st.write_checkpoint(pack(doc), [])
    with pytest.raises(af.StoreError, match="holds an unfinished run"):
        af.run(small_flow(), store=tmp_path / "s")


def test_undecodable_checkpoint_is_refused(tmp_path: Path) -> None:
    af.run(small_flow(), store=tmp_path / "s")
    with af.store.open_store(tmp_path / "s", create=False) as st:
        st.write_checkpoint(b"\xc1\xc1 not msgpack", [])  # sealed: it is whole, but not msgpack
    with pytest.raises(af.StoreError, match="checkpoint cannot be decoded"):
        af.run(small_flow(), store=tmp_path / "s", resume=True)
