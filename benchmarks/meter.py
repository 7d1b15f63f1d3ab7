"""CPU time and resident memory of the processes on a path, over a measured window."""

from __future__ import annotations

import time

from benchmarks.procfs import cpu_ns, rss_bytes

CLIENT = "bench client"


class CpuWindow:
    """The CPU time each process, and this bench client, spends from now until `read()`."""

    def __init__(self, processes: dict[str, int]) -> None:
        self._processes = dict(processes)
        self._started = {name: cpu_ns(pid) for name, pid in self._processes.items()}
        self._client_started = time.process_time_ns()

    def read(self) -> dict[str, int]:
        """Nanoseconds of CPU per process so far, the client's under `CLIENT`."""
        used = {name: cpu_ns(pid) - self._started[name] for name, pid in self._processes.items()}
        used[CLIENT] = time.process_time_ns() - self._client_started
        return used


def rss_of(processes: dict[str, int]) -> dict[str, int]:
    """Resident bytes of each process."""
    return {name: rss_bytes(pid) for name, pid in processes.items()}
