"""The offline demo model as a pure function of the conversation, played against a real git workspace."""

from __future__ import annotations

import ast
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import wire
from ide_client.sample import create_sample_workspace
from ide_client.tools import ToolRunner
from ide_client.workspace import Workspace
from llm_proxy.chunks import DONE_FRAME
from llm_proxy.demo import DEMO_MODEL, demo_reply
from llm_proxy.demo_edit import add_logging
from llm_proxy.function_backend import FunctionBackend, TextReply, ToolCallReply
from tests.support.proxy_process import RunningProxy, running_proxy

TOOLS = frozenset({"read_file", "write_file", "apply_patch", "git_diff"})

AUTH_JS = """\
const crypto = require('crypto');

function hashPassword(password) {
  return crypto.createHash('sha256').update(password).digest('hex');
}

export async function login(user, password) { // checks the password
  if (!user) {
    throw new Error('no user');
  }
  return user.hash === hashPassword(password);
}

const logout = (session) => {
  session.active = false;
};

class Session {
  constructor(user) {
    this.user = user;
  }

  refresh() {
    return new Session(this.user);
  }
}

module.exports = { login, logout, Session };
"""

ACCOUNTS_PY = '''\
"""Accounts and their passwords."""

from __future__ import annotations

import hashlib


def hash_password(password: str) -> str:
    """Hash a password."""
    return hashlib.sha256(password.encode()).hexdigest()


class Account:
    def __init__(self, name):
        self.name = name

    async def check(
        self, password,
    ):
        return hash_password(password) == "x"

    def quick(self): return 1
'''

# No newline at the end of the file, and its last lines are in a hunk.
CLOCK_TS = "export function now(): number {\n\treturn Date.now();\n}"


def git(workspace: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=workspace, input=stdin, capture_output=True, text=True, check=False
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "test@example.com")
    git(tmp_path, "config", "user.name", "Test")
    return tmp_path


def commit(workspace: Path, path: str, content: str) -> None:
    target = workspace / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content.encode())
    git(workspace, "add", path)
    git(workspace, "commit", "-qm", f"add {path}")


def run_tool(workspace: Path, call: ToolCallReply) -> dict[str, Any]:
    """What the IDE would answer, done with real files and real git."""
    arguments = json.loads(call.arguments)
    if call.name == "read_file":
        target = workspace / arguments["path"]
        if not target.is_file():
            return {
                "error": {"code": "not_found", "message": f"{arguments['path']} does not exist"}
            }
        return {"content": target.read_bytes().decode()}
    if call.name == "apply_patch":
        check = git(workspace, "apply", "--check", "-", stdin=arguments["diff"])
        if check.returncode != 0:
            return {"error": {"code": "patch_failed", "message": check.stderr}}
        git(workspace, "apply", "-", stdin=arguments["diff"])
        return {"files": ["applied"]}
    if call.name == "git_diff":
        return {"diff": git(workspace, "diff", "--", arguments["path"]).stdout}
    raise AssertionError(f"the demo model called {call.name}")


