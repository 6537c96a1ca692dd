"""Consistent snapshots of a run, and restoring a run from one.

A snapshot is taken by the supervisor while every actor is parked (see ``_supervisor``), in one
synchronous step. It holds, as plain data ready for msgpack:

- ``mailboxes``: every mailbox's queued batches (plus items a fan-in actor had drained but not
  matched yet, and a generator task's unfinished input batch), oldest first;
- ``actors``: per actor its status, counters, source cursor, outboxes (batches not yet in every
  downstream mailbox, with the index of the next one), collector accumulators, gathered lists and
  final products.

Items are stored as plain data and structured back into each port's declared type on restore.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ._actors import CollectorActor, SourceActor, TaskActor
from ._cache import restore_state, route
from ._codec import EncodeError, restore, restore_items, restore_like, seq_from_plain, unpack
from ._errors import ResumeError, StoreError
from ._store import Store, open_store

if TYPE_CHECKING:
    from ._actors import Actor
    from ._run import Run

FORMAT = 1


def _plain_seqs(seqs: list[Any]) -> list[Any]:
    return [list(s) if isinstance(s, tuple) else s for s in seqs]


def _batch(seqs: list[Any], items: list[Any]) -> list[Any]:
    return [_plain_seqs(seqs), list(items)]


def _actor_state(actor: Actor) -> dict[str, Any]:
    st: dict[str, Any] = {
        "status": actor.status,
        "items_in": actor.items_in,
        "items_out": actor.items_out,
        "outboxes": [[*_batch(s, i), nxt] for _, (s, i, nxt) in sorted(actor.outboxes.items())],
    }
    done_out = getattr(actor, "done_out", None)
    if done_out:
        st["outboxes"] += [[*_batch(s, i), 0] for _, (s, i) in sorted(done_out.items())]
    if actor.gather is not None:
        st["gather"] = list(actor.gather)
    if actor.status == "finished" and actor.product.ready.is_set() and actor.gather is None:
        st["product"] = actor.product.value
    if isinstance(actor, SourceActor):
        st["cursor"] = actor.cursor
    if isinstance(actor, CollectorActor):
        if actor.spec.per is None:
            if actor.acc_restored:
                st["acc"] = actor.acc
        elif hasattr(actor, "accs"):
            st["accs"] = [[list(k) if isinstance(k, tuple) else k, v] for k, v in actor.accs.items()]
            st["known"] = _plain_seqs(list(actor.known))
            st["mark"] = list(actor.mark) if isinstance(actor.mark, tuple) else actor.mark
    if actor.cache is not None:
        st["cache"] = [actor.cache, actor.cache_key, actor.replayed, actor.cache_replay, actor.cache_items]
    if isinstance(actor, TaskActor) and actor.inflight is not None:
        seqs, items, emitted = actor.inflight
        st["inflight"] = [*_batch(seqs, items), emitted]
    return st


def snapshot(run: Run, number: int, final: bool) -> dict[str, Any]:
    """Copy the whole state of *run* into plain data. Call only while every actor is parked."""
    boxes: dict[str, list[Any]] = {}
    queued = 0
    for name, (box, consumer, port) in run.mailboxes.items():
        batches: list[Any] = []
        zipped = getattr(consumer, "_zip", None)
        if zipped is not None and port is not None and box in zipped.boxes:
            k = zipped.boxes.index(box)
            pending = list(zipped._bufs[k]) + list(zipped._maps[k].items())
            if pending:
                batches.append(_batch([s for s, _ in pending], [x for _, x in pending]))
        batches += [_batch(s, i) for s, i in box._batches]
        queued += sum(len(b[1]) for b in batches)
        boxes[name] = batches
    return {
        "format": FORMAT,
        "fingerprint": run.graph.fingerprint,
        "number": number,
        "final": final,
        "time": time.time(),
        "queued_items": queued,
        "actors": {name: _actor_state(a) for name, a in run.actors.items()},
        "mailboxes": boxes,
        "dead_letters": len(run.supervisor.dead_letters),
    }


def apply(run: Run, doc: dict[str, Any]) -> int:
    """Restore *run*'s mailboxes and actors from a snapshot; returns the number of queued items."""
    if doc.get("format") != FORMAT:
        raise ResumeError(f"checkpoint format {doc.get('format')!r} is not the {FORMAT} this actorflow reads")
    if doc.get("fingerprint") != run.graph.fingerprint:
        raise ResumeError(
            "the store's checkpoint was written by a different run graph (tasks, wiring or option values changed); "
            "resume with the same flow and options, or start afresh with a new store"
        )
    tasks = run.graph.tasks
    if set(doc["actors"]) != set(run.actors) or set(doc["mailboxes"]) != set(run.mailboxes):
        raise ResumeError("the store's checkpoint names other tasks or mailboxes than this flow has")
    queued = 0
    # Inflight batches of generator tasks go back to the front of their inbox.
    front: dict[str, list[Any]] = {}
    for name, st in doc["actors"].items():
        actor = run.actors[name]
        if "inflight" in st:
            seqs, items, emitted = st["inflight"]
            seqs = [seq_from_plain(s) for s in seqs]
            actor.skip_children = {seqs[0]: emitted} if emitted else {}  # type: ignore[attr-defined]
            boxes = [n for n, (_, c, p) in run.mailboxes.items() if c is actor and p is not None]
            if len(boxes) == 1:
                front[boxes[0]] = [seqs, items]
            else:
                for k, bname in enumerate(boxes):
                    front[bname] = [seqs, [t[k] for t in items]]
    for name, batches in doc["mailboxes"].items():
        box, consumer, port = run.mailboxes[name]
        up_name = next((i.upstream for i in consumer.spec.inputs if i.name == port), consumer.spec.per)
        upstream = tasks[up_name]  # type: ignore[index]
        if name in front:
            batches = [front[name], *batches]
        for seqs, items in batches:
            box.put_nowait([seq_from_plain(s) for s in seqs], restore_items(items, upstream.out_type))
            queued += len(items)
    for name, st in doc["actors"].items():
        actor = run.actors[name]
        spec = actor.spec
        actor.items_in, actor.items_out = st["items_in"], st["items_out"]
        actor.resend = [[[seq_from_plain(s) for s in seqs], restore_items(items, spec.out_type), nxt]
                        for seqs, items, nxt in st["outboxes"]]
        if "gather" in st:
            actor.gather = restore_items(st["gather"], spec.out_type)
        if isinstance(actor, SourceActor):
            actor.cursor = st["cursor"]
        if isinstance(actor, CollectorActor):
            if "acc" in st:
                actor.acc = restore_like(st["acc"], spec.init)
                actor.acc_restored = True
            elif "accs" in st:
                actor.accs = {seq_from_plain(k): restore_like(v, spec.init) for k, v in st["accs"]}
                actor.known = deque(seq_from_plain(k) for k in st["known"])
                actor.mark = seq_from_plain(st["mark"])
                actor.acc_restored = True
        if "cache" in st:
            restore_state(run, name, st)
        if st["status"] == "finished":
            actor.restored_finished = True
            if actor.gather is not None:
                actor.product.set(actor.gather)
            elif "product" in st:
                actor.product.set(restore(st["product"], spec.out_type))
            else:
                actor.product.set(None)
    route(run)
    return queued


