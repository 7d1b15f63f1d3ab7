"""The orchestrator's model client against a fake upstream on a real socket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.commands import StartLlmRequest
from orchestrator.events import Event, LlmStreamEnded, LlmTextDelta
from orchestrator.llm_client import LlmClient, LlmSettings
from tests.support.fake_upstream import FAKE_MODEL, FakeUpstream, text_stream


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(lambda request: text_stream("One answer, in words.")) as fake:
        yield fake


async def test_llm_client_streams_consecutive_requests_over_one_pooled_connection(
    upstream: FakeUpstream,
) -> None:
    # A connection dropped after each answer costs a connect here and an accept in the
    # proxy before every first token: the answer's body is read to its end, so it is reused.
    client = LlmClient(LlmSettings(base_url=upstream.base_url, model=FAKE_MODEL))
    try:
        for number in range(1, 4):
            fed: list[Event] = []
            request = StartLlmRequest(f"t{number}.1", ({"role": "user", "content": "hi"},), ())
            await client.stream(request, fed.append)
            text = "".join(event.text for event in fed if isinstance(event, LlmTextDelta))
            assert text == "One answer, in words."
            assert isinstance(fed[-1], LlmStreamEnded) and fed[-1].finish_reason == "stop"
    finally:
        await client.close()
    assert len(upstream.requests) == 3
    assert upstream.connections_accepted == 1
