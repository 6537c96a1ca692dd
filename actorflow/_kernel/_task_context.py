"""Building the context of a running task: the kernel's side of ``af.Context``.

The :class:`~actorflow._define._context.Context` class is a definition (a task's parameter annotated with
it asks for one); making one for a task of a running run is the kernel's work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._define import Context

if TYPE_CHECKING:
    from ._runtime import Runtime


def context_for(run: Runtime, task: str, declared: tuple[str, ...]) -> Context:
    """The context of *task*: only the secrets it declared that the run was given."""
    given: Mapping[str, Any] = run.secrets
    return Context(run, task, {k: given[k] for k in declared if k in given})
