"""`agent-service acp` driven by the ACP SDK's client, through the real bridge and stack processes.

The editor (tests/support/acp_editor.py) owns a temporary git workspace and serves it over
`fs/*` and `terminal/*`; the bridge reaches a real gateway, orchestrator and llm-proxy (the
offline demo model) with --url and --token.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from acp import RequestError, image_block, text_block

from agent_service.stack import StackConfig
from ide_client.sample import AUTH_JS, create_sample_workspace
from tests.support.acp_editor import (
    ALLOW_ALWAYS,
    ALLOW_ONCE,
    REJECT_ALWAYS,
    REJECT_ONCE,
    WAIT,
    ScriptedEditor,
    spawn_bridge,
)
from tests.support.fake_upstream import (
    FAKE_MODEL,
    FakeUpstream,
    Step,
    text_stream,
    tool_call_stream,
)
from tests.support.stack import running_stack

DEMO = "Add logging to src/auth.js"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    # The demo model pauses 15 ms a word, so a test can cancel while the answer streams.
    slow = {"llm-proxy": ["--demo-delay-ms", "15"]}
    with running_stack(tmp_path_factory.mktemp("acp-stack"), extra_args=slow) as config:
        yield config


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return create_sample_workspace(tmp_path / "ws")


def bridge_args(stack: StackConfig, *extra: str) -> tuple[str, ...]:
    return ("--url", stack.gateway_url, "--token", stack.token, *extra)


def statuses(editor: ScriptedEditor) -> dict[str, list[str]]:
    """Every tool call's status, in the order the editor saw them."""
    seen: dict[str, list[str]] = {}
    for update in editor.updates:
        if update.session_update in ("tool_call", "tool_call_update") and update.status:
            seen.setdefault(update.tool_call_id, []).append(update.status)
    return seen


def started(editor: ScriptedEditor) -> dict[str, Any]:
    """The `tool_call` updates by tool title."""
    return {update.title: update for update in editor.of_kind("tool_call")}


