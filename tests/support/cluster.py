"""Gateways and orchestrators as real processes on one NATS server, for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import signal
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from agent_service.local_nats import LocalNats
from tests.support.procs import ServiceProcess, distinct_ports, free_port
from tests.support.stack import CLUSTER_STARTUP_S, TEST_TOKEN

LEASE_TTL_S = 2.0


@dataclass
class Cluster:
    """The processes of one cluster, by role."""

    nats: LocalNats
    gateways: list[ServiceProcess] = field(default_factory=list)
    orchestrators: list[ServiceProcess] = field(default_factory=list)
    token: str = TEST_TOKEN

    def gateway_url(self, index: int) -> str:
        """Where an IDE connects to gateway `index`."""
        return (
            self.gateways[index]
            .health_url.replace("http://", "ws://")
            .replace(  # type: ignore[union-attr]
                "/healthz", "/v1/ws"
            )
        )

    def sessions_of(self, orchestrator: ServiceProcess) -> int:
        """How many sessions the orchestrator's /healthz says it holds."""
        assert orchestrator.health_url is not None
        with urllib.request.urlopen(orchestrator.health_url, timeout=5) as response:
            return int(json.loads(response.read())["sessions"])


def orchestrator_process(
    work_dir: Path,
    nats_url: str,
    upstream_url: str,
    number: int,
    *extra: str,
    port: int | None = None,
    lease_ttl_s: float = LEASE_TTL_S,
) -> ServiceProcess:
    """One orchestrator node on the broker, talking to the fake upstream."""
    port = port or free_port()
    return ServiceProcess(
        [
            "orchestrator",
            "--orchestrator-port",
            str(port),
            "--broker",
            nats_url,
            "--lease-ttl",
            str(lease_ttl_s),
            "--llm-base-url",
            upstream_url,
            "--model",
            "fake-model",
            "--drain-timeout",
            "0",
            *extra,
        ],
        f"http://127.0.0.1:{port}/healthz",
        work_dir / f"orchestrator-{number}.log",
        health_timeout=CLUSTER_STARTUP_S,
    )


def gateway_process(
    work_dir: Path, nats_url: str, number: int, port: int | None = None
) -> ServiceProcess:
    """One gateway on the broker."""
    port = port or free_port()
    return ServiceProcess(
        [
            "gateway",
            "--gateway-port",
            str(port),
            "--broker",
            nats_url,
            "--proxy-url",
            "none",
        ],
        f"http://127.0.0.1:{port}/healthz",
        work_dir / f"gateway-{number}.log",
        {"AGENT_TOKEN": TEST_TOKEN},
        health_timeout=CLUSTER_STARTUP_S,
    )


@contextlib.contextmanager
def running_cluster(
    work_dir: Path,
    nats: LocalNats,
    upstream_url: str,
    gateways: int = 2,
    orchestrators: int = 3,
    orchestrator_args: tuple[str, ...] = (),
    orchestrator_broker: str | None = None,
    lease_ttl_s: float = LEASE_TTL_S,
) -> Iterator[Cluster]:
    """Start the orchestrators (each with `orchestrator_args`, on `orchestrator_broker` when
    given: the same server by another way), then the gateways; stop all with SIGTERM at the
    end (a process a test killed or stopped is left as it is)."""
    cluster = Cluster(nats)
    try:
        ports = distinct_ports(orchestrators + gateways, avoid=(nats.port,))
        cluster.orchestrators = [
            orchestrator_process(
                work_dir,
                orchestrator_broker or nats.url,
                upstream_url,
                number,
                *orchestrator_args,
                port=ports.pop(),
                lease_ttl_s=lease_ttl_s,
            )
            for number in range(orchestrators)
        ]
        cluster.gateways = [
            gateway_process(work_dir, nats.url, number, port=ports.pop())
            for number in range(gateways)
        ]
        with ThreadPoolExecutor(len(cluster.orchestrators) + gateways) as pool:
            list(pool.map(ServiceProcess.start, [*cluster.orchestrators, *cluster.gateways]))
        yield cluster
    finally:
        for process in [*cluster.gateways, *cluster.orchestrators]:
            if process.proc is not None and process.proc.poll() is None:
                process.proc.send_signal(signal.SIGCONT)
                process.stop()
