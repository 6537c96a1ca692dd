"""The ordered concat runner: one output built from many parts, the flows among them in parallel.

``af.concat(output, parts, limit=16)`` checks every part first (nothing runs when one is wrong),
then runs the flow parts concurrently, at most *limit* at a time. A part's output goes to the
cache (when there is one: a hit is read straight from it, and its flow does not run) or to a temp
file. As soon as a part and every part before it are ready they are streamed, in the given order,
into the output, so the result is byte for byte what a serial run writes. Temp files are removed
when the concat ends, also after a failure; an output given as a path is written to a temp file
beside it and renamed into place only when everything succeeded.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, final

import attrs
import trio

from .._base import ActorflowError, Event, fits, type_name
from .._define import Flow, RunGraph
from .._kernel import Cache, open_cache
from .._storage import Store
from ._run import open_run

#: Bytes copied from a spill file to the output at a time.
_COPY = 1 << 16


@final
@attrs.frozen
class PartReport:
    """What one concat part did.

    Attributes:
        index: the part's position in ``parts``.
        kind: ``"writer"`` (a function) or ``"flow"``.
        name: the writer function's or the flow's name.
        cache: for a flow, ``"hit"`` (its output came from the cache; it did not run), ``"miss"``
            (it ran and its output was cached) or None (no cache, or not cacheable).
        bytes: bytes the part contributed.
        run_id: the id of the part's run (flows only).
    """

    index: int
    kind: str
    name: str
    cache: str | None
    bytes: int
    run_id: str | None = None


@final
@attrs.frozen
class ConcatResult:
    """What :func:`concat` wrote: total bytes and one :class:`PartReport` per part."""

    bytes: int
    parts: tuple[PartReport, ...]

    @property
    def hits(self) -> int:
        """How many flow parts came from the cache."""
        return sum(1 for p in self.parts if p.cache == "hit")


@attrs.define
class _Part:
    index: int
    kind: str
    name: str
    writer: Callable[..., Any] | None = None
    graph: RunGraph | None = None
    terminal: str = ""
    streaming: bool = False
    ready: trio.Event = attrs.field(factory=trio.Event)
    spill: Path | None = None
    cache_key: str | None = None
    cache_form: str | None = None
    cache: str | None = None
    pinned: bool = False
    run_id: str | None = None
    size: int = 0


class _Out:
    """What a writer function gets: ``out.write(data: bytes)``."""

    def __init__(self, part: _Part, sink: Callable[[bytes], Any]) -> None:
        self._part = part
        self._sink = sink

    def write(self, data: bytes) -> int:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ActorflowError(
                f"concat part {self._part.index} ({self._part.name}): write() takes bytes, "
                f"got {type(data).__name__}"
            )
        self._sink(bytes(data))
        self._part.size += len(data)
        return len(data)


def _terminal(index: int, graph: RunGraph) -> tuple[str, bool]:
    where = f"concat part {index} (flow {graph.name!r})"
    ends = [t for t in graph.tasks.values() if t.kind != "sink" and not graph.downstream(t.name)]
    if len(ends) != 1:
        names = [t.name for t in ends]
        raise ActorflowError(f"{where}: a part needs exactly one output task, this flow has {names or 'none'}")
    spec = ends[0]
    if spec.out_type is not Any and not fits(spec.out_type, bytes):
        what = "a stream of" if spec.streaming else "a product of type"
        raise ActorflowError(
            f"{where}: its output task {spec.name!r} produces {what} {type_name(spec.out_type)}; "
            "a concat part must produce bytes or a stream of bytes"
        )
    return spec.name, spec.streaming


def _parts(parts: Sequence[Any]) -> list[_Part]:
    if isinstance(parts, str | bytes) or not isinstance(parts, Sequence):
        raise ActorflowError(f"concat: parts must be a list of writer functions and flows, got {type(parts).__name__}")
    out: list[_Part] = []
    for i, p in enumerate(parts):
        if isinstance(p, Flow):
            try:
                p = p.bind({})
            except ActorflowError as exc:
                where = f"concat part {i} (flow {p.name!r})"
                raise ActorflowError(f"{where}: bind it first, flow.bind(options): {exc}") from exc
        if isinstance(p, RunGraph):
            terminal, streaming = _terminal(i, p)
            out.append(_Part(i, "flow", p.name, graph=p, terminal=terminal, streaming=streaming))
        elif callable(p):
            out.append(_Part(i, "writer", getattr(p, "__name__", repr(p)), writer=p))
        else:
            raise ActorflowError(
                f"concat part {i}: expected a writer function (def part(out): out.write(b'...')) or a bound flow, "
                f"got {type(p).__name__} {p!r:.60}"
            )
    return out


def _check_bytes(part: _Part, value: Any) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ActorflowError(
            f"concat part {part.index} (flow {part.name!r}): task {part.terminal!r} produced "
            f"{type(value).__name__}, not bytes"
        )
    return bytes(value)


async def _run_flow(
    part: _Part,
    cache: Cache | None,
    spill_dir: Path,
    on_event: Callable[[Event], Any] | None,
    spawn: Callable[..., Any],
) -> None:


    assert part.graph is not None
    spill: BinaryIO | None = None
    try:
        async with open_run(part.graph, cache=cache if cache is not None else False) as run:
            if on_event is not None:
                spawn(_forward, run.events(), on_event)
            part.run_id = run.run_id
            actor = run.actors[part.terminal]
            role = actor.cached
            part.cache, part.cache_key = (role.decision, role.key) if role is not None else (None, None)
            if role is not None and role.hit and role.entry is not None and cache is not None:
                part.cache_form = role.entry["form"]
                cache.pin([role.key])
                part.pinned = True
            else:
                part.spill = spill_dir / f"part-{part.index:06d}"
                spill = part.spill.open("wb")
                if part.streaming:
                    actor.taps.append(_SpillTap(part, spill))
                    actor.in_result, actor.gather = False, None  # the spill file holds the stream
            result = await run.result()
            if role is not None and not part.pinned:  # early cutoff may have decided it while running
                part.cache, part.cache_key = role.decision, role.key
        if spill is not None and not part.streaming:
            spill.write(_check_bytes(part, result[part.terminal]))
    finally:
        if spill is not None:
            spill.close()
    part.ready.set()


class _SpillTap:
    """Writes a part's stream to its spill file as the terminal task sends it."""

    def __init__(self, part: _Part, fh: BinaryIO) -> None:
        self.part = part
        self.fh = fh

    def __call__(self, _seqs: list[Any], items: list[Any]) -> None:
        for x in items:
            self.fh.write(_check_bytes(self.part, x))

    def wake(self) -> None:
        """The task ended: nothing waits on a spill."""


