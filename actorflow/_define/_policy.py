"""Failure policies: what the supervisor does when a task's code raises on an item.

Pass one to a decorator: ``@flow.task(on_error=af.Retry(attempts=3))``. The default is
:class:`Fail`.
"""

from __future__ import annotations

import random

import attrs


@attrs.frozen
class Fail:
    """Fail the run with :class:`TaskFailed` (the default)."""


@attrs.frozen
class DeadLetter:
    """Record the item and its error as a dead letter and go on with the next item.

    Dead letters are kept in the run's store (``actorflow dead-letters --store DIR``) and on the
    result (``result.dead_letters``).
    """


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value}")


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value}")


@attrs.frozen
class Retry:
    """Call the task again on the same item, waiting longer each time.

    Args:
        attempts: how many tries in all (the first one included).
        backoff: seconds to wait before the first retry; doubled for each further retry.
        max_backoff: the longest wait.
        jitter: a random fraction (0..1) of the wait added or removed, so retries spread out.
        then: what to do when the attempts are used up: :class:`Fail` (default) or
            :class:`DeadLetter`.
    """

    attempts: int = attrs.field(default=3, validator=_positive)
    backoff: float = attrs.field(default=0.1, validator=_non_negative)
    max_backoff: float = attrs.field(default=10.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.1, validator=_non_negative)
    then: Fail | DeadLetter = attrs.field(factory=Fail)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number *retry* (1-based)."""
        base = min(self.max_backoff, self.backoff * (2 ** (retry - 1)))
        if self.jitter:
            base *= 1 + random.uniform(-self.jitter, self.jitter)
        return float(max(0.0, base))


@attrs.frozen
class Restart:
    """Restart the actor (fresh handler and call) and try the item again, OTP style.

    At most *intensity* restarts within *period* seconds; one more escalates: the run fails.

    Args:
        intensity: the most restarts allowed in any window of *period* seconds.
        period: the window, in seconds.
    """

    intensity: int = attrs.field(default=3, validator=_positive)
    period: float = attrs.field(default=60.0, validator=_non_negative)


Policy = Fail | DeadLetter | Retry | Restart
