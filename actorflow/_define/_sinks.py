"""Built-in transactional sinks.

:class:`JsonLinesSink` appends one JSON line per item to a file, exactly once across crashes and
resumes. Each transaction is written to a side file ``PATH.txn-<token>``; ``commit`` appends it to
``PATH`` and records, in the companion file ``PATH.commits``, the size ``PATH`` had after the append
and the tokens committed so far. Every step survives SIGKILL:

- a crash while appending leaves ``PATH.commits`` unchanged, so the next ``commit`` of that token
  cuts ``PATH`` back to the recorded size and appends again;
- a crash after ``PATH.commits`` was replaced (an atomic rename) leaves the token recorded, so the
  next ``commit`` of it only removes the side file;
- side files of transactions no durable checkpoint holds are removed at the first ``begin``
  (after the restored tokens were committed).
"""

from __future__ import annotations

import json
import os
import uuid
from glob import escape, glob
from typing import IO, Any, ClassVar, Literal

from .._storage import dumps
from ._taskclass import TransactionalSink

#: How many committed tokens ``PATH.commits`` remembers (a resume re-commits only the latest).
KEEP_TOKENS = 16


class JsonLinesSink(TransactionalSink):
    """Write one JSON line per item to the file named by the option ``path``, exactly once.

    Wire its one input, the parameter ``item``, with ``flow.add(af.JsonLinesSink, name="out",
    inputs={"item": "square"})`` and set the option like any other (``--set out.path=out.jsonl``).
    Items are written as JSON after cattrs unstructures them (attrs classes and dataclasses become
    objects); a float JSON has no number for is written as the string ``"NaN"``, ``"Infinity"`` or
    ``"-Infinity"`` (as ``--json`` does). Lines appear once their checkpoint is durable (without a
    store: at the run's end), in the order the items arrived.

    What a new run does to an existing file is the option ``mode``:

    - ``"append"`` (the default): the new lines follow what the file holds, lines written to it
      since the last run included;
    - ``"overwrite"``: the file starts empty, but only if this sink wrote it and it did not change
      since (its ``path.commits`` record says so); any other file is refused before an item is
      written, naming it (delete it, or append).

    A resumed run goes on with the file as its checkpoint left it, whatever the mode. The path is
    made absolute when the flow is bound, and two sinks on one path are refused there. Only this
    sink may write to ``path`` and its companions ``path.commits`` and ``path.txn-*`` while a run
    uses it.
    """

    path: str
    mode: Literal["append", "overwrite"] = "append"

    #: Options naming files only this sink may write: made absolute and checked at bind.
    exclusive_paths: ClassVar[tuple[str, ...]] = ("path",)

    _file: IO[bytes] | None = None
    _token: str | None = None
    _swept = False

    def starting(self, resumed: bool) -> None:
        """Called once before the first commit or ``begin`` of a run: a new run (not *resumed*) starts
        the file as ``mode`` says and records its size, so what others appended is kept.

        Raises:
            FileExistsError: ``mode="overwrite"`` on a file this sink did not write or that changed.
        """
        if resumed:
            return
        size = self._size()
        if self.mode == "overwrite" and size:
            recorded = self._recorded_size()
            if recorded != size:
                why = "this sink did not write it (no record in " + repr(self._commits()) + ")" if recorded is None \
                    else f"it changed since this sink wrote it ({size} bytes, {recorded} recorded)"
                raise FileExistsError(
                    f"JsonLinesSink will not overwrite {self.path!r}: {why}; delete the file, or set mode='append'"
                )
            with open(self.path, "r+b") as f:
                f.truncate(0)
                os.fsync(f.fileno())
            size = 0
        self._save(size, [])

    def begin(self) -> None:
        """Open a new side file for the next transaction (sweeping abandoned ones the first time)."""
        if not self._swept:
            self._swept = True
            if not os.path.exists(self._commits()):  # the size PATH has before this sink's first append
                self._save(self._size(), [])
            for stale in glob(f"{escape(self.path)}.txn-*"):
                os.remove(stale)
        self._token = uuid.uuid4().hex
        self._file = open(self._side(self._token), "wb")  # closed by prepare or abort

    def run(self, item: Any) -> None:
        """Write one item as a JSON line into the open transaction."""
        assert self._file is not None
        self._file.write(dumps(item).encode() + b"\n")

    def prepare(self) -> str:
        """Flush and sync the side file; its token names it."""
        assert self._file is not None and self._token is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        return self._token

    def commit(self, token: Any) -> None:
        """Append the side file of *token* to ``path``, once (idempotent), then remove the side file."""
        side = self._side(str(token))
        size, tokens = self._load()
        if token in tokens:
            if os.path.exists(side):
                os.remove(side)
            return
        if not os.path.exists(side):
            raise FileNotFoundError(f"transaction {token!r} of {self.path!r} was neither committed nor kept: {side}")
        size = min(size, self._size())  # never grow the file with zeros if it was cut behind our back
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, size)  # drop what a crash left of an earlier attempt
            os.lseek(fd, size, os.SEEK_SET)
            with open(side, "rb") as src:
                while chunk := src.read(1 << 20):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
            os.fsync(fd)
            end = os.lseek(fd, 0, os.SEEK_CUR)
        finally:
            os.close(fd)
        self._save(end, [*tokens, token][-KEEP_TOKENS:])
        os.remove(side)

    def abort(self, token: Any) -> None:
        """Remove the side file of *token* (None: the open transaction's)."""
        if token is None:
            if self._file is not None:
                self._file.close()
                self._file = None
            token = self._token
        if token is not None and os.path.exists(self._side(str(token))):
            os.remove(self._side(str(token)))

    # -- files -----------------------------------------------------------------------------------

    def _side(self, token: str) -> str:
        return f"{self.path}.txn-{token}"

    def _commits(self) -> str:
        return f"{self.path}.commits"

    def _size(self) -> int:
        try:
            return os.path.getsize(self.path)
        except FileNotFoundError:
            return 0

    def _load(self) -> tuple[int, list[Any]]:
        try:
            with open(self._commits(), encoding="utf-8") as f:
                doc = json.load(f)
            return int(doc["size"]), list(doc["tokens"])
        except FileNotFoundError:
            return self._size(), []

    def _recorded_size(self) -> int | None:
        """The size ``path.commits`` records (None: there is no record)."""
        try:
            with open(self._commits(), encoding="utf-8") as f:
                return int(json.load(f)["size"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def _save(self, size: int, tokens: list[Any]) -> None:
        tmp = f"{self._commits()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"size": size, "tokens": tokens}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._commits())

