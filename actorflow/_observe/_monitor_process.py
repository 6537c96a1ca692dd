"""The ``process_*`` metrics Prometheus clients export (CPU, memory, file descriptors, start time),
read from ``/proc`` where there is one, and pushing a run's final metrics to a Pushgateway.

Names and units follow Prometheus' own process collector, so dashboards built for it work.
"""

from __future__ import annotations

import base64
import os
import resource
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

#: (name, type, help, value) of one process metric.
ProcessSample = tuple[str, str, str, float]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_start_time() -> float | None:
    """Seconds since the epoch at which this process started (from ``/proc``), or None."""
    try:
        stat = Path("/proc/self/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        started = int(fields[19]) / _TICKS  # field 22 of the file: start time in clock ticks after boot
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return int(line.split()[1]) + started
    except (OSError, ValueError, IndexError):
        return None
    return None


_START = _proc_start_time() or time.time()


def process_samples() -> list[ProcessSample]:
    """This process's CPU time, memory, open and allowed file descriptors and start time."""
    times = os.times()
    out: list[ProcessSample] = [
        ("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
         times.user + times.system),
        ("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", _START),
    ]
    try:
        pages = Path("/proc/self/statm").read_text().split()
        out.append(("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", int(pages[0]) * _PAGE))
        out.append(("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                    int(pages[1]) * _PAGE))
    except (OSError, ValueError, IndexError):  # no /proc: the peak resident size is what there is
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out.append(("process_resident_memory_bytes", "gauge", "Resident memory size in bytes (peak).", peak))
    try:
        out.append(("process_open_fds", "gauge", "Number of open file descriptors.", len(os.listdir("/proc/self/fd"))))
    except OSError:
        pass
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY:
        out.append(("process_max_fds", "gauge", "Maximum number of open file descriptors.", soft))
    return out


class PushError(OSError):
    """The Pushgateway could not be reached or refused the metrics."""


def push_url(gateway: str, job: str, grouping: dict[str, str]) -> str:
    """The Pushgateway URL for *job* and its grouping labels: ``{gateway}/metrics/job/{job}/{k}/{v}...``."""
    base = gateway if "://" in gateway else f"http://{gateway}"
    path = "/metrics/job/" + quote(job, safe="")
    for key, value in grouping.items():
        if "/" in value or not value:  # the Pushgateway's own encoding for such values
            encoded = base64.urlsafe_b64encode(value.encode()).decode() or "="
            path += f"/{quote(key, safe='')}@base64/{encoded}"
        else:
            path += f"/{quote(key, safe='')}/{quote(value, safe='')}"
    return base.rstrip("/") + path


def push_text(gateway: str, text: str, job: str, grouping: dict[str, str], timeout: float = 10.0) -> int:
    """PUT *text* (the exposition) to the Pushgateway at *gateway*; returns the HTTP status.

    Blocking: call it in a thread (``trio.to_thread.run_sync``).

    Raises:
        PushError: the gateway cannot be reached or answered with an error status.
    """
    url = push_url(gateway, job, grouping)
    request = urllib.request.Request(
        url, data=text.encode(), method="PUT", headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        raise PushError(f"the Pushgateway at {url} refused the metrics: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PushError(f"cannot push metrics to the Pushgateway at {url}: {reason}") from None