def play_turn(
    workspace: Path, request: str
) -> tuple[list[ToolCallReply], list[dict[str, Any]], TextReply]:
    """Run one user turn to its end: the model's calls, the tools' results, its final text."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": request}]
    calls: list[ToolCallReply] = []
    results: list[dict[str, Any]] = []
    for step in range(10):
        reply = demo_reply(messages, TOOLS)
        if isinstance(reply, TextReply):
            return calls, results, reply
        calls.append(reply)
        result = run_tool(workspace, reply)
        results.append(result)
        ide_id = f"ide-chosen id {step}"  # ids are arbitrary strings
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": ide_id,
                        "type": "function",
                        "function": {"name": reply.name, "arguments": reply.arguments},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": ide_id, "content": json.dumps(result)})
    raise AssertionError("the demo model never finished its turn")


def test_demo_model_reads_patches_and_diffs_when_asked_to_add_logging_to_a_js_file(
    workspace: Path,
) -> None:
    commit(workspace, "src/auth.js", AUTH_JS)

    calls, results, summary = play_turn(workspace, "Add logging to src/auth.js")

    assert [call.name for call in calls] == ["read_file", "apply_patch", "git_diff"]
    assert json.loads(calls[0].arguments) == {"path": "src/auth.js"}
    diff = json.loads(calls[1].arguments)["diff"]
    assert diff.startswith(
        "diff --git a/src/auth.js b/src/auth.js\n--- a/src/auth.js\n+++ b/src/auth.js\n@@ "
    )
    assert "error" not in results[1], results[1]
    assert json.loads(calls[2].arguments) == {"path": "src/auth.js"}
    added = [line for line in results[2]["diff"].splitlines() if line.startswith("+ ")]
    assert len(added) == 5
    lines = (workspace / "src/auth.js").read_text().splitlines()
    for header, log in [
        ("function hashPassword(password) {", "  console.log('hashPassword called');"),
        ("export async function login(user, password) { // checks the password", None),
        ("const logout = (session) => {", "  console.log('logout called');"),
        ("  constructor(user) {", "    console.log('constructor called');"),
        ("  refresh() {", "    console.log('refresh called');"),
    ]:
        following = lines[lines.index(header) + 1]
        assert following == (log or "  console.log('login called');")
    assert lines[lines.index("  if (!user) {") + 1] == "    throw new Error('no user');"
    assert "src/auth.js" in summary.text
    assert "hashPassword, login, logout, constructor, refresh" in summary.text
    assert "offline demo model" in summary.text


def test_demo_model_adds_a_logger_and_logs_each_function_when_asked_about_a_python_file(
    workspace: Path,
) -> None:
    commit(workspace, "pkg/accounts.py", ACCOUNTS_PY)

    calls, results, summary = play_turn(workspace, "add logging to `pkg/accounts.py`.")

    assert [call.name for call in calls] == ["read_file", "apply_patch", "git_diff"]
    assert "error" not in results[1], results[1]
    source = (workspace / "pkg/accounts.py").read_text()
    tree = ast.parse(source)
    compile(source, "accounts.py", "exec")  # `from __future__` must still come first
    assert "import logging\n" in source
    assert "\nlogger = logging.getLogger(__name__)\n" in source
    functions = {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    assert ast.get_docstring(functions["hash_password"]) == "Hash a password."
    for name, qualname in [
        ("hash_password", "hash_password"),
        ("__init__", "Account.__init__"),
        ("check", "Account.check"),
    ]:
        body = functions[name].body
        first = body[1] if ast.get_docstring(functions[name]) else body[0]
        assert ast.unparse(first) == f"logger.info('{qualname} called')"
    assert "logger" not in ast.unparse(functions["quick"])
    assert "hash_password, Account.__init__, Account.check" in summary.text


def test_demo_model_patches_a_file_without_a_final_newline_when_its_end_changes(
    workspace: Path,
) -> None:
    commit(workspace, "clock.ts", CLOCK_TS)

    calls, results, _ = play_turn(workspace, "Add logging to ./clock.ts")

    assert "error" not in results[1], results[1]
    assert "\\ No newline at end of file" in json.loads(calls[1].arguments)["diff"]
    assert (workspace / "clock.ts").read_text() == (
        'export function now(): number {\n\tconsole.log("now called");\n\treturn Date.now();\n}'
    )


def test_demo_model_keeps_windows_line_endings_when_the_file_uses_them(workspace: Path) -> None:
    commit(workspace, "win.js", "function a() {\r\n  return 1;\r\n}\r\n")

    _, results, _ = play_turn(workspace, "Add logging to win.js")

    assert "error" not in results[1], results[1]
    assert (workspace / "win.js").read_bytes() == (
        b'function a() {\r\n  console.log("a called");\r\n  return 1;\r\n}\r\n'
    )


def test_demo_model_stops_and_says_so_when_read_file_fails(workspace: Path) -> None:
    calls, _, summary = play_turn(workspace, "Add logging to src/missing.js")

    assert [call.name for call in calls] == ["read_file"]
    assert "read_file" in summary.text
    assert "not_found" in summary.text


def test_demo_model_stops_and_says_so_when_the_patch_is_refused() -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Add logging to a.js"}]
    answers = [
        {"content": "function a() {\n  return 1;\n}\n"},
        {"error": {"code": "patch_failed", "message": "hunk 1 does not apply"}},
    ]
    for index, answer in enumerate(answers):
        reply = demo_reply(messages, TOOLS)
        assert isinstance(reply, ToolCallReply)
        call = {"id": str(index), "type": "function"}
        call["function"] = {"name": reply.name, "arguments": reply.arguments}
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": str(index), "content": json.dumps(answer)})

    reply = demo_reply(messages, TOOLS)

    assert isinstance(reply, TextReply)
    assert "apply_patch" in reply.text
    assert "patch_failed: hunk 1 does not apply" in reply.text


def test_demo_model_changes_nothing_when_every_function_already_logs(workspace: Path) -> None:
    commit(workspace, "src/auth.js", AUTH_JS)
    play_turn(workspace, "Add logging to src/auth.js")
    git(workspace, "commit", "-qam", "logged")

    calls, _, summary = play_turn(workspace, "Add logging to src/auth.js")

    assert [call.name for call in calls] == ["read_file"]
    assert "nothing to change" in summary.text


def test_demo_model_explains_its_limits_when_the_language_is_not_supported(
    workspace: Path,
) -> None:
    commit(workspace, "README.md", "# Title\n")

    calls, _, summary = play_turn(workspace, "Add logging to README.md")

    assert [call.name for call in calls] == ["read_file"]
    assert "--llm-base-url" in summary.text


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "Write me a poem"}],
        [{"role": "system", "content": "You are helpful."}],
        [{"role": "user", "content": [{"type": "text", "text": "refactor everything"}]}],
    ],
)
def test_demo_model_says_what_it_is_and_how_to_connect_a_real_one_when_asked_anything_else(
    messages: list[dict[str, Any]],
) -> None:
    reply = demo_reply(messages, TOOLS)

    assert isinstance(reply, TextReply)
    assert "offline demo model" in reply.text
    for flag in ("--llm-base-url", "--llm-api-key", "--model"):
        assert flag in reply.text


def test_demo_model_asks_for_the_tools_it_needs_when_the_request_offers_none() -> None:
    reply = demo_reply([{"role": "user", "content": "Add logging to a.py"}], frozenset())

    assert isinstance(reply, TextReply)
    assert "read_file, apply_patch" in reply.text


def test_demo_model_skips_the_check_when_git_diff_is_not_offered() -> None:
    tools = frozenset({"read_file", "apply_patch"})
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Add logging to a.py"}]
    while isinstance(reply := demo_reply(messages, tools), ToolCallReply):
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": reply.call_id,
                        "type": "function",
                        "function": {"name": reply.name, "arguments": reply.arguments},
                    }
                ],
            }
        )
        output = {"content": "def f():\n    return 1\n"} if reply.name == "read_file" else {}
        messages.append(
            {"role": "tool", "tool_call_id": reply.call_id, "content": json.dumps(output)}
        )
    assert [m["tool_calls"][0]["function"]["name"] for m in messages if m.get("tool_calls")] == [
        "read_file",
        "apply_patch",
    ]
    assert reply.text.startswith("Done.") and "git diff" not in reply.text


def test_demo_model_answers_a_conversation_the_same_way_every_time() -> None:
    messages = [{"role": "user", "content": "Add logging to src/auth.js"}]

    assert demo_reply(messages, TOOLS) == demo_reply(list(messages), set(TOOLS))


def test_demo_edit_supports_no_other_language_than_python_and_javascript() -> None:
    assert add_logging("main.go", "package main\n\nfunc main() {\n}\n") is None


async def test_demo_backend_streams_a_tool_call_whose_fragments_join_to_its_arguments() -> None:
    request = {
        "model": "demo",
        "messages": [
            {"role": "user", "content": "Add logging to a/very/long/path/to/some/file.js"}
        ],
        "tools": [{"type": "function", "function": {"name": name}} for name in TOOLS],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    frames = [frame async for frame in FunctionBackend(demo_reply, DEMO_MODEL).stream(request)]

    assert frames[-1] == DONE_FRAME
    chunks = [json.loads(frame[len(b"data: ") :]) for frame in frames[:-1]]
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    fragments = [delta["tool_calls"][0]["function"]["arguments"] for delta in deltas[1:-1]]
    assert len(fragments) > 2
    expected = demo_reply(request["messages"], TOOLS)
    assert isinstance(expected, ToolCallReply)
    assert "".join(fragments) == expected.arguments
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["estimated"] is True


# ---- finding the file by its name, through the proxy ------------------------------------------


def chat_through_proxy(
    base_url: str, workspace: Path, request: str, tools: list[dict[str, Any]]
) -> tuple[list[tuple[str, dict[str, Any]]], str]:
    """Play a turn against the proxy's demo model, the IDE's tools run by the reference IDE."""
    runner = ToolRunner(Workspace(workspace))
    by_llm_name = {spec.llm_name: spec.ide_name for spec in wire.TOOLS}
    messages: list[dict[str, Any]] = [{"role": "user", "content": request}]
    calls: list[tuple[str, dict[str, Any]]] = []
    with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        for _ in range(10):
            choice = client.chat.completions.create(
                model="demo", messages=messages, tools=tools
            ).choices[0]
            if not choice.message.tool_calls:
                return calls, choice.message.content or ""
            call = choice.message.tool_calls[0]
            arguments = json.loads(call.function.arguments)
            calls.append((call.function.name, arguments))
            result = runner.answer(
                wire.ToolCall(
                    session_id="s",
                    seq=1,
                    call_id=call.id,
                    tool=by_llm_name[call.function.name],
                    arguments=arguments,
                )
            )
            answer = result.output if result.ok else {"error": result.error.model_dump()}
            messages.append(choice.message.model_dump(exclude_none=True))
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps(answer)}
            )
    raise AssertionError("the demo model never finished its turn")


@pytest.fixture(scope="module")
def demo_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    with running_proxy(tmp_path_factory.mktemp("demo-proxy")) as proxy:
        yield proxy


def test_demo_model_finds_a_bare_file_name_with_list_files_when_the_request_offers_it(
    demo_proxy: RunningProxy, tmp_path: Path
) -> None:
    workspace = create_sample_workspace(tmp_path / "ws")
    tools = [spec.openai_tool() for spec in wire.TOOLS]

    calls, text = chat_through_proxy(
        demo_proxy.base_url, workspace, "Add logging to auth.js", tools
    )

    assert [name for name, _ in calls] == ["list_files", "read_file", "apply_patch", "git_diff"]
    assert calls[0][1] == {"pattern": "auth.js"}
    assert calls[1][1] == {"path": "src/auth.js"}
    assert "console.log" in (workspace / "src" / "auth.js").read_text()
    assert "src/auth.js" in text


def test_demo_model_reads_the_bare_name_as_before_when_list_files_is_not_offered(
    demo_proxy: RunningProxy, tmp_path: Path
) -> None:
    workspace = create_sample_workspace(tmp_path / "ws")

    calls, text = chat_through_proxy(
        demo_proxy.base_url, workspace, "Add logging to auth.js", list(wire.OPENAI_TOOLS)
    )

    assert calls == [("read_file", {"path": "auth.js"})]
    assert "read_file" in text and "not_found" in text


@pytest.mark.parametrize(
    ("extra", "answer"),
    [(None, "found none"), ("lib/auth.js", "Several files are named auth.js")],
    ids=["none", "several"],
)
def test_demo_model_changes_nothing_when_list_files_finds_no_single_file(
    demo_proxy: RunningProxy, tmp_path: Path, extra: str | None, answer: str
) -> None:
    workspace = create_sample_workspace(tmp_path / "ws")
    if extra is None:
        (workspace / "src" / "auth.js").unlink()
    else:
        (workspace / extra).parent.mkdir()
        (workspace / extra).write_text("function a() {}\n")
    tools = [spec.openai_tool() for spec in wire.TOOLS]

    calls, text = chat_through_proxy(
        demo_proxy.base_url, workspace, "Add logging to auth.js", tools
    )

    assert [name for name, _ in calls] == ["list_files"]
    assert answer in text
