"""What a process costs, read from the kernel: its CPU time, its resident memory, its children."""

from __future__ import annotations

import os
import time
from pathlib import Path

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_PROC = Path("/proc")


def cpu_ns(pid: int) -> int:
    """CPU time of all the process's threads, user and system, in nanoseconds.

    It is /proc/<pid>/stat's utime + stime read through the process's CPU clock
    (clock_getcpuclockid), which counts nanoseconds instead of 10 ms ticks.
    """
    return time.clock_gettime_ns(((~pid) << 3) | 2)


def rss_bytes(pid: int) -> int:
    """Resident set size."""
    resident_pages = (_PROC / str(pid) / "statm").read_text().split()[1]
    return int(resident_pages) * PAGE_BYTES


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid`."""
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        if int(stat[stat.rindex(b")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def command_line(pid: int) -> list[str]:
    """The process's argv."""
    return (_PROC / str(pid) / "cmdline").read_bytes().decode().split("\0")[:-1]
