"""The three services as real processes on free loopback ports, for end-to-end tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from agent_service.stack import ServiceStack, StackConfig
from tests.support.fake_credentials import UPSTREAM_API_KEY
from tests.support.procs import free_port

TEST_TOKEN = "test-token-0123456789"
PROXY_KEY = "proxy-test-key-0123456789"


def stack_config(
    *,
    llm_base_url: str | None = None,
    model: str | None = None,
    extra_args: dict[str, list[str]] | None = None,
) -> StackConfig:
    """A stack on free loopback ports with test secrets; the demo model streams at full speed."""
    return StackConfig(
        host="127.0.0.1",
        gateway_port=free_port(),
        orchestrator_port=free_port(),
        proxy_port=free_port(),
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
    """Start llm-proxy, orchestrator and gateway; stop them with SIGTERM and check exit 0."""
    config = stack_config(llm_base_url=llm_base_url, model=model, extra_args=extra_args)
    log_path = log_dir / "stack.log"
    with log_path.open("ab") as output:
        stack = ServiceStack(config, output=output)
        stack.start()
        try:
            yield stack
        finally:
            codes = stack.stop()
    assert all(code == 0 for code in codes.values()), (
        f"unclean exits {codes}:\n{log_path.read_text(errors='replace')[-4000:]}"
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