async def test_editor_completes_the_demo_turn_when_it_allows_the_edit(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    editor = ScriptedEditor(workspace, permission=ALLOW_ONCE)
    async with spawn_bridge(editor, *bridge_args(stack), log_path=tmp_path / "acp.log") as conn:
        session = await conn.new_session(cwd=str(workspace))
        assert session.modes is not None and session.modes.current_mode_id == "ask"
        answer = await conn.prompt(session_id=session.session_id, prompt=[text_block(DEMO)])

    assert answer.stop_reason == "end_turn"
    assert answer.usage is not None and answer.usage.total_tokens > 0
    assert len(editor.of_kind("agent_message_chunk")) > 5, "tokens arrive as separate chunks"
    assert editor.text().startswith("Done. I added a log line")
    auth = str(workspace / "src/auth.js")
    calls = started(editor)
    assert set(calls) == {"Read src/auth.js", "Apply patch", "git diff src/auth.js"}
    assert calls["Read src/auth.js"].kind == "read"
    assert calls["Read src/auth.js"].locations[0].path == auth
    assert calls["Apply patch"].kind == "edit"
    assert calls["git diff src/auth.js"].kind == "execute"
    for history in statuses(editor).values():
        assert history == ["pending", "in_progress", "completed"]
    [asked] = editor.permission_requests
    [diff] = asked.content
    new_text = (workspace / "src/auth.js").read_text()
    assert (diff.type, diff.path, diff.old_text, diff.new_text) == ("diff", auth, AUTH_JS, new_text)
    assert new_text != AUTH_JS and "console.log" in new_text
    writes = [args for method, args in editor.calls if method == "fs/write_text_file"]
    assert writes == [{"path": auth, "content": new_text}], "the file changed through the editor"
    assert any(method == "terminal/create" for method, _ in editor.calls)


async def test_rejected_edit_reaches_the_model_as_rejected_by_user(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    editor = ScriptedEditor(workspace, permission=REJECT_ONCE)
    async with spawn_bridge(editor, *bridge_args(stack), log_path=tmp_path / "acp.log") as conn:
        session = await conn.new_session(cwd=str(workspace))
        answer = await conn.prompt(session_id=session.session_id, prompt=[text_block(DEMO)])

    assert answer.stop_reason == "end_turn"
    assert (workspace / "src/auth.js").read_text() == AUTH_JS
    assert not [call for call in editor.calls if call[0] == "fs/write_text_file"]
    patch_id = started(editor)["Apply patch"].tool_call_id
    assert statuses(editor)[patch_id] == ["pending", "failed"]
    [asked] = editor.permission_requests
    assert asked.tool_call_id == patch_id
    assert [option.kind for option in editor.permission_options[0]] == [
        "allow_once",
        "allow_always",
        "reject_once",
        "reject_always",
    ]
    assert "rejected_by_user: The user declined this change." in editor.text()


async def test_reject_always_makes_the_session_read_only_for_the_service_too(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    editor = ScriptedEditor(workspace, permission=REJECT_ALWAYS)
    async with spawn_bridge(editor, *bridge_args(stack), log_path=tmp_path / "acp.log") as conn:
        session = await conn.new_session(cwd=str(workspace))
        sid = session.session_id
        await conn.prompt(session_id=sid, prompt=[text_block(DEMO)])
        assert editor.of_kind("current_mode_update")[-1].current_mode_id == "read-only"
        await conn.prompt(session_id=sid, prompt=[text_block(DEMO)])

    assert len(editor.permission_requests) == 1, "read-only: no write is even proposed"
    assert "does not offer apply_patch" in editor.text()
    assert (workspace / "src/auth.js").read_text() == AUTH_JS


async def test_modes_refuse_or_skip_the_question_and_allow_always_is_remembered(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    (workspace / "src/util.js").write_text("function one() {\n  return 1;\n}\n")
    (workspace / "src/more.js").write_text("function two() {\n  return 2;\n}\n")
    editor = ScriptedEditor(workspace, permission=ALLOW_ALWAYS)
    async with spawn_bridge(editor, *bridge_args(stack), log_path=tmp_path / "acp.log") as conn:
        session = await conn.new_session(cwd=str(workspace))
        sid = session.session_id

        await conn.set_session_mode(session_id=sid, mode_id="read-only")
        refused = await conn.prompt(session_id=sid, prompt=[text_block(DEMO)])
        assert refused.stop_reason == "end_turn"
        assert (workspace / "src/auth.js").read_text() == AUTH_JS
        assert "does not offer apply_patch" in editor.text(), "the service offers no write tool"
        assert editor.permission_requests == []
        assert editor.of_kind("current_mode_update")[-1].current_mode_id == "read-only"

        await conn.set_session_mode(session_id=sid, mode_id="ask")
        await conn.prompt(session_id=sid, prompt=[text_block(DEMO)])
        assert len(editor.permission_requests) == 1, "ask mode asks"
        await conn.prompt(session_id=sid, prompt=[text_block("Add logging to src/util.js")])
        assert len(editor.permission_requests) == 1, "allow always is remembered"

        await conn.set_session_mode(session_id=sid, mode_id="auto-edit")
        await conn.prompt(session_id=sid, prompt=[text_block("Add logging to src/more.js")])
        assert len(editor.permission_requests) == 1

        with pytest.raises(RequestError):
            await conn.set_session_mode(session_id=sid, mode_id="yolo")
    for name in ("auth.js", "util.js", "more.js"):
        assert "console.log" in (workspace / "src" / name).read_text(), name


async def test_cancel_mid_stream_answers_cancelled_and_the_session_goes_on(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    editor = ScriptedEditor(workspace)
    async with spawn_bridge(editor, *bridge_args(stack), log_path=tmp_path / "acp.log") as conn:
        session = await conn.new_session(cwd=str(workspace))
        sid = session.session_id
        prompt = asyncio.create_task(conn.prompt(session_id=sid, prompt=[text_block("hello")]))
        while len(editor.of_kind("agent_message_chunk")) < 3:
            await asyncio.sleep(0.01)
        await conn.cancel(session_id=sid)
        answer = await prompt
        assert answer.stop_reason == "cancelled"
        cut = editor.text()
        assert cut and "how to connect a real one" not in cut

        again = await conn.prompt(session_id=sid, prompt=[text_block("hello")])
        assert again.stop_reason == "end_turn"
        assert editor.text().endswith("for a local Ollama.")


async def test_cancel_while_asking_permission_writes_nothing(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    editor = ScriptedEditor(workspace, permission=WAIT)
    async with spawn_bridge(editor, *bridge_args(stack), log_path=tmp_path / "acp.log") as conn:
        session = await conn.new_session(cwd=str(workspace))
        sid = session.session_id
        prompt = asyncio.create_task(conn.prompt(session_id=sid, prompt=[text_block(DEMO)]))
        await asyncio.wait_for(editor.permission_asked.wait(), timeout=30)
        await conn.cancel(session_id=sid)
        editor.cancel_pending_permissions()
        answer = await prompt
    assert answer.stop_reason == "cancelled"
    assert (workspace / "src/auth.js").read_text() == AUTH_JS
    patch_id = started(editor)["Apply patch"].tool_call_id
    assert statuses(editor)[patch_id][-1] == "failed"


async def test_load_replays_the_history_as_updates_in_a_new_bridge(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    first = ScriptedEditor(workspace)
    async with spawn_bridge(first, *bridge_args(stack), log_path=tmp_path / "a.log") as conn:
        session = await conn.new_session(cwd=str(workspace))
        sid = session.session_id
        await conn.prompt(session_id=sid, prompt=[text_block(DEMO)])
        streamed = first.text()
        first.updates.clear()
        loaded = await conn.load_session(cwd=str(workspace), session_id=sid)
        assert loaded is not None and loaded.modes is not None
        [user] = first.of_kind("user_message_chunk")
        assert user.content.text == DEMO, "this bridge sent the prompt, so it replays it"
        assert first.text() == streamed

    later = ScriptedEditor(workspace)
    async with spawn_bridge(later, *bridge_args(stack), log_path=tmp_path / "b.log") as conn:
        await conn.load_session(cwd=str(workspace), session_id=sid)
        replayed = later.text()
        assert replayed == streamed
        assert later.of_kind("user_message_chunk") == [], "the events do not carry the prompt"
        assert set(started(later)) == {"Read src/auth.js", "Apply patch", "git diff src/auth.js"}
        assert all(history[-1] == "completed" for history in statuses(later).values())
        assert not later.calls, "a replay runs no tool"

        answer = await conn.prompt(
            session_id=sid, prompt=[text_block("Add logging to src/auth.js")]
        )
        assert answer.stop_reason == "end_turn"
        assert "nothing to change" in later.text()[len(replayed) :]

        with pytest.raises(RequestError):
            await conn.load_session(cwd=str(workspace), session_id="s-does-not-exist")


async def test_editor_without_terminals_is_never_asked_for_git_diff(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    editor = ScriptedEditor(workspace, terminals=False)
    async with spawn_bridge(editor, *bridge_args(stack), log_path=tmp_path / "acp.log") as conn:
        session = await conn.new_session(cwd=str(workspace))
        answer = await conn.prompt(session_id=session.session_id, prompt=[text_block(DEMO)])
    assert answer.stop_reason == "end_turn"
    assert "console.log" in (workspace / "src/auth.js").read_text()
    assert "git diff src/auth.js" not in started(editor)  # not offered to the model at all
    assert not [call for call in editor.calls if call[0].startswith("terminal/")]


async def test_prompt_with_an_image_is_refused_and_nothing_runs(
    stack: StackConfig, workspace: Path, tmp_path: Path
) -> None:
    editor = ScriptedEditor(workspace)
    async with spawn_bridge(editor, *bridge_args(stack), log_path=tmp_path / "acp.log") as conn:
        session = await conn.new_session(cwd=str(workspace))
        with pytest.raises(RequestError) as refused:
            await conn.prompt(
                session_id=session.session_id,
                prompt=[text_block(DEMO), image_block("aGVsbG8=", "image/png")],
            )
    assert "text and resource links only, not image" in str(refused.value.data)
    assert editor.updates == [] and editor.calls == []


async def test_write_file_creates_through_the_editor_and_paths_stay_in_the_workspace(
    upstream: FakeUpstream, workspace: Path, tmp_path: Path
) -> None:
    calls = [
        ("write_file", json.dumps({"path": "notes/new.md", "content": "hello\n"})),
        ("write_file", json.dumps({"path": "../escape.txt", "content": "x"})),
    ]

    def script(request: dict[str, Any]) -> list[Step]:
        if any(message["role"] == "tool" for message in request["messages"]):
            return text_stream("Wrote one file.", usage=(30, 4))
        return tool_call_stream(calls, usage=(20, 8))

    upstream.reset(script)
    editor = ScriptedEditor(workspace, permission=ALLOW_ONCE)
    with running_stack(tmp_path, llm_base_url=upstream.base_url, model=FAKE_MODEL) as stack:
        args = bridge_args(stack, "--context-window", "1000")
        async with spawn_bridge(editor, *args, log_path=tmp_path / "acp.log") as conn:
            session = await conn.new_session(cwd=str(workspace))
            answer = await conn.prompt(session_id=session.session_id, prompt=[text_block("go")])

    assert answer.stop_reason == "end_turn"
    assert (workspace / "notes/new.md").read_text() == "hello\n"
    assert not (tmp_path / "escape.txt").exists()
    asked, escaping = editor.permission_requests
    [diff] = asked.content
    assert (diff.path, diff.old_text, diff.new_text) == (
        str(workspace / "notes/new.md"),
        None,
        "hello\n",
    )
    assert escaping.title == "Write ../escape.txt", "a refused path is shown as asked"
    assert all("escape" not in args.get("path", "") for _, args in editor.calls)
    results = [m for m in upstream.requests[-1].json["messages"] if m["role"] == "tool"]
    assert json.loads(results[0]["content"]) == {"bytes_written": 6}
    assert json.loads(results[1]["content"])["error"]["code"] == "outside_workspace"
    [usage] = editor.of_kind("usage_update")
    assert (usage.used, usage.size) == (62, 1000)
