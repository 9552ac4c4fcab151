"""The benchmarks' view of processes: CPU time and memory from ``/proc`` (Linux only)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def process_tree(pid: int) -> list[int]:
    """``pid`` and every descendant of it alive now."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(c) for c in children.read_text().split())
            except OSError:
                continue
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid``'s process tree so far (``/proc/<pid>/stat``)."""
    return sum(own_cpu_seconds(each) for each in process_tree(pid))


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` alone (all its threads; 0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def sched_seconds(pid: int) -> tuple[float, float]:
    """Seconds every thread of ``pid`` ran so far, and waited for a CPU while runnable
    (``/proc/<pid>/task/*/schedstat``; threads that exited are not counted)."""
    ran = waited = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            on_cpu, queued, _ = stat.read_text().split()
        except (OSError, ValueError):
            continue
        ran += int(on_cpu)
        waited += int(queued)
    return ran / 1e9, waited / 1e9


def rss_mb(pid: int) -> float:
    """``VmRSS`` of ``pid`` in MB (0 when unavailable)."""
    return _status_mb(pid, "VmRSS")


def peak_rss_mb(pid: int) -> float:
    """``VmHWM`` (peak RSS) of ``pid`` in MB (0 when unavailable)."""
    return _status_mb(pid, "VmHWM")


def _status_mb(pid: int, key: str) -> float:
    """The ``key:`` line of ``/proc/<pid>/status`` (kB there) in MB; 0 when unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far, all cores (``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of named process trees, and of the whole machine, since :meth:`start`."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self._pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._start: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        taken = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        taken["machine"] = machine_busy_seconds()
        return taken

    def start(self) -> None:
        self._start = self._now()

    def spent(self) -> dict[str, float]:
        """CPU seconds per name (and ``machine``) since :meth:`start`, to 0.01 s."""
        now = self._now()
        return {name: round(now[name] - self._start.get(name, 0.0), 2) for name in now}
