"""The machine a run measured: CPUs, CPU model, memory, Python."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def describe() -> dict[str, Any]:
    """What the figures of a run depend on besides the code."""
    cpuinfo = _fields(Path("/proc/cpuinfo"))
    meminfo = _fields(Path("/proc/meminfo"))
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": cpuinfo.get("model name", platform.processor() or "unknown"),
        "memory": meminfo.get("MemTotal", "unknown"),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def _fields(path: Path) -> dict[str, str]:
    """`name: value` lines of a /proc file, the first of each name."""
    fields: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, value = line.partition(":")
            fields.setdefault(name.strip(), value.strip())
    return fields