async def _forward(stream: Any, on_event: Callable[[Event], Any]) -> None:
    async for event in stream:
        on_event(event)


async def _emit(part: _Part, cache: Cache | None, write: Callable[[bytes], Any]) -> None:
    """Stream one finished flow part into the output."""
    if part.spill is not None:
        with part.spill.open("rb") as fh:
            while chunk := fh.read(_COPY):
                part.size += len(chunk)
                await write(chunk)
        part.spill.unlink()
        return
    assert cache is not None and part.cache_key is not None
    try:
        if part.cache_form == "product":
            data = _check_bytes(part, cache.product(part.cache_key))
            part.size += len(data)
            await write(data)
        else:
            for _, items in cache.chunks(part.cache_key):
                for x in items:
                    data = _check_bytes(part, x)
                    part.size += len(data)
                    await write(data)
    finally:
        cache.unpin([part.cache_key])
        part.pinned = False


async def concat_async(
    output: Any,
    parts: Sequence[Any],
    limit: int = 16,
    *,
    cache: str | os.PathLike[str] | Store | Cache | None = None,
    cache_limit: int | None = None,
    on_event: Callable[[Event], Any] | None = None,
    tmp_dir: str | os.PathLike[str] | None = None,
) -> ConcatResult:
    """Like :func:`concat`, inside trio; *output* may also be a trio stream (``send_all``)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ActorflowError(f"concat: limit must be a positive int, got {limit!r}")
    plan = _parts(parts)
    opened_cache, cache_store = open_cache(cache, None, cache_limit)
    try:
        async with _output(output) as write:
            return await _concat(write, plan, limit, opened_cache, on_event, tmp_dir)
    finally:
        if cache_store is not None:
            cache_store.close()


async def _concat(
    write: Callable[[bytes], Any],
    plan: list[_Part],
    limit: int,
    cache: Cache | None,
    on_event: Callable[[Event], Any] | None,
    tmp_dir: str | os.PathLike[str] | None,
) -> ConcatResult:
    errors: list[BaseException] = []
    limiter = trio.CapacityLimiter(limit)
    with tempfile.TemporaryDirectory(prefix="actorflow-concat-", dir=tmp_dir) as tmp:
        spill_dir = Path(tmp)
        async with trio.open_nursery() as nursery:

            async def run_one(part: _Part) -> None:
                try:
                    async with limiter:
                        await _run_flow(part, cache, spill_dir, on_event, nursery.start_soon)
                except Exception as exc:
                    exc.add_note(f"in concat part {part.index} (flow {part.name!r})")
                    errors.append(exc)
                    nursery.cancel_scope.cancel()

            for part in plan:
                if part.kind == "flow":
                    nursery.start_soon(run_one, part)
            total = 0
            try:
                for part in plan:
                    if part.kind == "writer":
                        buf = io.BytesIO()
                        assert part.writer is not None
                        value = part.writer(_Out(part, buf.write))
                        if inspect.isawaitable(value):
                            await value
                        await write(buf.getvalue())
                    else:
                        await part.ready.wait()
                        await _emit(part, cache, write)
                    total += part.size
            except Exception as exc:
                exc.add_note(f"in concat part {part.index} ({part.name})")
                errors.append(exc)
                nursery.cancel_scope.cancel()
        for part in plan:  # parts that never streamed (after a failure) still hold a pin
            if part.pinned and cache is not None and part.cache_key is not None:
                cache.unpin([part.cache_key])
    if errors:
        raise errors[0]
    return ConcatResult(
        bytes=total,
        parts=tuple(PartReport(p.index, p.kind, p.name, p.cache, p.size, p.run_id) for p in plan),
    )


@contextlib.asynccontextmanager
async def _output(output: Any) -> Any:
    """A ``write(bytes)`` coroutine function for *output*; a path is replaced only on success."""
    if isinstance(output, trio.abc.SendStream):
        yield output.send_all
        return
    if isinstance(output, str | os.PathLike):
        path = Path(output)
        if path.is_dir():
            raise ActorflowError(f"concat: output {str(path)!r} is a directory")
        if not path.parent.exists():
            raise ActorflowError(f"concat: the folder of output {str(path)!r} does not exist")
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        ok = False
        try:
            with os.fdopen(fd, "wb") as fh:

                async def write_file(data: bytes) -> None:
                    fh.write(data)

                yield write_file
            os.replace(tmp_name, path)
            ok = True
        finally:
            if not ok:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_name)
        return
    if callable(getattr(output, "write", None)):

        async def write_obj(data: bytes) -> None:
            output.write(data)

        yield write_obj
        return
    raise ActorflowError(
        f"concat: output must be a path, a binary file object or a trio stream, got {type(output).__name__}"
    )


def concat(
    output: str | os.PathLike[str] | BinaryIO,
    parts: Sequence[Callable[[Any], Any] | RunGraph | Flow],
    limit: int = 16,
    *,
    cache: str | os.PathLike[str] | Store | Cache | None = None,
    cache_limit: int | None = None,
    on_event: Callable[[Event], Any] | None = None,
    tmp_dir: str | os.PathLike[str] | None = None,
) -> ConcatResult:
    """Build one output from *parts*, in order, running the flow parts in parallel.

    Args:
        output: a path (written to a temp file beside it, renamed into place on success), a binary
            file object, or (with :func:`concat_async`) a trio stream.
        parts: writer functions (``def header(out): out.write(b"...")``, sync or async) and bound
            flows (``flow.bind(options)``) whose one output task produces bytes or a stream of bytes.
        limit: the most flows running at once.
        cache: a store directory (or Store) for the product cache: a part whose output is cached
            is not run (its tasks publish ``CacheHit``), and new outputs are cached.
        cache_limit: the cache's size limit in bytes.
        on_event: called with every event of every part's run.
        tmp_dir: where temp files go (the system's temp folder by default).

    Returns:
        A :class:`ConcatResult`: bytes written, and per part whether it came from the cache.

    Example:
        >>> af.concat("book.txt", [title, *(chapter.bind({"read": {"path": p}}) for p in files)])
    """
    return trio.run(
        lambda: concat_async(
            output, parts, limit, cache=cache, cache_limit=cache_limit, on_event=on_event, tmp_dir=tmp_dir
        )
    )
