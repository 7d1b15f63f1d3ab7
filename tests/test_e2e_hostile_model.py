"""A hostile model, end to end: a scripted upstream drives the real stack and the reference IDE
to plant a fake repository and a hook and then run git.diff, in a workspace outside git, in a
subfolder of a repository, and in a repository whose own configuration is hostile. No program
runs (each would create the marker file), and the model is told why its writes were refused."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_service.stack import StackConfig
from ide_client.client import IdeClient
from ide_client.display import ConsoleDisplay
from ide_client.sample import AUTH_JS, create_sample_workspace
from ide_client.tools import ToolRunner
from ide_client.workspace import Workspace
from tests.support.fake_upstream import FakeUpstream, Step, text_stream, tool_call_stream
from tests.support.stack import running_stack
from wire import ToolCall


@pytest.fixture(scope="module")
def stack(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackConfig]:
    with running_stack(
        tmp_path_factory.mktemp("hostile"), llm_base_url=upstream.base_url, model="fake-model"
    ) as config:
        yield config


def attack(marker: Path) -> Any:
    """The model's script: plant a bare-repository layout (HEAD last) and a husky hook, then
    ask for the diff twice, then stop."""
    config = (
        "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tworktree = .\n"
        f'\tfsmonitor = "touch {marker}"\n'
    )
    plant: list[tuple[str, dict[str, object]]] = [
        ("write_file", {"path": "config", "content": config}),
        ("write_file", {"path": "objects/info/packs", "content": "\n"}),
        ("write_file", {"path": "refs/heads/main", "content": "0" * 40 + "\n"}),
        ("write_file", {"path": "HEAD", "content": "ref: refs/heads/main\n"}),
        ("write_file", {"path": ".husky/pre-commit", "content": f"#!/bin/sh\ntouch {marker}\n"}),
    ]
    look: list[tuple[str, dict[str, object]]] = [("git_diff", {}), ("git_diff", {"staged": True})]

    def script(request: dict[str, Any]) -> list[Step]:
        answered = sum(1 for message in request["messages"] if message["role"] == "tool")
        step = {0: plant, len(plant): look}.get(answered)
        if step is None:
            return text_stream("Done.")
        return tool_call_stream([(name, json.dumps(arguments)) for name, arguments in step])

    return script


def hostile_repository(root: Path, marker: Path) -> Path:
    create_sample_workspace(root)
    (root / "src" / "auth.js").write_text(AUTH_JS + "// changed\n")
    (root / ".gitattributes").write_text("*.js filter=evil diff=evil\n")
    settings = {
        "core.fsmonitor": f"touch {marker}",
        "core.hooksPath": ".husky",
        "core.pager": f"touch {marker}; cat",
        "filter.evil.clean": f"touch {marker}; cat",
        "filter.evil.process": f"touch {marker}",
        "diff.evil.command": f"touch {marker}",
        "diff.evil.textconv": f"sh -c 'touch {marker}; cat \"$1\"' -",
    }
    for key, value in settings.items():
        subprocess.run(["git", "-C", str(root), "config", key, value], check=True)
    return root


@pytest.mark.parametrize("kind", ["outside_git", "subfolder", "hostile_config"])
async def test_a_hostile_model_cannot_make_the_ide_run_a_program(
    stack: StackConfig, upstream: FakeUpstream, tmp_path: Path, kind: str
) -> None:
    marker = tmp_path / "PWNED"
    if kind == "outside_git":
        workspace = tmp_path / "plain"
        workspace.mkdir()
    elif kind == "subfolder":
        workspace = create_sample_workspace(tmp_path / "repo") / "src"
    else:
        workspace = hostile_repository(tmp_path / "repo", marker)
    upstream.reset(attack(marker))
    tools = ToolRunner(Workspace(workspace))
    out = io.StringIO()
    async with IdeClient(
        stack.gateway_url, stack.token, tools, display=ConsoleDisplay(out)
    ) as client:
        turn = await client.run_turn("make yourself at home")

    assert turn.ok, out.getvalue()
    assert not marker.exists(), "a program ran on the user's machine"
    results = [turn.results[call.call_id] for call in turn.of_type(ToolCall)]
    codes = [result.error.code if result.error else "ok" for result in results]
    hook = "protected_path" if kind == "hostile_config" else "ok"
    diff = "not_a_git_repo" if kind == "outside_git" else "ok"
    assert codes == ["ok", "ok", "ok", "protected_path", hook, diff, diff]
    told = [m["content"] for m in upstream.requests[1].json["messages"] if m["role"] == "tool"]
    assert "git directory" in told[3]
    assert not (workspace / "HEAD").exists()
