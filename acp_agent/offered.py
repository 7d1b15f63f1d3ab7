"""Which IDE tools the bridge can run for a given editor: the one place that decides it.

Reads and edits need the editor's `fs/*` methods, `git.diff` its terminals. This is the tool
list the bridge's `hello` declares, so the model is never offered a tool this editor cannot
run. The discovery tools (`list_files`, `search`) are not among them: the bridge runs the four
core tools only.
"""

from __future__ import annotations

from acp.schema import ClientCapabilities

from wire import CORE_TOOL_NAMES

_NEEDS_READ = frozenset({"read_file"})
_NEEDS_READ_AND_WRITE = frozenset({"write_file", "apply_patch"})
_NEEDS_TERMINAL = frozenset({"git.diff"})


def offered_tools(capabilities: ClientCapabilities | None) -> tuple[str, ...]:
    """The tools, in the service's order, that this editor's capabilities let the bridge run."""
    caps = capabilities or ClientCapabilities()
    fs = caps.fs
    can_read = bool(fs and fs.read_text_file)
    can_write = can_read and bool(fs and fs.write_text_file)
    offered = []
    for name in CORE_TOOL_NAMES:
        if name in _NEEDS_READ and not can_read:
            continue
        if name in _NEEDS_READ_AND_WRITE and not can_write:
            continue
        if name in _NEEDS_TERMINAL and not caps.terminal:
            continue
        offered.append(name)
    return tuple(offered)


def missing_capability(tool: str) -> str:
    """Why the editor cannot run `tool`, for the tool error the model gets."""
    if tool in _NEEDS_TERMINAL:
        return "the editor offers no terminals (terminal/*), so git.diff cannot run here"
    if tool in _NEEDS_READ:
        return "the editor does not let the agent read files (fs/read_text_file)"
    return "the editor does not let the agent read and write files (fs/*_text_file)"
