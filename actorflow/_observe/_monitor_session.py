"""One monitor websocket session, and the table of the commands its client may send.

A session sends ``hello``, then the run's events, periodic ``stats`` and the items of watched
tasks; it reads client messages and answers each with exactly one reply. Each command op is one
handler method of :class:`Session`, registered in :data:`COMMANDS` (op name -> :class:`Command`):
adding a command is adding a handler and a table entry. See ``docs/monitor-protocol.md``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, final

import attrs
import msgpack
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from .._base import ActorflowError, type_name
from .._base import _events as ev
from .._run import Feed, Tap, feed, structure_item, tap
from ._monitor_wire import PROTOCOL_VERSION, graph_description, stats_message, to_wire, wire_fallback

if TYPE_CHECKING:
    from .._run import Run
    from ._monitor_metrics import MetricsCollector


class BadMessage(Exception):
    """A client's message cannot be served; the text goes back to that client only."""


class SessionHost(Protocol):
    """What a session reads from the server that accepted it (the settings each time they are needed)."""

    @property
    def run(self) -> Run:
        """The run the session shows and controls."""

    @property
    def max_message_size(self) -> int:
        """The largest client message, in bytes (announced in ``hello``)."""

    @property
    def stats_interval(self) -> float:
        """Seconds between ``stats`` messages."""

    @property
    def metrics(self) -> MetricsCollector:
        """The run's metrics collector, which also keeps its event history for late clients."""


#: A command handler: the session and the client's message in, the reply (without ``op``/``id``) out.
CommandHandler = Callable[["Session", dict[str, Any]], Awaitable[dict[str, Any]]]


@final
@attrs.frozen
class Command:
    """One entry of the command table.

    Attributes:
        handle: serves the op; raises :class:`BadMessage` for a reply of type ``error``.
        acts_on_run: the op changes the run, so it is refused once the run has ended.
    """

    handle: CommandHandler
    acts_on_run: bool = False


def _ack(**fields: Any) -> dict[str, Any]:
    """An ``ack`` reply with *fields*."""
    return {"type": "ack", **fields}


def _field(msg: dict[str, Any], name: str, kind: type) -> Any:
    """``msg[name]``, which must be a *kind*; else :class:`BadMessage` naming the op and the field."""
    value = msg.get(name)
    if not isinstance(value, kind):
        raise BadMessage(f"{msg['op']!r} needs a {kind.__name__} field {name!r}, got {value!r}")
    return value


