"""Clickstream: events fed through the gateway, counted per user per 10 s window and per session.

A service pushes :class:`Click` events into a running flow (``run.feed("clicks")``; the monitor's
websocket ``push`` messages reach the same feed). Two window tasks read them on **event time**
(each click's ``at``, seconds), with a lateness of 2 s:

- ``requests``: clicks per user per 10 s tumbling window, ``[0, 10)``, ``[10, 20)``, …;
- ``sessions``: clicks per user session, a session ending after 30 s without a click of that user.

Both print each window as it closes (the watermark, the largest ``at`` seen minus 2 s, passed its
end); the windows still open when the feed closes are printed at the end. A click more than 2 s
behind the watermark is late: it goes to dead letters and is counted, never dropped silently.

Run it with ``python examples/clickstream.py [CLICKS]`` (default 300 simulated clicks).
"""

from __future__ import annotations

import operator
import sys
from operator import attrgetter

import attrs
import trio

import actorflow as af


@attrs.frozen
class Click:
    """One request of one user: its path and its event time in seconds."""

    user: str
    path: str
    at: float


flow = af.Flow("clickstream")
flow.source(af.external_source(Click, name="clicks"))

user, at = attrgetter("user"), attrgetter("at")


@flow.window(af.Tumbling(10), key=user, time=at, lateness=2, init=0)
def requests(acc: int, clicks: Click) -> int:
    """Clicks per user per 10 s window."""
    return acc + 1


@flow.window(af.Session(30), key=user, time=at, lateness=2, init=0, merge=operator.add)
def sessions(acc: int, clicks: Click) -> int:
    """Clicks per user session (30 s of silence ends one)."""
    return acc + 1


@flow.sink
def show_requests(requests: af.WindowResult) -> None:
    """Print a closed 10 s window."""
    print(f"requests  {requests.key:<6} [{requests.start:6.0f}, {requests.end:6.0f})  {requests.value:3d} clicks")


@flow.sink
def show_sessions(sessions: af.WindowResult) -> None:
    """Print a closed session."""
    print(f"session   {sessions.key:<6} [{sessions.start:6.1f}, {sessions.end:6.1f})  {sessions.value:3d} clicks")


def simulate(n: int) -> list[Click]:
    """*n* clicks of four users, about 1.5 s apart, now and then a few seconds out of order and
    now and then far behind (late); deterministic, so the output is the same every time."""
    users = ["ana", "bo", "cy", "dee"]
    clicks = []
    for i in range(n):
        u = users[(i * 7 + i // 13) % len(users)]
        at = i * 1.5 + (i // 40) * 60.0  # every 40 clicks a 60 s lull: sessions end
        if i % 17 == 5:
            at -= 1.5  # a little out of order: within the lateness
        if i % 97 == 50:
            at -= 20.0  # far behind: late
        clicks.append(Click(u, f"/page/{i % 5}", at))
    return clicks


async def serve(clicks: list[Click]) -> af.RunResult:
    """Start the flow, push *clicks* through its feed as a service would, close it, return the result."""
    async with af.open_run(flow) as run:
        feed = run.feed("clicks")
        for click in clicks:
            await feed.send(click)
        feed.close()
        return await run.result()


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 300
    result = trio.run(serve, simulate(n))
    stats = result.summary.tasks
    print(f"{n} clicks: {stats['requests'].items_out} windows, {stats['sessions'].items_out} sessions, "
          f"{stats['requests'].late} late click(s) set aside")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
