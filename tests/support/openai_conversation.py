"""Checks that a conversation is one the OpenAI Chat Completions API accepts.

The rules are the API's: valid roles with their own fields only, every assistant
`tool_calls` entry answered by exactly one `tool` message right after it and in its
order, no `tool` message without its call, function names matching
`^[a-zA-Z0-9_-]{1,64}$` and arguments that parse as a JSON object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

_FIELDS = {
    "system": {"role", "content"},
    "user": {"role", "content"},
    "assistant": {"role", "content", "tool_calls"},
    "tool": {"role", "tool_call_id", "content"},
}
_FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def assert_openai_conversation(
    messages: Sequence[dict[str, Any]], *, step_open: bool = False
) -> None:
    """Fail with the first broken rule. `step_open`: the last calls may still await results."""
    json.dumps(list(messages))
    assert messages and messages[0]["role"] == "system", "a conversation starts with its system"
    unanswered: list[str] = []
    seen_call_ids: set[str] = set()
    for index, message in enumerate(messages):
        where = f"message {index} ({message.get('role')!r})"
        role = message.get("role")
        assert role in _FIELDS, f"{where}: unknown role"
        assert set(message) <= _FIELDS[role], (
            f"{where}: stray fields {set(message) - _FIELDS[role]}"
        )
        if role == "tool":
            assert unanswered, f"{where}: a tool message without its call"
            assert message["tool_call_id"] == unanswered[0], (
                f"{where}: answers {message['tool_call_id']}, expected {unanswered[0]}"
            )
            assert isinstance(message["content"], str), f"{where}: content must be text"
            unanswered.pop(0)
            continue
        assert not unanswered, f"{where}: calls {unanswered} were not answered before it"
        if role == "assistant":
            unanswered = _check_assistant(message, where, seen_call_ids)
        else:
            assert isinstance(message.get("content"), str), f"{where}: content must be text"
    if not step_open:
        assert not unanswered, f"calls {unanswered} are never answered"


def assert_request_conversation(messages: Sequence[dict[str, Any]]) -> None:
    """A conversation sent to the model: whole, and ending with what the model must answer."""
    assert_openai_conversation(messages)
    assert messages[-1]["role"] in ("user", "tool"), "a request ends with a user or tool message"


def _check_assistant(message: dict[str, Any], where: str, seen_call_ids: set[str]) -> list[str]:
    content = message.get("content")
    assert content is None or isinstance(content, str), f"{where}: content must be text or null"
    if "tool_calls" not in message:
        assert isinstance(content, str), f"{where}: an assistant message needs content or calls"
        return []
    calls = message["tool_calls"]
    assert isinstance(calls, list) and calls, f"{where}: tool_calls must be a non-empty list"
    ids = []
    for call in calls:
        assert set(call) == {"id", "type", "function"}, f"{where}: call fields {set(call)}"
        assert call["type"] == "function", f"{where}: call type {call['type']!r}"
        assert set(call["function"]) == {"name", "arguments"}, f"{where}: function fields"
        name, arguments = call["function"]["name"], call["function"]["arguments"]
        assert _FUNCTION_NAME.fullmatch(name), f"{where}: function name {name!r}"
        assert isinstance(json.loads(arguments), dict), f"{where}: arguments {arguments!r}"
        assert call["id"] not in seen_call_ids, f"{where}: call id {call['id']} reused"
        seen_call_ids.add(call["id"])
        ids.append(call["id"])
    return ids