@final
class Session:
    """One websocket client: hello, then events, stats and watched items; commands in."""

    def __init__(self, host: SessionHost, ws: WebSocketConnection, binary: bool) -> None:
        self.host = host
        self.run = host.run
        self.ws = ws
        self.binary = binary
        self.taps: dict[str, Tap] = {}
        self.nursery: trio.Nursery | None = None

    async def send(self, message: dict[str, Any]) -> None:
        """Send *message* in the session's encoding (msgpack binary or JSON text)."""
        if self.binary:
            await self.ws.send_message(msgpack.packb(message, default=wire_fallback))
        else:
            await self.ws.send_message(json.dumps(message, default=wire_fallback, separators=(",", ":")))

    async def serve(self) -> None:
        """Serve the client until it goes away; the run's events stream and taps are closed after."""
        history, last_error = self.host.metrics.history_now()
        events = self.run.events()  # before hello: nothing between the snapshot and the stream is lost
        try:
            hello = {
                "type": "hello",
                "protocol": PROTOCOL_VERSION,
                "run_id": self.run.run_id,
                "encoding": "msgpack" if self.binary else "json",
                "graph": graph_description(self.run),
                "commands": list(COMMANDS),
                "max_message_size": self.host.max_message_size,
                "read_only": False,
                "history": history,
                "last_error": last_error,
                **{k: v for k, v in stats_message(self.run).items() if k != "type"},
            }
            await self.send(hello)
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                nursery.start_soon(self._guard, self._events, events)
                nursery.start_soon(self._guard, self._stats)
                await self._receive()
                nursery.cancel_scope.cancel()
        except ConnectionClosed:
            pass
        finally:
            events.close()
            for t in self.taps.values():
                t.close()

    async def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            await fn(*args)
        except ConnectionClosed:  # the client went away: end the whole session quietly
            assert self.nursery is not None
            self.nursery.cancel_scope.cancel()

    async def _events(self, events: ev.EventStream) -> None:
        async for event in events:
            await self.send({"type": "event", "event": event.to_dict()})
        await self.send(stats_message(self.run))

    async def _stats(self) -> None:
        while not self.run.done:
            with trio.move_on_after(self.host.stats_interval):
                await self.run.wait_done()
            await self.send(stats_message(self.run))

    async def _receive(self) -> None:
        while True:
            try:
                raw = await self.ws.get_message()
            except ConnectionClosed:
                return
            msg_id: Any = None
            op: Any = None
            try:
                msg = self._decode(raw)
                msg_id = msg.get("id")
                op = msg.get("op")
                reply = await self._dispatch(op, msg)
            except BadMessage as exc:
                reply = {"type": "error", "error": str(exc)}
            except Exception as exc:  # a command that went wrong is reported, never raised
                reply = {"type": "error", "error": f"{op!r} failed: {type(exc).__name__}: {exc}"}
            if op is not None and "op" not in reply:
                reply["op"] = op if isinstance(op, str) else repr(op)
            if msg_id is not None:
                reply["id"] = msg_id
            try:
                await self.send(reply)
            except ConnectionClosed:
                return

    def _decode(self, raw: str | bytes) -> dict[str, Any]:
        try:
            msg = json.loads(raw) if isinstance(raw, str) else msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except Exception as exc:
            kind = "JSON text" if isinstance(raw, str) else "msgpack binary"
            raise BadMessage(f"malformed frame: not a valid {kind} message ({type(exc).__name__}: {exc})") from None
        if not isinstance(msg, dict):
            raise BadMessage(f"malformed message: expected an object with an 'op' field, got {type(msg).__name__}")
        if not isinstance(msg.get("op"), str):
            raise BadMessage(f"malformed message: 'op' must be a string naming a command; commands: {list(COMMANDS)}")
        return msg

    async def _dispatch(self, op: str, msg: dict[str, Any]) -> dict[str, Any]:
        """The reply to *msg*, from the handler that :data:`COMMANDS` has for *op*."""
        command = COMMANDS.get(op)
        if command is None:
            raise BadMessage(f"unknown command {op!r}; commands: {list(COMMANDS)}")
        if command.acts_on_run and self.run.done:
            raise BadMessage(f"{op!r}: the run has already ended ({self.run.status})")
        return await command.handle(self, msg)

    # -- command handlers (one per op; registered in COMMANDS below) -----------------------------

    async def _op_ping(self, msg: dict[str, Any]) -> dict[str, Any]:
        """``ping``: a ``pong``."""
        return {"type": "pong"}

    async def _op_pause(self, msg: dict[str, Any]) -> dict[str, Any]:
        """``pause``: hold the run at its next batch boundaries."""
        self.run.pause()
        return _ack(paused=True)

    async def _op_resume(self, msg: dict[str, Any]) -> dict[str, Any]:
        """``resume``: let a paused run go on."""
        self.run.resume()
        return _ack(paused=False)

    async def _op_cancel(self, msg: dict[str, Any]) -> dict[str, Any]:
        """``cancel``: cancel the run."""
        self.run.cancel()
        return _ack()

    async def _op_checkpoint_now(self, msg: dict[str, Any]) -> dict[str, Any]:
        """``checkpoint-now``: write a checkpoint at once (the run needs a store)."""
        if not await self.run.checkpoint_now():
            raise BadMessage("'checkpoint-now': checkpoints need a store; start the run with one (store=...)")
        return _ack(checkpoint=True)

    async def _op_push(self, msg: dict[str, Any]) -> dict[str, Any]:
        """``push``: structure ``item``/``items`` into an external source's type and feed them all, or none."""
        f = self._feed(msg)
        return _ack(accepted=await self._push(f, msg), start=f.start)

    async def _op_end(self, msg: dict[str, Any]) -> dict[str, Any]:
        """``end``: end an external source's stream."""
        self._feed(msg).close()
        return _ack()

    async def _op_subscribe(self, msg: dict[str, Any]) -> dict[str, Any]:
        """``subscribe``: start forwarding a task's output stream as ``items`` messages."""
        task = _field(msg, "task", str)
        if task in self.taps:
            return _ack(already=True)
        try:
            t = tap(self.run, task)
        except (KeyError, ActorflowError) as exc:
            raise BadMessage(f"'subscribe': {exc.args[0]}") from None
        self.taps[task] = t
        assert self.nursery is not None
        self.nursery.start_soon(self._guard, self._forward, task, t)
        return _ack()

    async def _op_unsubscribe(self, msg: dict[str, Any]) -> dict[str, Any]:
        """``unsubscribe``: stop forwarding a task's items."""
        task = _field(msg, "task", str)
        t = self.taps.pop(task, None)
        if t is None:
            raise BadMessage(f"'unsubscribe': not subscribed to {task!r}")
        t.close()
        return _ack()

    # -- helpers of the handlers -----------------------------------------------------------------

    def _feed(self, msg: dict[str, Any]) -> Feed:
        """The feed of the external source named by ``msg["source"]``."""
        source = _field(msg, "source", str)
        try:
            return feed(self.run, source)
        except KeyError as exc:
            raise BadMessage(f"{msg['op']!r}: {exc.args[0]}") from None

    async def _push(self, f: Feed, msg: dict[str, Any]) -> int:
        """Structure every item of *msg*, then feed them to *f*; how many were fed."""
        if "items" in msg:
            items = msg["items"]
            if not isinstance(items, list):
                raise BadMessage(f"'push': 'items' must be a list, got {type(items).__name__}")
        elif "item" in msg:
            items = [msg["item"]]
        else:
            raise BadMessage("'push' needs 'item' (one item) or 'items' (a list)")
        values = []
        problems = []
        for i, item in enumerate(items):
            try:
                values.append(structure_item(item, f.item_type))
            except TypeError as exc:
                problems.append(f"item {i}: {exc}")
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise BadMessage(
                f"'push' to {f.source!r} (items of type {type_name(f.item_type)}): nothing was accepted; {shown}"
            )
        for value in values:
            try:
                await f._put(value)
            except ActorflowError as exc:
                raise BadMessage(f"'push': {exc}") from None
        return len(values)

    async def _forward(self, task: str, t: Tap) -> None:
        async for seqs, items in t:
            await self.send({"type": "items", "task": task, "seqs": to_wire(seqs), "items": to_wire(items)})
        if self.taps.get(task) is t:
            del self.taps[task]
            await self.send({"type": "end", "task": task, "dropped": t.dropped})


#: The command table: op name -> its handler, in the order ``hello`` lists the commands.
COMMANDS: dict[str, Command] = {
    "pause": Command(Session._op_pause, acts_on_run=True),
    "resume": Command(Session._op_resume, acts_on_run=True),
    "cancel": Command(Session._op_cancel, acts_on_run=True),
    "checkpoint-now": Command(Session._op_checkpoint_now, acts_on_run=True),
    "push": Command(Session._op_push, acts_on_run=True),
    "end": Command(Session._op_end, acts_on_run=True),
    "subscribe": Command(Session._op_subscribe),
    "unsubscribe": Command(Session._op_unsubscribe),
    "ping": Command(Session._op_ping),
}
