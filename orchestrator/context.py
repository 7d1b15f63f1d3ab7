"""The context budget of a session, as pure functions: sizes, elision and what to compact.

The core calls these before every model request; they read the conversation and
return a new view of it, never touch it, and depend on nothing but their
arguments, so replay and the property tests cover every decision.

Sizes are in tokens. Without a tokenizer (none that needs no network exists for
every model), a message is estimated at one token per `CHARS_PER_TOKEN`
characters plus a per-message overhead: deliberately more than real tokenizers
count for prose and code, so that an estimate errs on the safe side. Once the
upstream reports `usage.prompt_tokens` for a request, the next one is sized as
that figure plus the estimate of what was appended since.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 3
# What eliding saves is counted at more characters per token: the savings err low.
SAVED_CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
SUMMARY_PREFIX = "Summary of the earlier conversation (it was compacted to fit the context window):"
DROPPED_NOTICE = (
    "[{count} earlier messages were dropped to fit the context window: summarising them "
    "failed. Ask the user if you need what they said.]"
)
COMPACTION_PROMPT = (
    "You summarise a coding session between a user and a coding agent so that the agent can "
    "go on without the full history. Keep: what the user asked for, the decisions made, the "
    "files read or changed and what matters in them, the commands or patches that failed and "
    "why, and what is left to do. Be concise and factual; write plain text, no preamble."
)

# Context windows of well-known models, matched by name prefix (longest first).
KNOWN_WINDOWS: dict[str, int] = {
    "gpt-4.1": 1_047_576,
    "gpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "o1": 200_000,
    "o3": 200_000,
    "o4-mini": 200_000,
    "claude": 200_000,
    "gemma-3-270m": 32_768,
    "gemma3-270m": 32_768,
    "gemma3": 131_072,
    "gemma-3": 131_072,
    "llama3.1": 131_072,
    "llama-3.1": 131_072,
    "qwen2.5-coder": 32_768,
    "mistral": 32_768,
    "demo": 32_768,
}
FALLBACK_WINDOW = 8_192


def default_window(model: str | None) -> int:
    """The context window of a known model name (its last path part), else `FALLBACK_WINDOW`."""
    name = (model or "").rsplit("/", 1)[-1].lower()
    for prefix in sorted(KNOWN_WINDOWS, key=len, reverse=True):
        if name.startswith(prefix):
            return KNOWN_WINDOWS[prefix]
    return FALLBACK_WINDOW


def chars_tokens(chars: int) -> int:
    """Estimated tokens of text this many characters long (counted without joining it)."""
    return math.ceil(chars / CHARS_PER_TOKEN)


def text_tokens(text: str) -> int:
    """Estimated tokens of a piece of text."""
    return chars_tokens(len(text))


def message_tokens(message: dict[str, Any]) -> int:
    """Estimated tokens of one chat message, its tool calls included."""
    tokens = MESSAGE_OVERHEAD_TOKENS + text_tokens(message.get("content") or "")
    for call in message.get("tool_calls") or ():
        function = call["function"]
        tokens += MESSAGE_OVERHEAD_TOKENS + text_tokens(function["name"] + function["arguments"])
    return tokens


def tools_tokens(tools: Sequence[dict[str, Any]]) -> int:
    """Estimated tokens of the tool schemas sent with a request.

    Requests share a few tool lists (`wire.openai_tools` builds each set once), so each
    list is measured once and remembered by identity, not encoded again for every request.
    """
    if not tools:
        return 0
    known = _MEASURED_TOOLS.get(id(tools))
    if known is not None and known[0] is tools:
        return known[1]
    tokens = text_tokens(json.dumps(list(tools), separators=(",", ":")))
    if isinstance(tools, tuple) and len(_MEASURED_TOOLS) < _MEASURED_TOOLS_KEPT:
        _MEASURED_TOOLS[id(tools)] = (tools, tokens)
    return tokens


# Tool lists measured so far, by id (each kept alive here, so no id is reused): (list, tokens)
_MEASURED_TOOLS: dict[int, tuple[Sequence[dict[str, Any]], int]] = {}
_MEASURED_TOOLS_KEPT = 64


@dataclass(frozen=True, slots=True)
class Anchor:
    """What the upstream counted for an earlier request: its view and `prompt_tokens`."""

    view: tuple[dict[str, Any], ...]
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class Sized:
    """A request's size, and whether it rests on the upstream's count or only on estimates."""

    tokens: int
    estimated: bool


def request_size(
    view: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]], anchor: Anchor | None
) -> Sized:
    """The prompt size of a request of `view` with `tools`.

    When `view` starts with the anchor's view, the upstream's count for it plus the estimate
    of the messages appended since; otherwise an estimate of the whole request.
    """
    if anchor is not None and anchor.prompt_tokens > 0:
        known = len(anchor.view)
        if len(view) >= known and tuple(view[:known]) == anchor.view:
            added = sum(message_tokens(m) for m in view[known:])
            return Sized(anchor.prompt_tokens + added, estimated=False)
    tokens = tools_tokens(tools) + sum(message_tokens(m) for m in view)
    return Sized(tokens, estimated=True)


@dataclass(frozen=True, slots=True)
class Fitted:
    """The view to send: the conversation with old tool outputs elided until it fits."""

    view: tuple[dict[str, Any], ...]
    size: Sized
    elided: frozenset[str]
    elided_count: int

    def fits(self, limit: int) -> bool:
        """The request is within `limit` tokens by the estimate."""
        return self.size.tokens <= limit


def latest_step_start(messages: Sequence[dict[str, Any]]) -> int:
    """Index of the newest assistant message with tool calls (its answers are kept verbatim)."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index]["role"] == "assistant" and messages[index].get("tool_calls"):
            return index
    return len(messages)


