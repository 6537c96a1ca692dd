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

import logging
import time
from typing import TYPE_CHECKING, Any

from .._base import ResumeError, StoreError, type_name
from .._storage import EncodeError, Store, open_store, pack, plain_batch, seq_from_plain, storable_problem, unpack
from ._cache_keys import code_tokens
from ._input_files import FILES_KEY, check_files, file_fingerprints
from ._state import ActorState, batch_problem, state_from_plain, state_problem, state_to_plain

if TYPE_CHECKING:
    from ._runtime import Runtime

FORMAT = 1

log = logging.getLogger("actorflow.store")


def snapshot(run: Runtime, number: int, final: bool) -> dict[str, Any]:
    """Frame the whole state of *run* as plain data. Call only while every actor is parked.

    Each actor gives its own state (:meth:`Actor.state`); each mailbox its queued batches, after
    the items its reader took but has not processed yet (a zip's unmatched items).
    """
    boxes: dict[str, list[Any]] = {}
    queued = 0
    for name, (box, consumer, _) in run.mailboxes.items():
        batches = [plain_batch(s, i) for s, i in consumer.queued_for(box)]
        batches += [plain_batch(s, i) for s, i in box.in_memory()]
        batches += box.spilled_plain()
        queued += sum(len(b[1]) for b in batches)
        boxes[name] = batches
    return {
        "format": FORMAT,
        "fingerprint": run.graph.fingerprint,
        "number": number,
        "final": final,
        "time": time.time(),
        "queued_items": queued,
        "actors": {name: state_to_plain(a.state()) for name, a in run.actors.items()},
        "mailboxes": boxes,
        "dead_letters": len(run.supervisor.dead_letters),
    }


def encode(doc: dict[str, Any], store: Store) -> bytes:
    """A snapshot as msgpack; a value msgpack cannot hold becomes a :class:`StoreError` naming its holder."""
    try:
        return pack(doc)
    except (TypeError, ValueError, OverflowError) as exc:  # EncodeError is a TypeError
        raise StoreError(
            f"store {str(store.path)!r}: cannot write checkpoint {doc['number']}: {_holder(doc)} holds a value that "
            f"cannot be stored ({exc}). Make it an attrs class or a dataclass (cattrs unstructures those) or plain "
            "data; the last good checkpoint is intact"
        ) from exc


def _holder(doc: dict[str, Any]) -> str:
    """Which part of a snapshot msgpack cannot encode: ``task 'x' (its product)`` or ``mailbox 'y'``."""
    for name, st in doc["actors"].items():
        for key, value in st.items():
            if not _packs(value):
                return f"task {name!r} ({_PARTS.get(key, key)})"
    for name, batches in doc["mailboxes"].items():
        if not _packs(batches):
            return f"mailbox {name!r} (items queued for it)"
    return "the run's state"


_PARTS = {
    "product": "its product",
    "gather": "the items it produced",
    "outboxes": "items it is sending",
    "inflight": "the batch it is working on",
    "acc": "its accumulator",
    "accs": "its accumulators",
    "tokens": "its prepared transactions",
    "last_in": "its last input's sequence number",
    "attrs": "its task instance's public attributes (end_of_stream state; name private ones with _)",
}


