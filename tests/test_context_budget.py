"""The context budget's pure parts: windows by model name, sizes, elision, what to compact,
and how an upstream's refusal of a too-long request is told apart from other 400s."""

from __future__ import annotations

import json

import pytest

from orchestrator.context import (
    FALLBACK_WINDOW,
    Anchor,
    compaction_boundary,
    default_window,
    fit,
    message_tokens,
    request_size,
)
from orchestrator.llm_client import is_context_overflow


@pytest.mark.parametrize(
    ("model", "window"),
    [
        ("gpt-4o-mini", 128_000),
        ("gpt-4.1-2025-04-14", 1_047_576),
        ("gpt-4", 8_192),
        ("gemma-3-270m", 32_768),
        ("library/llama3.1:8b", 131_072),
        ("something-new", FALLBACK_WINDOW),
        (None, FALLBACK_WINDOW),
    ],
)
def test_known_model_names_have_their_window_and_others_the_fallback(
    model: str | None, window: int
) -> None:
    assert default_window(model) == window


def conversation(outputs: int, size: int) -> list[dict[str, object]]:
    messages: list[dict[str, object]] = [{"role": "system", "content": "s"}]
    for n in range(outputs):
        messages.append({"role": "user", "content": f"read f{n}"})
        call = {
            "id": f"c{n}",
            "type": "function",
            "function": {"name": "read_file", "arguments": json.dumps({"path": f"f{n}"})},
        }
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"c{n}", "content": "x" * size})
    return messages


def test_a_request_is_sized_from_the_upstream_count_plus_what_was_added() -> None:
    messages = conversation(2, 300)
    anchor = Anchor(tuple(messages[:4]), 120)

    size = request_size(messages, (), anchor)

    assert not size.estimated
    assert size.tokens == 120 + sum(message_tokens(m) for m in messages[4:])
    assert request_size(messages, (), None).estimated


def test_old_outputs_are_elided_oldest_first_and_the_newest_step_is_kept() -> None:
    messages = conversation(3, 3000)

    fitted = fit(messages, (), 1500, None)

    contents = [m["content"] for m in fitted.view if m["role"] == "tool"]
    assert contents[0].startswith(
        '[output elided to fit the context window: read_file({"path": "f0"})'
    )
    assert "returned 3000 characters" in contents[0]
    assert contents[2] == "x" * 3000
    assert fitted.elided_count == sum(1 for c in contents if c.startswith("[output elided"))
    assert fitted.elided <= {"c0", "c1"}


def test_elided_outputs_stay_elided_so_requests_keep_their_prefix() -> None:
    messages = conversation(3, 3000)
    first = fit(messages, (), 1500, None)

    again = fit(messages, (), 10_000, None, first.elided)

    assert again.view == first.view


def test_the_part_before_the_newest_user_message_is_what_compaction_may_replace() -> None:
    messages = conversation(3, 10)

    assert compaction_boundary(messages) == 7
    assert compaction_boundary(messages[:4]) == 1


@pytest.mark.parametrize(
    ("body", "overflow"),
    [
        ({"error": {"code": "context_length_exceeded", "message": "too long"}}, True),
        ({"error": {"message": "This model's maximum context length is 8192 tokens"}}, True),
        ({"error": {"message": "Requested tokens (9000) exceed context window of 8192"}}, True),
        ({"error": {"code": "invalid_request_error", "message": "tools[0] is invalid"}}, False),
        ("prompt is too long", True),
        (None, False),
    ],
)
def test_a_context_overflow_is_told_apart_from_other_bad_requests(
    body: object, overflow: bool
) -> None:
    assert is_context_overflow(body) is overflow