def elision_marker(name: str, arguments: str, size: int) -> str:
    """What replaces an old tool output: the tool, its arguments and the size, so the model
    can ask again."""
    return (
        f"[output elided to fit the context window: {name}({arguments}) returned {size} "
        "characters; call the tool again if you need them]"
    )


def fit(
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]],
    limit: int,
    anchor: Anchor | None,
    elided: frozenset[str] = frozenset(),
) -> Fitted:
    """Elide tool outputs, oldest first, until the request fits `limit` or none is left that
    may go: the outputs of the newest step are always kept.

    Outputs in `elided` (by call id) stay elided, so that a request starts with the one
    before it and the upstream's count for that one still applies.
    """
    calls = _calls_by_id(messages)
    newest_step = latest_step_start(messages)
    view = list(messages)
    for index in range(newest_step):
        if view[index]["role"] == "tool" and view[index]["tool_call_id"] in elided:
            view[index] = _elided(view[index], calls)
    size = request_size(view, tools, anchor)
    tokens, now_elided = size.tokens, set(elided)
    for index in range(newest_step):
        if tokens <= limit:
            break
        message = view[index]
        if message["role"] != "tool" or message["tool_call_id"] in now_elided:
            continue
        replaced = _elided(message, calls)
        if len(replaced["content"]) >= len(message["content"]):
            continue
        tokens -= math.floor(
            (len(message["content"]) - len(replaced["content"])) / SAVED_CHARS_PER_TOKEN
        )
        view[index] = replaced
        now_elided.add(message["tool_call_id"])
    if tokens != size.tokens:
        size = Sized(tokens, estimated=True)
    count = sum(1 for m in view if m["role"] == "tool" and m["tool_call_id"] in now_elided)
    return Fitted(tuple(view), size, frozenset(now_elided), count)


def _elided(message: dict[str, Any], calls: dict[str, tuple[str, str]]) -> dict[str, Any]:
    name, arguments = calls.get(message["tool_call_id"], ("tool", "{}"))
    marker = elision_marker(name, arguments, len(message["content"]))
    if len(marker) >= len(message["content"]):
        return message
    return {**message, "content": marker}


def compaction_boundary(messages: Sequence[dict[str, Any]]) -> int:
    """Index of the newest user message: what lies between the system message and it (earlier
    turns, whole, every call answered) may be summarised. 1 when there is nothing to compact."""
    for index in range(len(messages) - 1, 0, -1):
        if messages[index]["role"] == "user":
            return index
    return 1


def worth_compacting(
    messages: Sequence[dict[str, Any]], boundary: int, summary_tokens: int
) -> bool:
    """The part before `boundary` is larger than a summary of it may be: compacting it saves
    tokens (a session whose older part is already a summary is not compacted again)."""
    return sum(message_tokens(m) for m in messages[1:boundary]) > summary_tokens


def compaction_request(
    older: Sequence[dict[str, Any]], limit: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The conversation asking the model to summarise `older`, clipped to fit `limit`.

    Tool outputs are shown as their elision markers (the summary needs what was done, not
    every byte read); the oldest lines are cut first when the rest is still too long.
    """
    calls = _calls_by_id(older)
    lines = []
    for message in older:
        role = message["role"]
        if role == "tool":
            name, arguments = calls.get(message["tool_call_id"], ("tool", "{}"))
            head = message["content"][:400]
            lines.append(
                f"tool {name}({arguments}) returned {len(message['content'])} chars: {head}"
            )
            continue
        if message.get("content"):
            lines.append(f"{role}: {message['content']}")
        for call in message.get("tool_calls") or ():
            lines.append(
                f"{role} called {call['function']['name']}({call['function']['arguments']})"
            )
    budget = max(0, limit - message_tokens({"content": COMPACTION_PROMPT}) - 64) * CHARS_PER_TOKEN
    transcript = "\n".join(lines)
    if len(transcript) > budget:
        transcript = "[older lines cut]\n" + transcript[len(transcript) - budget :]
    return (
        {"role": "system", "content": COMPACTION_PROMPT},
        {"role": "user", "content": f"Summarise this session so far:\n\n{transcript}"},
    )


def summary_message(summary: str) -> dict[str, Any]:
    """The user-role message that stands for the compacted part of the conversation."""
    return {"role": "user", "content": f"{SUMMARY_PREFIX}\n{summary}"}


def dropped_message(count: int) -> dict[str, Any]:
    """What stands for the older part when summarising it failed."""
    return {"role": "user", "content": DROPPED_NOTICE.format(count=count)}


def _calls_by_id(messages: Sequence[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    calls: dict[str, tuple[str, str]] = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            calls[call["id"]] = (call["function"]["name"], call["function"]["arguments"])
    return calls