def _packs(value: Any) -> bool:
    try:
        pack(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def apply(run: Runtime, doc: dict[str, Any]) -> int:
    """Restore *run*'s mailboxes and actors from a snapshot read by :func:`load` (which has checked
    its framing); returns the number of queued items.

    Raises:
        ResumeError: the checkpoint belongs to another format or run graph.
        StoreError: the checkpoint is damaged (a field missing or of the wrong kind).
    """
    if doc.get("format") != FORMAT:
        raise ResumeError(f"checkpoint format {doc.get('format')!r} is not the {FORMAT} this actorflow reads")
    if doc.get("fingerprint") != run.graph.fingerprint:
        raise ResumeError(
            "the store's checkpoint was written by a different run graph (tasks, wiring or option values changed); "
            "resume with the same flow and options, or start afresh with a new store"
        )
    store = run.supervisor.store
    where = f"store {str(store.path)!r}" if store is not None else "the checkpoint's store"
    problem = _problem_for(run, doc)  # the framing was checked by load(); here, whether it fits this run
    if problem is not None:
        raise StoreError(f"{where}: the checkpoint is damaged ({problem}); {_way_on(store, doc)}")
    try:
        return _apply(run, doc)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        # a damage the checks above do not foresee: say so rather than fail with a bare KeyError
        raise StoreError(
            f"{where}: the checkpoint is damaged ({type(exc).__name__}: {exc}); {_way_on(store, doc)}"
        ) from exc


def _way_on(store: Store | None, doc: dict[str, Any]) -> str:
    """What to do about a damaged checkpoint *doc*: resume from the previous one when it is intact."""
    previous = _intact_previous(store) if store is not None else None
    if store is None or previous is None or previous.get("number") == doc.get("number"):
        return "start the run afresh in a new store"
    return _previous_offer(store, previous)


def _apply(run: Runtime, doc: dict[str, Any]) -> int:
    if set(doc["actors"]) != set(run.actors) or set(doc["mailboxes"]) != set(run.mailboxes):
        raise ResumeError("the store's checkpoint names other tasks or mailboxes than this flow has")
    queued = 0
    for name, batches in doc["mailboxes"].items():
        box, _, _ = run.mailboxes[name]
        for seqs, items in batches:
            box.put_nowait([seq_from_plain(s) for s in seqs], box.restore(items))  # the sender's item type
            queued += len(items)
    for name, st in doc["actors"].items():  # after the mailboxes: an actor may put a batch back in front
        actor = run.actors[name]
        actor.restore(state_from_plain(actor.state_type, st))
    return queued


def check_storable(graph: Any) -> None:
    """With a store, refuse before any task runs a graph whose declared item or product types cannot be stored.

    Raises:
        StoreError: naming every task and type that msgpack (with cattrs) cannot hold.
    """
    problems = []
    for spec in graph.tasks.values():
        if (spec.kind in ("sink", "input") and not spec.streaming) or not spec.checkpoint:  # checkpoint=False: kept out
            continue
        why = storable_problem(spec.out_type)
        if why is not None:
            what = "items" if spec.streaming else "a product"
            problems.append(f"task {spec.name!r} produces {what} of type {type_name(spec.out_type)}: {why}")
    if problems:
        raise StoreError(
            f"flow {graph.name!r}: a run with a store checkpoints every item and product, and these cannot be "
            f"stored with msgpack/cattrs: {'; '.join(problems)}. Use plain data, attrs classes or dataclasses, "
            "register a codec for the type (af.register_codec), or keep a product out of checkpoints with "
            "checkpoint=False on its task"
        )


def open_for_run(
    path: Any, graph: Any, resume: bool, meta: dict[str, Any] | None = None, allow_changed: bool = False,
    from_previous: bool = False,
) -> tuple[Store, dict[str, Any] | None]:
    """Open the store for a run of *graph*; with *resume*, also load its latest checkpoint (with
    *from_previous*, the one before it: see :func:`load`).

    *path* may also be an opened :class:`Store`, which is then used as it is. A fresh run records
    the code and settings of every task (:func:`~actorflow._kernel._cache_keys.code_tokens`); a resume
    compares them with the tasks given and refuses changed ones unless *allow_changed*, which logs
    a warning naming them and records the new code. What a fresh run records is encoded before
    the store is opened, so a value that cannot be recorded leaves no half-made store.

    Raises:
        ResumeError: nothing to resume, the store belongs to a different graph or options, or
            (without *allow_changed*) tasks' code or settings changed since the run started.
        StoreError: the store is foreign, corrupt, in use by another run, or holds an unfinished
            run (without *resume*).
    """
    if from_previous and not resume:
        raise ResumeError("from_previous=True resumes from an older checkpoint: it needs resume=True")
    record = None if resume else _run_record(graph, meta)
    owned = not isinstance(path, Store)
    # one owner per store, taken before anything is read or any task runs
    store = open_store(path, create=not resume, owner=True) if owned else path
    try:
        store.acquire()
        info = store.run_info()
        if resume:
            if info is None:
                raise ResumeError(store.unmade())
            if info.get("fingerprint") != graph.fingerprint:
                raise ResumeError(
                    f"store {str(store.path)!r} holds a run of flow {info.get('flow')!r} with other tasks or "
                    "options than the ones given; resume with the same pipeline and options"
                )
            _check_code(store, info, graph, allow_changed)
            check_files(store, info, graph, allow_changed)  # the inputs too (issue 22)
            return store, load(store, from_previous)
        if info is not None:
            doc = load(store)
            if doc is not None and not doc.get("final"):
                raise StoreError(
                    f"store {str(store.path)!r} holds an unfinished run of flow {info.get('flow')!r}; resume it "
                    "(resume=True, or `actorflow resume --store DIR`) or use another store"
                )
        assert record is not None
        store.set_run_info(graph.fingerprint, record)
        return store, None
    except BaseException:
        if owned:
            store.close()
        else:
            store.release()
        raise


def _run_record(graph: Any, meta: dict[str, Any] | None) -> dict[str, Any]:
    """What a fresh run records in its store, checked to encode (options msgpack cannot hold are left
    out: a resume then needs them given again)."""
    record = {"flow": graph.name, **(meta or {}), "code": code_tokens(graph), FILES_KEY: file_fingerprints(graph)}
    record.setdefault("options", {k: dict(v) for k, v in graph.options.items()})
    try:
        pack(record)
    except EncodeError:
        record["options"] = None
    else:
        return record
    try:
        pack(record)
    except (TypeError, ValueError, OverflowError) as exc:
        raise StoreError(f"flow {graph.name!r}: the run cannot be recorded in a store ({exc})") from exc
    return record


def changed_tasks(info: dict[str, Any], tokens: dict[str, Any]) -> list[str]:
    """The tasks whose code tokens (see ``code_tokens``) differ from those the store's run recorded
    (none when the store predates the record)."""
    recorded = info.get("code")
    if not isinstance(recorded, dict):
        return []
    return [name for name, token in tokens.items() if recorded.get(name) != token]


def _check_code(store: Store, info: dict[str, Any], graph: Any, allow_changed: bool) -> None:
    tokens = code_tokens(graph)
    changed = changed_tasks(info, tokens)
    if not changed:
        return
    names = ", ".join(repr(n) for n in changed)
    if not allow_changed:
        raise ResumeError(
            f"store {str(store.path)!r}: the code or settings of task{'s' if len(changed) > 1 else ''} {names} changed "
            "since the run started, so its checkpoint may not fit them. Resume with the code that started the run, "
            "or, if the change is safe (see docs/durability.md), pass --allow-changed (allow_changed=True)"
        )
    log.warning(
        "store %r: resuming with changed code or settings of task%s %s (allowed by allow_changed)",
        str(store.path), "s" if len(changed) > 1 else "", names,
    )
    store.update_run_info(code=tokens)


def _decoded(entry: tuple[bytes | None, str | None]) -> tuple[dict[str, Any] | None, str]:
    """A checkpoint record (from :meth:`Store.checkpoints`) decoded, or None and what is wrong with it."""
    blob, problem = entry
    if blob is None:
        return None, f"is damaged ({problem})"
    try:
        doc = unpack(blob)
    except Exception as exc:
        return None, f"cannot be decoded ({exc})"
    if not isinstance(doc, dict) or "actors" not in doc:
        return None, "is not one actorflow wrote"
    problem = _problem(doc) if doc.get("format") == FORMAT else None  # another format: apply() says so
    if problem is not None:
        return None, f"is damaged ({problem})"
    return doc, ""


def load(store: Store, from_previous: bool = False) -> dict[str, Any] | None:
    """The store's latest checkpoint, decoded and checked (None when it holds none); with
    *from_previous*, the one before it.

    Raises:
        StoreError: the checkpoint is damaged; when the previous one is intact the message says
            how to resume from it.
        ResumeError: *from_previous* and there is no previous checkpoint.
    """
    where = f"store {str(store.path)!r}"
    latest = store.checkpoint()  # the previous one is read only when it is asked for or needed
    if from_previous:
        older = store.checkpoint(previous=True) if latest is not None else None
        if older is None:
            raise ResumeError(f"{where} holds no checkpoint before its latest one; resume without from_previous")
        doc, problem = _decoded(older)
        if doc is None:
            raise StoreError(f"{where}: the previous checkpoint {problem} too; start the run afresh in a new store")
        log.warning(
            "store %r: resuming from the previous checkpoint (number %s); what the run did after it is done again",
            str(store.path), doc.get("number"),
        )
        store.drop_latest_checkpoint()  # the next checkpoint replaces the latest, not the one resumed from
        return doc
    if latest is None:
        return None
    doc, problem = _decoded(latest)
    if doc is not None:
        return doc
    previous = _intact_previous(store)
    if previous is None:
        raise StoreError(f"{where}: the checkpoint {problem}; no older checkpoint is intact: start the run afresh "
                         "in a new store")
    raise StoreError(f"{where}: the checkpoint {problem}. {_previous_offer(store, previous)}")


def _intact_previous(store: Store) -> dict[str, Any] | None:
    """The checkpoint before the latest, decoded, if there is one and it is intact."""
    entry = store.checkpoint(previous=True)
    return _decoded(entry)[0] if entry is not None else None


def _previous_offer(store: Store, previous: dict[str, Any]) -> str:
    return (
        f"The previous checkpoint (number {previous.get('number')}) is intact: "
        f"resume from it with `actorflow resume --store {store.path!s} --from-previous` (from_previous=True); "
        "what the run did after it is done again (a transactional sink may write those items twice)"
    )


# -- validation of a decoded checkpoint: each returns what is wrong, or None ----------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _problem(doc: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a decoded checkpoint (fields every checkpoint has)."""
    if not _is_int(doc.get("number")):
        return f'"number" is {doc.get("number")!r}, not a checkpoint number'
    if not isinstance(doc.get("final"), bool):
        return f'"final" is {doc.get("final")!r}, not true or false'
    for key in ("actors", "mailboxes"):
        if key not in doc:
            return f'"{key}" is missing'
        if not isinstance(doc[key], dict) or not all(isinstance(k, str) for k in doc[key]):
            return f'"{key}" is not a map of names'
    for name, batches in doc["mailboxes"].items():
        if not isinstance(batches, list):
            return f"mailbox {name!r} is not a list of batches"
        for batch in batches:
            if (p := batch_problem(batch)) is not None:
                return f"a batch of mailbox {name!r} {p}"
    for name, st in doc["actors"].items():
        if (p := state_problem(ActorState, st)) is not None:
            return f"task {name!r}: {p}"
    return None


def _problem_for(run: Runtime, doc: dict[str, Any]) -> str | None:
    """What a checkpoint of *run*'s own graph lacks for the kinds of its actors (each kind's record)."""
    for name, st in doc["actors"].items():
        actor = run.actors.get(name)
        if actor is not None and (p := state_problem(actor.state_type, st)) is not None:
            return f"task {name!r}: {p}"
    return None
