"""apply_patch through the real services: a model sends a unified diff or a V4A patch, the IDE applies it.

The upstream is a fake OpenAI endpoint scripted to answer the user's message with one
apply_patch call (the format named in the message), then with a text. A refused patch
must reach the model as the IDE reported it: code, message and details unchanged.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_service.stack import StackConfig
from ide_client.sample import create_sample_workspace
from ide_client.tools import ToolRunner
from ide_client.workspace import Workspace
from tests.support.fake_upstream import FakeUpstream, Step, text_stream, tool_call_stream
from tests.support.stack import running_stack
from tests.support.wsclient import Frame, ProtocolClient
from wire import ToolCall, encode

LOGIN_CONTEXT = """\
 function login(users, username, password) {
+  console.log("login", username);
   const user = users.get(username);
"""
DIFFS = {
    "unified": f"```diff\n--- a/src/auth.js\n+++ b/src/auth.js\n@@\n{LOGIN_CONTEXT}```\n",
    "v4a": f"*** Begin Patch\n*** Update File: src/auth.js\n@@\n{LOGIN_CONTEXT}*** End Patch\n",
    "stale": "--- a/src/auth.js\n+++ b/src/auth.js\n@@ -10,2 +10,3 @@\n"
    " function login(users, username, pass) {\n+  console.log(1);\n   const user = users.get(username);\n",
}


def script(request: dict[str, Any]) -> list[Step]:
    messages = request["messages"]
    if messages[-1]["role"] == "tool":
        return text_stream("Done.", usage=(10, 2))
    user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    return tool_call_stream([("apply_patch", json.dumps({"diff": DIFFS[user]}))], usage=(9, 4))


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(script) as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream
) -> Iterator[StackConfig]:
    with running_stack(
        tmp_path_factory.mktemp("patch-stack"), llm_base_url=upstream.base_url, model="fake-model"
    ) as config:
        yield config


def reference_ide(workspace: Path) -> Any:
    """Answers tool calls as `agent-service ide` does: the tool_result frame ToolRunner builds."""
    runner = ToolRunner(Workspace(workspace))

    async def answer(frame: Frame) -> Frame:
        result = await asyncio.to_thread(runner.answer, ToolCall.model_validate(frame))
        answered: Frame = json.loads(encode(result))
        return answered

    return answer


async def run(stack: StackConfig, workspace: Path, message: str) -> list[Frame]:
    client = await ProtocolClient.connect(stack.gateway_url, stack.token)
    await client.hello()
    frames = await client.run_turn(message, reference_ide(workspace))
    await client.close()
    return frames


@pytest.mark.parametrize("form", ["unified", "v4a"])
async def test_model_patch_in_either_format_is_applied_through_the_whole_stack(
    stack: StackConfig, tmp_path: Path, form: str
) -> None:
    workspace = create_sample_workspace(tmp_path / "ws")

    frames = await run(stack, workspace, form)

    assert [f["tool"] for f in frames if f["type"] == "tool_call"] == ["apply_patch"]
    assert not [f for f in frames if f["type"] == "error"]
    assert (
        'function login(users, username, password) {\n  console.log("login", username);'
        in (workspace / "src" / "auth.js").read_text()
    )
    assert frames[-1] == {**frames[-1], "type": "state", "state": "done"}


async def test_refused_patch_reaches_the_model_with_its_message_and_details_unchanged(
    stack: StackConfig, upstream: FakeUpstream, tmp_path: Path
) -> None:
    workspace = create_sample_workspace(tmp_path / "ws")
    original = (workspace / "src" / "auth.js").read_text()
    expected = ToolRunner(Workspace(workspace)).answer(
        ToolCall(
            session_id="s",
            seq=1,
            call_id="c",
            tool="apply_patch",
            arguments={"diff": DIFFS["stale"]},
        )
    )
    assert expected.error is not None and expected.error.details is not None

    frames = await run(stack, workspace, "stale")

    [error] = [f for f in frames if f["type"] == "error"]
    assert error["source"] == "ide" and error["code"] == "patch_failed"
    assert (workspace / "src" / "auth.js").read_text() == original
    request = next(
        r.json for r in reversed(upstream.requests) if r.json["messages"][-1]["role"] == "tool"
    )
    answer = json.loads(request["messages"][-1]["content"])
    assert answer == {"error": expected.error.model_dump()}
    conflict = answer["error"]["details"]["conflicts"][0]
    assert conflict["line"] == 10 and conflict["kind"] == "context_mismatch"
    assert "first difference at line 10" in answer["error"]["message"]
