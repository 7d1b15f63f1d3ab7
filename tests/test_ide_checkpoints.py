"""The reference IDE keeps a checkpoint of every file the agent changes and undoes a turn."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from ide_client.checkpoints import CheckpointCode, CheckpointError, CheckpointStore, TurnKey
from ide_client.discovery import list_files
from ide_client.errors import ToolCode, ToolFailure
from ide_client.sample import README_MD, create_sample_workspace
from ide_client.tools import ToolRunner
from ide_client.workspace import Workspace

SESSION = "s_1"
ADD_LINE = """\
--- a/src/auth.js
+++ b/src/auth.js
@@ -1,2 +1,3 @@
 // Session authentication for the sample app.
+// Logged.
 const crypto = require("crypto");
"""
CREATE_AND_EDIT = """\
*** Begin Patch
*** Add File: src/new.js
+export const fresh = 1;
*** Update File: README.md
@@
-# Sample app
+# Sample application
*** End Patch
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return create_sample_workspace(tmp_path / "ws")


@pytest.fixture
def store(root: Path) -> CheckpointStore:
    return CheckpointStore(Workspace(root))


@pytest.fixture
def tools(store: CheckpointStore) -> ToolRunner:
    return ToolRunner(store.workspace, checkpoints=store)


def in_turn(store: CheckpointStore, turn_id: str, session_id: str = SESSION) -> None:
    store.current = TurnKey(session_id, turn_id)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the workspace outside .git/ and .agent-service/, with its bytes."""
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not relative.startswith((".git/", ".agent-service/")):
            files[relative] = path.read_bytes()
    return files


def refusal(store: CheckpointStore, turn_id: str | None = None) -> CheckpointError:
    with pytest.raises(CheckpointError) as caught:
        store.revert(SESSION, turn_id)
    return caught.value


def test_undo_puts_back_a_patched_file_and_removes_a_created_one(
    root: Path, store: CheckpointStore, tools: ToolRunner
) -> None:
    before = snapshot(root)
    in_turn(store, "t1")
    tools.run("apply_patch", {"diff": ADD_LINE})
    tools.run("apply_patch", {"diff": CREATE_AND_EDIT})
    assert (root / "src" / "new.js").exists()

    reverted = store.revert(SESSION)

    assert snapshot(root) == before
    assert reverted.turn_id == "t1"
    assert reverted.paths == ("README.md", "src/auth.js", "src/new.js")
    assert store.turns(SESSION) == []


def test_a_file_written_twice_in_a_turn_comes_back_as_it_was_before_the_turn(
    root: Path, store: CheckpointStore, tools: ToolRunner
) -> None:
    in_turn(store, "t1")
    tools.run("write_file", {"path": "README.md", "content": "one\n"})
    tools.run("write_file", {"path": "README.md", "content": "two\n"})

    store.revert(SESSION)

    assert (root / "README.md").read_text() == README_MD


def test_undo_takes_back_the_last_turn_only_then_the_one_before(
    root: Path, store: CheckpointStore, tools: ToolRunner
) -> None:
    in_turn(store, "t1")
    tools.run("write_file", {"path": "README.md", "content": "turn 1\n"})
    in_turn(store, "t2")
    tools.run("write_file", {"path": "README.md", "content": "turn 2\n"})
    in_turn(store, "t3")
    tools.run("read_file", {"path": "README.md"})

    assert store.revert(SESSION).turn_id == "t2"
    assert (root / "README.md").read_text() == "turn 1\n"
    assert store.revert(SESSION).turn_id == "t1"
    assert (root / "README.md").read_text() == README_MD
    assert refusal(store).code is CheckpointCode.NOTHING_TO_UNDO


def test_undoing_a_chosen_turn_also_undoes_every_later_turn(
    root: Path, store: CheckpointStore, tools: ToolRunner
) -> None:
    original = snapshot(root)
    in_turn(store, "t1")
    tools.run("apply_patch", {"diff": ADD_LINE})
    in_turn(store, "t2")
    tools.run("write_file", {"path": "README.md", "content": "turn 2\n"})
    in_turn(store, "t3")
    tools.run("write_file", {"path": "src/auth.js", "content": "turn 3\n"})

    reverted = store.revert(SESSION, "t1")

    assert snapshot(root) == original
    assert reverted.turns == ("t1", "t2", "t3")
    assert reverted.paths == ("README.md", "src/auth.js")


def test_undo_refuses_with_the_files_named_when_the_user_edited_one_since(
    root: Path, store: CheckpointStore, tools: ToolRunner
) -> None:
    in_turn(store, "t1")
    tools.run("apply_patch", {"diff": CREATE_AND_EDIT})
    (root / "README.md").write_text("# Sample application\nthe user's own line\n")
    edited = snapshot(root)

    error = refusal(store)

    assert error.code is CheckpointCode.CHANGED_SINCE
    assert error.paths == ("README.md",)
    assert "README.md" in error.message and "nothing was changed" in error.message
    assert snapshot(root) == edited, "all or nothing: the created file is still there"
    assert [turn.turn_id for turn in store.turns(SESSION)] == ["t1"]


def test_a_forced_undo_overwrites_the_users_edit(
    root: Path, store: CheckpointStore, tools: ToolRunner
) -> None:
    in_turn(store, "t1")
    tools.run("apply_patch", {"diff": CREATE_AND_EDIT})
    (root / "README.md").write_text("the user's version\n")
    (root / "src" / "new.js").unlink()

    store.revert(SESSION, force=True)

    assert (root / "README.md").read_text() == README_MD
    assert not (root / "src" / "new.js").exists()


def test_a_file_the_agent_deleted_comes_back_with_its_execute_bit(
    root: Path, store: CheckpointStore, tools: ToolRunner
) -> None:
    script = root / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    in_turn(store, "t1")
    tools.run("apply_patch", {"diff": "*** Begin Patch\n*** Delete File: run.sh\n*** End Patch\n"})
    assert not script.exists()

    store.revert(SESSION)

    assert script.read_text() == "#!/bin/sh\necho hi\n"
    assert os.stat(script).st_mode & 0o111


def test_an_unknown_turn_is_refused_naming_the_turns_that_can_be_undone(
    store: CheckpointStore, tools: ToolRunner
) -> None:
    in_turn(store, "t2")
    tools.run("write_file", {"path": "README.md", "content": "x\n"})

    error = refusal(store, "t9")

    assert error.code is CheckpointCode.UNKNOWN_TURN
    assert "t2" in error.message


def test_sessions_keep_their_own_checkpoints_and_they_outlive_the_process(
    root: Path, store: CheckpointStore, tools: ToolRunner
) -> None:
    in_turn(store, "t1", "s_other")
    tools.run("write_file", {"path": "src/other.js", "content": "other\n"})
    in_turn(store, "t1")
    tools.run("write_file", {"path": "README.md", "content": "mine\n"})

    later = CheckpointStore(Workspace(root))
    later.revert(SESSION)

    assert (root / "README.md").read_text() == README_MD
    assert (root / "src" / "other.js").read_text() == "other\n"
    assert [turn.turn_id for turn in later.turns("s_other")] == ["t1"]


def test_checkpoints_leave_the_git_index_and_status_alone(
    root: Path, store: CheckpointStore, tools: ToolRunner
) -> None:
    index = hashlib.sha256((root / ".git" / "index").read_bytes()).hexdigest()
    in_turn(store, "t1")
    tools.run("write_file", {"path": "README.md", "content": "changed\n"})

    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert status.splitlines() == [" M README.md"]
    assert hashlib.sha256((root / ".git" / "index").read_bytes()).hexdigest() == index
    assert not (root / ".gitignore").exists()
    listed = list_files(store.workspace, ".", None, 1000)["files"]
    assert not [f for f in listed if f["path"].startswith(".agent-service")]


def test_the_model_can_never_write_its_own_checkpoints(tools: ToolRunner) -> None:
    with pytest.raises(ToolFailure) as caught:
        tools.run(
            "write_file", {"path": ".agent-service/checkpoints/sessions/s_1.json", "content": "{}"}
        )
    assert caught.value.code is ToolCode.PROTECTED_PATH


def test_a_symlinked_checkpoint_directory_refuses_the_write_and_writes_nothing_outside(
    root: Path, tmp_path: Path, store: CheckpointStore, tools: ToolRunner
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / ".agent-service").symlink_to(outside)
    in_turn(store, "t1")

    with pytest.raises(ToolFailure) as caught:
        tools.run("write_file", {"path": "README.md", "content": "changed\n"})

    assert caught.value.code is ToolCode.TOOL_FAILED
    assert "checkpoint" in caught.value.message
    assert list(outside.iterdir()) == []
    assert (root / "README.md").read_text() == README_MD


def test_a_damaged_checkpoint_refuses_the_undo_and_changes_nothing(
    root: Path, store: CheckpointStore, tools: ToolRunner
) -> None:
    in_turn(store, "t1")
    tools.run("write_file", {"path": "README.md", "content": "changed\n"})
    for blob in (root / ".agent-service" / "checkpoints" / "blobs").iterdir():
        blob.write_bytes(b"garbage")

    error = refusal(store)

    assert error.code is CheckpointCode.CHECKPOINT_DAMAGED
    assert (root / "README.md").read_text() == "changed\n"


def test_an_undo_never_writes_through_a_symlink_swapped_in_since(
    root: Path, tmp_path: Path, store: CheckpointStore, tools: ToolRunner
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("keep\n")
    in_turn(store, "t1")
    tools.run("write_file", {"path": "README.md", "content": "changed\n"})
    (root / "README.md").unlink()
    (root / "README.md").symlink_to(secret)

    with pytest.raises(CheckpointError) as caught:
        store.revert(SESSION, force=True)

    assert caught.value.code is CheckpointCode.RESTORE_FAILED
    assert secret.read_text() == "keep\n"