def open_for_run(
    path: Any, graph: Any, resume: bool, meta: dict[str, Any] | None = None
) -> tuple[Store, dict[str, Any] | None]:
    """Open the store for a run of *graph*; with *resume*, also load its latest checkpoint.

    *path* may also be an opened :class:`Store`, which is then used as it is.

    Raises:
        ResumeError: nothing to resume, or the store belongs to a different graph or options.
        StoreError: the store is foreign, corrupt, or holds an unfinished run (without *resume*).
    """
    owned = not isinstance(path, Store)
    store = open_store(path, create=not resume) if owned else path
    try:
        info = store.run_info()
        if resume:
            if info is None:
                raise ResumeError(f"store {str(store.path)!r} records no run; nothing to resume")
            if info.get("fingerprint") != graph.fingerprint:
                raise ResumeError(
                    f"store {str(store.path)!r} holds a run of flow {info.get('flow')!r} with other tasks or "
                    "options than the ones given; resume with the same pipeline and options"
                )
            return store, _load(store)
        if info is not None:
            doc = _load(store)
            if doc is not None and not doc.get("final"):
                raise StoreError(
                    f"store {str(store.path)!r} holds an unfinished run of flow {info.get('flow')!r}; resume it "
                    "(resume=True, or `actorflow resume --store DIR`) or use another store"
                )
        record = {"flow": graph.name, **(meta or {})}
        record.setdefault("options", {k: dict(v) for k, v in graph.options.items()})
        try:
            store.set_run_info(graph.fingerprint, record)
        except EncodeError:
            record["options"] = None  # options that cannot be stored; resume then needs them given again
            store.set_run_info(graph.fingerprint, record)
        return store, None
    except BaseException:
        if owned:
            store.close()
        raise


def _load(store: Store) -> dict[str, Any] | None:
    blob = store.read_checkpoint()
    if blob is None:
        return None
    try:
        doc = unpack(blob)
    except Exception as exc:
        raise StoreError(f"store {str(store.path)!r}: the checkpoint cannot be decoded ({exc})") from exc
    if not isinstance(doc, dict) or "actors" not in doc:
        raise StoreError(f"store {str(store.path)!r}: the checkpoint is not one actorflow wrote")
    return doc
