"""`agent-service cluster`: a NATS server, orchestrators and gateways as real processes, one
turn through one gateway, resumed through the other, a service setting passed on, and a
clean stop on each signal."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import ROOT, free_port, free_run, wait_healthy
from tests.support.stack import TEST_TOKEN
from tests.support.wsclient import ProtocolClient


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGHUP])
async def test_cluster_serves_through_every_gateway_and_stops_cleanly(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    gateway = free_run(2)
    orchestrator = free_run(2, {gateway, gateway + 1})
    taken = {gateway, gateway + 1, orchestrator, orchestrator + 1}
    proxy, nats = (next(p for p in iter(free_port, 0) if p not in taken) for _ in range(2))
    log = (tmp_path / "cluster.log").open("wb")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "agent_service", "cluster"),
            *("--gateways", "2", "--orchestrators", "2", "--token", TEST_TOKEN),
            *("--gateway-port", str(gateway), "--orchestrator-port", str(orchestrator)),
            *("--proxy-port", str(proxy), "--nats-port", str(nats)),
            *("--store", str(tmp_path / "store")),
            # a service's own setting, passed on to each of its processes
            *("--max-sessions-per-token", "1"),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    try:
        for port in (gateway, gateway + 1):
            wait_healthy(f"http://127.0.0.1:{port}/healthz", 120, process=process)
        first = await ProtocolClient.connect(f"ws://127.0.0.1:{gateway}/v1/ws", TEST_TOKEN)
        session = await first.hello()
        frames = await first.run_turn("hello")
        last_seq = max(frame["seq"] for frame in frames if "seq" in frame)
        await first.close()
        second = await ProtocolClient.connect(f"ws://127.0.0.1:{gateway + 1}/v1/ws", TEST_TOKEN)
        reply = await second.hello(session["session_id"], last_seq)
        assert reply["resumed"] is True and reply["last_seq"] == last_seq
        await second.close()
        third = await ProtocolClient.connect(f"ws://127.0.0.1:{gateway + 1}/v1/ws", TEST_TOKEN)
        await third.send({"type": "hello", "protocol": 1})
        refused = await third.receive()
        assert (refused["type"], refused["code"]) == ("error", "session_limit"), refused
        await third.close()
    finally:
        process.send_signal(stop_signal)
        code = process.wait(60)
    assert code == 0, (tmp_path / "cluster.log").read_text()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", nats), timeout=1):
        pass
    assert (tmp_path / "store" / "jetstream").is_dir()
