"""The llm-proxy as a real process for tests, with a routes file written for it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import ServiceProcess, free_port, running


@dataclass(frozen=True)
class RunningProxy:
    """Where a started proxy listens."""

    port: int
    service: ServiceProcess

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as `base_url`."""
        return f"http://127.0.0.1:{self.port}/v1"


@contextlib.contextmanager
def running_proxy(
    work_dir: Path,
    *flags: str,
    routes: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[RunningProxy]:
    """Run `agent-service llm-proxy` with `flags` (and `routes` as its TOML routes file).

    The demo model speaks without delay; the process must exit 0 on SIGTERM.
    """
    port = free_port()
    args = ["llm-proxy", "--proxy-port", str(port), "--demo-delay-ms", "0", *flags]
    if routes is not None:
        routes_path = work_dir / f"routes-{port}.toml"
        routes_path.write_text(routes, encoding="utf-8")
        args += ["--routes", str(routes_path)]
    service = ServiceProcess(
        args,
        f"http://127.0.0.1:{port}/healthz",
        work_dir / f"llm-proxy-{port}.log",
        env or {},
    )
    with running(service):
        yield RunningProxy(port, service)
