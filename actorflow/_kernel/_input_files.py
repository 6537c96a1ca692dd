"""Resume checks its inputs, not only its code: the content of every file a run reads.

A fresh run with a store records, next to its code tokens, the SHA-256 of every
:class:`~actorflow.File` option's file (:func:`file_fingerprints`). A resume computes them again
and refuses a file whose content changed since (:func:`check_files`): the resumed run would mix
the old content (already read before the checkpoint) with the new, a total matching neither file.
``allow_changed=True`` (``--allow-changed``) resumes anyway, with a warning naming the files, and
records the new contents.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .._base import ResumeError, content_hash, files_in

__all__ = ["check_files", "file_fingerprints"]

log = logging.getLogger("actorflow.store")

#: The run record's key for the files' fingerprints.
FILES_KEY = "files"


def file_fingerprints(graph: Any) -> dict[str, list[str]]:
    """``{absolute path: [where it is given (task.option), content SHA-256]}`` for every
    :class:`~actorflow.File` in *graph*'s option values (``"missing"`` for a file gone since bind)."""
    out: dict[str, list[str]] = {}
    for task, values in graph.options.items():
        for option, value in values.items():
            for file in files_in(value):
                path = os.path.abspath(file.path)
                if path not in out:
                    out[path] = [f"{task}.{option}", _hash(path)]
    return out


def _hash(path: str) -> str:
    try:
        return content_hash(path)
    except OSError:
        return "missing"


def check_files(store: Any, info: dict[str, Any], graph: Any, allow_changed: bool) -> None:
    """Refuse to resume over an input file whose content changed since the run started.

    Raises:
        ResumeError: a file's content differs from the run record's (or it is gone), naming the
            file and its option; not with *allow_changed*, which logs a warning and records the
            new contents instead.
    """
    recorded = info.get(FILES_KEY)
    if not isinstance(recorded, dict):
        return  # a store written before files were recorded
    now = file_fingerprints(graph)
    changed = [
        f"{path!r} ({where}, {'gone' if digest == 'missing' else 'its content differs'})"
        for path, (where, digest) in now.items()
        if isinstance(recorded.get(path), list) and recorded[path][1] != digest
    ]
    if not changed:
        return
    text = ", ".join(changed)
    if not allow_changed:
        raise ResumeError(
            f"store {str(store.path)!r}: input file{'s' if len(changed) > 1 else ''} {text} changed since the run "
            "started; the resumed run would mix what it read before the checkpoint with the new content. Put the "
            "file back as it was, start afresh, or pass --allow-changed (allow_changed=True) to resume over it"
        )
    log.warning("store %r: resuming over changed input files %s (allowed by allow_changed)", str(store.path), text)
    store.update_run_info(**{FILES_KEY: now})
