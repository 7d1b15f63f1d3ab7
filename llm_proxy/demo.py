"""The built-in offline demo model: a deterministic function of the conversation, not an LLM.

It knows one request, "Add logging to <path>", and answers it in four steps,
each decided only by the messages so far:

0. when <path> is a bare file name ("auth.js") and the request offers `list_files`,
   call `list_files` {pattern: name} first and go on with the one file it finds (a
   text says so when it finds none or several);
1. call `read_file` {path};
2. with the content that came back, call `apply_patch` with a git-style diff that
   adds a log line at the start of each function (see `demo_edit`);
3. call `git_diff` {path};
4. say what it did, in a short text.

A tool result that is an error ends the turn with a text that says so. Anything
else gets a text saying that this is the offline demo model and how to connect a
real one. The same conversation always gets the same answer, word for word.
`llm_proxy.function_backend` serves it: this module only decides.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llm_proxy.demo_edit import add_logging
from llm_proxy.function_backend import (
    FunctionReply,
    TextReply,
    ToolCallReply,
    conversation_digest,
    message_text,
)

DEMO_MODEL = "demo"
REQUIRED_TOOLS = ("read_file", "apply_patch")
CHECK_TOOL = "git_diff"
DISCOVERY_TOOL = "list_files"

_REQUEST = re.compile(
    r"^\s*add\s+logging\s+to\s+(?:[`'\"](?P<quoted>[^`'\"]+)[`'\"]|(?P<bare>\S+?))[.!?]*\s*$",
    re.IGNORECASE,
)

OFFLINE_HELP = (
    "I am the offline demo model built into agent-service, not a language model, so I cannot "
    'follow free-form requests. I know one task: try "Add logging to src/app.js" (or any '
    ".py, .js or .ts file of your workspace) and I will read the file, patch it and show the "
    "git diff. To work with a real model, restart agent-service with --llm-base-url <an "
    "OpenAI-compatible URL>, --llm-api-key <its key> and --model <its model name>, for example "
    "--llm-base-url http://localhost:11434/v1 --model qwen2.5-coder for a local Ollama."
)


@dataclass(frozen=True)
class _ToolStep:
    name: str
    output: dict[str, Any] | None
    error: str | None


def demo_reply(messages: Sequence[Mapping[str, Any]], tools: Collection[str]) -> FunctionReply:
    """The demo model's next move in this conversation, given the tool names it may call."""
    last_user = _last_user_index(messages)
    if last_user is None:
        return TextReply(OFFLINE_HELP)
    path = requested_path(message_text(messages[last_user]))
    if path is None:
        return TextReply(OFFLINE_HELP)
    missing = [name for name in REQUIRED_TOOLS if name not in tools]
    if missing:
        return TextReply(
            f"I can add logging to {path}, but only with the tools {', '.join(REQUIRED_TOOLS)}; "
            f"this request does not offer {', '.join(missing)}. I am the offline demo model, "
            "so I cannot do it another way."
        )
    steps = _tool_steps(messages[last_user + 1 :])
    call_id = _call_id(messages)
    failed = next((step for step in steps if step.error is not None), None)
    if failed is not None:
        return TextReply(
            f"The {failed.name} tool failed ({failed.error}), so I stopped and called no "
            "more tools. I am the offline demo model and cannot work around a failure."
        )
    if "/" not in path and DISCOVERY_TOOL in tools:
        if not steps:
            return ToolCallReply(call_id, DISCOVERY_TOOL, json.dumps({"pattern": path}))
        found = _listed_paths(steps[0])
        if len(found) != 1:
            return _not_one_file(path, found)
        path, steps = found[0], steps[1:]
    if not steps:
        return ToolCallReply(call_id, "read_file", json.dumps({"path": path}))
    read = next((step for step in steps if step.name == "read_file"), None)
    content = read.output.get("content") if read and read.output else None
    if not isinstance(content, str):
        return TextReply(f"The read_file tool returned no content for {path}, so I stopped.")
    patch = add_logging(path, content)
    if patch is None:
        return TextReply(
            f"I read {path}, but the offline demo model only knows how to add logging to "
            "Python, JavaScript and TypeScript files. Connect a real model (--llm-base-url, "
            "--llm-api-key, --model) for anything else."
        )
    if not patch.diff:
        return TextReply(
            f"I read {path} and found no function without a log line at its start, so there "
            "is nothing to change."
        )
    last = steps[-1].name
    if last == "read_file":
        return ToolCallReply(call_id, "apply_patch", json.dumps({"diff": patch.diff}))
    if last == "apply_patch" and CHECK_TOOL in tools:
        return ToolCallReply(call_id, CHECK_TOOL, json.dumps({"path": path}))
    if last not in ("apply_patch", CHECK_TOOL):
        return TextReply(f"I did not expect a {last} call in this task, so I stopped.")
    names = ", ".join(patch.functions)
    count = len(patch.functions)
    checked = " and checked it with git diff" if last == CHECK_TOOL else ""
    return TextReply(
        f"Done. I added a log line at the start of {count} "
        f"{'function' if count == 1 else 'functions'} in {path} ({names}), applied the "
        f"patch{checked}. I am the offline demo model: this edit follows a fixed recipe, not "
        "an understanding of your code."
    )


def _listed_paths(step: _ToolStep) -> list[str]:
    """The paths a `list_files` result names."""
    files = step.output.get("files") if step.output else None
    if not isinstance(files, list):
        return []
    return [
        entry["path"]
        for entry in files
        if isinstance(entry, dict) and isinstance(entry.get("path"), str)
    ]


def _not_one_file(name: str, found: list[str]) -> TextReply:
    if not found:
        return TextReply(
            f"I looked for a file named {name} with list_files and found none in the "
            "workspace (ignored files are not listed), so I changed nothing."
        )
    return TextReply(
        f"Several files are named {name}: {', '.join(found)}. Tell me which one, for example "
        f'"Add logging to {found[0]}", and I will add logging to it.'
    )


def requested_path(text: str) -> str | None:
    """The <path> of an "Add logging to <path>" request, relative and without `./`."""
    match = _REQUEST.match(text)
    if match is None:
        return None
    path = (match.group("quoted") or match.group("bare")).strip()
    while path.startswith("./"):
        path = path[2:]
    return path or None


def _last_user_index(messages: Sequence[Mapping[str, Any]]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "user":
            return index
    return None


def _tool_steps(messages: Sequence[Mapping[str, Any]]) -> list[_ToolStep]:
    """The tool calls made since the user spoke, each with its result if one came back."""
    results = {
        message.get("tool_call_id"): message_text(message)
        for message in messages
        if message.get("role") == "tool"
    }
    steps = []
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            output, error = _tool_outcome(results.get(call.get("id")))
            steps.append(_ToolStep(str(function.get("name")), output, error))
    return steps


def _tool_outcome(result: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """(output, None) for a result, (None, reason) for an error or a missing result."""
    if result is None:
        return None, "no result came back"
    try:
        parsed = json.loads(result)
    except ValueError:
        return {"content": result}, None
    if not isinstance(parsed, dict):
        return {"content": result}, None
    error = parsed.get("error")
    if error is not None:
        if isinstance(error, dict):
            code, message = error.get("code"), error.get("message")
            return None, ": ".join(str(part) for part in (code, message) if part) or "error"
        return None, str(error)
    return parsed, None


def _call_id(messages: Sequence[Mapping[str, Any]]) -> str:
    return f"call_demo_{len(messages)}_{conversation_digest(messages)[:8]}"
