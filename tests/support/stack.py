"""The three services as real processes on free loopback ports, for end-to-end tests.

With `AGENT_TEST_TOPOLOGY=cluster` (`make test-cluster`) every stack is a cluster instead:
a nats-server, the llm-proxy, three orchestrators and two gateways on the broker. The
config's gateway port is the first gateway's, its orchestrator port the first orchestrator's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from agent_service.local_nats import running_nats
from agent_service.stack import ClusterShape, ServiceStack, StackConfig
from tests.support.fake_credentials import UPSTREAM_API_KEY
from tests.support.procs import distinct_ports

TEST_TOKEN = "test-token-0123456789"
PROXY_KEY = "proxy-test-key-0123456789"
CLUSTER = os.environ.get("AGENT_TEST_TOPOLOGY") == "cluster"
CLUSTER_GATEWAYS = 2
CLUSTER_ORCHESTRATORS = 3
# the orchestrators' default lease: the protocol's tests kill no owner, and a 200 MB answer
# can keep a busy node's loop from beating for over a second on two shared cores
CLUSTER_LEASE_TTL_S = 3.0
# services importing at once on a shared two-core machine
CLUSTER_STARTUP_S = 90.0


def stack_config(
    *,
    llm_base_url: str | None = None,
    model: str | None = None,
    extra_args: dict[str, list[str]] | None = None,
) -> StackConfig:
    """A stack on free loopback ports with test secrets; the demo model streams at full speed."""
    gateway_port, orchestrator_port, proxy_port = distinct_ports(3)
    return StackConfig(
        host="127.0.0.1",
        gateway_port=gateway_port,
        orchestrator_port=orchestrator_port,
        proxy_port=proxy_port,
        token=TEST_TOKEN,
        internal_token="internal-test-secret",
        proxy_key=PROXY_KEY,
        llm_base_url=llm_base_url,
        llm_api_key=UPSTREAM_API_KEY if llm_base_url else None,
        model=model,
        extra_args={"llm-proxy": ["--demo-delay-ms", "0"], **(extra_args or {})},
    )


@contextlib.contextmanager
def started_stack(
    log_dir: Path,
    *,
    llm_base_url: str | None = None,
    model: str | None = None,
    extra_args: dict[str, list[str]] | None = None,
) -> Iterator[ServiceStack]:
    """Start llm-proxy, orchestrator and gateway (or the cluster); stop them with SIGTERM and
    check exit 0."""
    config = stack_config(llm_base_url=llm_base_url, model=model, extra_args=extra_args)
    log_path = log_dir / "stack.log"
    with log_path.open("ab") as output, contextlib.ExitStack() as broker:
        stack = ServiceStack(config, output=output)
        if CLUSTER:
            (port,) = distinct_ports(1, avoid=(config.gateway_port, config.orchestrator_port))
            nats = broker.enter_context(running_nats(log_dir / "nats", config.host, port, output))
            stack.start_cluster(cluster_shape(config, nats.url), CLUSTER_STARTUP_S)
        else:
            stack.start()
        try:
            yield stack
        finally:
            codes = stack.stop()
    assert all(code == 0 for code in codes.values()), (
        f"unclean exits {codes}:\n{log_path.read_text(errors='replace')[-4000:]}"
    )


def cluster_shape(config: StackConfig, broker: str) -> ClusterShape:
    """The test cluster around `config`'s ports: its gateway and orchestrator ports first."""
    more = distinct_ports(
        CLUSTER_GATEWAYS + CLUSTER_ORCHESTRATORS - 2,
        avoid=(config.gateway_port, config.orchestrator_port, config.proxy_port),
    )
    return ClusterShape(
        broker,
        (config.orchestrator_port, *more[: CLUSTER_ORCHESTRATORS - 1]),
        (config.gateway_port, *more[CLUSTER_ORCHESTRATORS - 1 :]),
        ("--lease-ttl", str(CLUSTER_LEASE_TTL_S)),
    )


@contextlib.contextmanager
def running_stack(
    log_dir: Path,
    *,
    llm_base_url: str | None = None,
    model: str | None = None,
    extra_args: dict[str, list[str]] | None = None,
) -> Iterator[StackConfig]:
    """`started_stack`, for tests that only need to know where it listens."""
    with started_stack(
        log_dir, llm_base_url=llm_base_url, model=model, extra_args=extra_args
    ) as stack:
        yield stack.config
