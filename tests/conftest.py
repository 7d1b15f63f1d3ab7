"""Test-wide guards: nothing in the suite may reach a host outside this machine, or write to
the user's state directory."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_service.stack import ServiceStack
from tests.support.fake_upstream import FakeUpstream
from tests.support.stack import CLUSTER, started_stack

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if isinstance(address, tuple) and self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            is_local = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            is_local = False
        if not is_local:
            raise ConnectionRefusedError(f"tests may not reach {host}: loopback only")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _block_outside_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(autouse=True, scope="session")
def _user_state_in_a_temporary_directory(tmp_path_factory: pytest.TempPathFactory) -> None:
    """What the IDE remembers between runs (sessions, prompt history) stays out of the home
    directory of whoever runs the tests; child processes inherit it."""
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("user-state"))


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    """A fake OpenAI-compatible upstream for the module's tests; each test scripts it."""
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def recorded_stack(tmp_path: Path, upstream: FakeUpstream) -> Iterator[ServiceStack]:
    """The three services on the fake upstream, the orchestrator recording transcripts (so a
    restarted one rebuilds its sessions; on a cluster the broker's log does that) and
    stopping without a drain."""
    store = [] if CLUSTER else ["--transcripts", str(tmp_path / "t.db")]
    orchestrator_args = [*store, "--drain-timeout", "0"]
    with started_stack(
        tmp_path,
        llm_base_url=upstream.base_url,
        model="fake-model",
        extra_args={"orchestrator": orchestrator_args},
    ) as stack:
        yield stack
