"""The type checks on what an actor sends: its output port's classes, deep checks and named types.

One :class:`OutputCheck` per actor, compiled once from the task's declared output type. Its
:meth:`OutputCheck.batch` runs once per output batch; its common path is one C-level pass (the set
of the batch's item types is a subset of the classes already admitted). Deep checks (container
elements, record fields; see ``_typing.batch_checker``) and named types run only when the declared
type asks for them; a stream's items have their contents checked by the sampling rule of
``_sampling.SampledCheck`` (every item with ``check="full"``). A task that declares no output type and
runs with a store has each new item type checked to be storable when it first appears.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._base import (
    SKIP,
    ItemFailure,
    MailboxTypeError,
    NamedType,
    StoreError,
    _Skip,
    admits,
    deep_checker,
    type_name,
    type_problem,
)
from .._define import sampled_checker
from .._storage import pack
from ._mailbox import Mailbox

if TYPE_CHECKING:
    from .._define import TaskDef
    from ._runtime import Runtime


class OutputCheck:
    """The checks of one actor's outputs (see the module's docstring)."""

    __slots__ = (
        "_allowed", "_classes", "_deep", "_deep_batch", "_named", "_plain", "_state_shapes", "_storable", "name", "run",
        "spec", "stored",
    )

    def __init__(self, run: Runtime, spec: TaskDef, store: bool) -> None:
        self.run = run
        self.spec = spec
        self.name = spec.name
        classes = spec.out_classes
        self._classes = classes
        self._named = spec.out_type if isinstance(spec.out_type, NamedType) else None
        #: Item types seen and admitted so far (SKIP is always admitted: it is dropped).
        self._allowed: set[type] = {c for c in classes if admits(classes, c)} if classes is not None else set()
        self._allowed.add(_Skip)
        #: The output type's deep check (container elements, record fields), compiled once; None for plain classes.
        self._deep = None if self._named is not None else deep_checker(spec.out_type)
        full = spec.settings.check == "full"
        self._deep_batch = None if self._named is not None else sampled_checker(spec.out_type, full)
        #: True when the class check says it all: the common fast path of `batch`.
        self._plain = self._named is None and self._deep is None
        #: Undeclared output type and a store: each new type is checked to be storable when it first appears.
        self._storable = classes is None and self._named is None and store
        #: Whether the run has a store, and the shapes of task state (see :meth:`state`) found storable.
        self.stored = store
        self._state_shapes: set[Any] = set()

    def batch(self, seqs: list[Any], items: list[Any]) -> tuple[list[Any], list[Any]]:
        """Type-check one output batch against the output port and drop SKIPs (one C-level pass)."""
        seen = set(map(type, items))
        if seen <= self._allowed and _Skip not in seen and self._plain:
            return seqs, items
        if _Skip in seen:
            keep = [i for i, x in enumerate(items) if x is not SKIP]
            seqs, items = [seqs[i] for i in keep], [items[i] for i in keep]
            seen.discard(_Skip)
        if self._classes is not None:
            for t in seen - self._allowed:
                if admits(self._classes, t):
                    self._allowed.add(t)
                else:
                    bad = next(i for i, x in enumerate(items) if type(x) is t)
                    raise self.type_error(items[bad], seqs[bad])
        elif self._storable:
            for t in seen - self._allowed:
                first = next(i for i, x in enumerate(items) if type(x) is t)
                self.storable(items[first], seqs[first])
                self._allowed.add(t)
        if self._named is not None:
            for s, x in zip(seqs, items, strict=True):
                self.named(x, s)
        elif self._deep_batch is not None and not self._deep_batch(items):
            raise self.deep_error(self.spec.out_type, seqs, items, "out", self.name)
        return seqs, items

    def product(self, value: Any) -> None:
        """Check a final product against the declared type (named types included)."""
        if self._classes is not None and not admits(self._classes, type(value)):
            raise self.type_error(value, None)
        if self._deep is not None and not self._deep(value):
            raise self.deep_error(self.spec.out_type, [None], [value], "out", self.name)
        if self._storable and type(value) not in self._allowed:
            self.storable(value, None)
        if self._named is not None:
            self.named(value, None)

    def port(self, box: Mailbox, seqs: list[Any], items: list[Any]) -> None:
        """Check items from this (unannotated) sender against the receiving port's type."""
        accepts = box.accepts
        assert accepts is not None
        for t in set(map(type, items)):
            if not admits(accepts, t):
                bad = next(i for i, x in enumerate(items) if type(x) is t)
                task, _, port = box.name.rpartition(".")
                expected = " | ".join(c.__qualname__ for c in accepts)
                raise MailboxTypeError(self.run.flow_name, task, port, expected, t.__qualname__, seqs[bad])
        if box.deep is not None and not box.deep(items):
            task, _, port = box.name.rpartition(".")
            raise self.deep_error(self.run.port_type(box.name), seqs, items, port, task)

    def deep_error(self, tp: Any, seqs: list[Any], items: list[Any], port: str, task: str) -> MailboxTypeError:
        """The error for the first item of a batch that fails *tp*'s deep check, naming its offending part."""
        for s, x in zip(seqs, items, strict=True):
            why = type_problem(tp, x)
            if why is not None:
                return MailboxTypeError(self.run.flow_name, task, port, type_name(tp), type(x).__qualname__, s, why)
        raise AssertionError("a deep check failed, but no item has a problem")

    def storable(self, value: Any, seq: Any, what: str = "") -> None:
        """An output (or *what*: the task's state) of a type not seen before: can a checkpoint hold it?

        Raises:
            ItemFailure: it cannot (a :class:`StoreError` naming the task, the item and the type).
        """
        try:
            pack(value)
        except (TypeError, ValueError, OverflowError) as exc:
            item = "its product" if seq is None else f"item {seq}"
            item = f"{what} after {item}" if what else item
            error = StoreError(
                f"task {self.name!r}, {item}: a value of type {type(value).__qualname__} cannot be stored in a "
                f"checkpoint ({exc}); return plain data, an attrs class or a dataclass"
            )
            raise ItemFailure(seq, error) from exc

    def state(self, value: Any, seq: Any, what: str, shape: Any = None) -> None:
        """With a store, check the task's state *value* (an accumulator, an instance's attributes) after
        item *seq* storable the first time its *shape* (by default its type) appears, so a checkpoint
        that could not hold it fails at once, not after all the work."""
        if not self.stored:
            return
        key = type(value) if shape is None else shape
        if key not in self._state_shapes:
            self.storable(value, seq, what)
            self._state_shapes.add(key)

    def named(self, value: Any, seq: Any) -> None:
        """Run a named output type's checks on one value."""
        assert self._named is not None
        why = self._named.problem(value)
        if why is not None:
            raise MailboxTypeError(
                self.run.flow_name, self.name, "out", self._named.name, f"{type(value).__qualname__} {value!r:.40}",
                seq, why,
            )

    def type_error(self, value: Any, seq: Any) -> MailboxTypeError:
        """The error for *value* that is not of the output port's type."""
        return MailboxTypeError(
            self.run.flow_name, self.name, "out", type_name(self.spec.out_type), type(value).__qualname__, seq
        )
