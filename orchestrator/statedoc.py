"""Renders `docs/state-machine.md` from the code: `python -m orchestrator.statedoc [--write]`.

The page is generated so that it cannot drift from what runs: the rules come from the
core's docstring, every decision from `orchestrator.table.TRANSITIONS`, the diagram from
`transitions` itself, and the example steps from running `SessionCore`. A test fails when
the committed page differs from what this module renders.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from transitions.extensions.diagrams import GraphMachine

from orchestrator import core, table
from orchestrator.commands import Command, EmitEvent, StartLlmRequest
from orchestrator.core import CoreConfig, SessionCore
from orchestrator.events import (
    EVENT_TYPES,
    ApprovalAnswered,
    ApprovalModeSet,
    CancelRequested,
    Event,
    FilesRevertedByUser,
    LlmFailed,
    LlmStreamEnded,
    LlmTextDelta,
    LlmToolCallsCompleted,
    ModelToolCall,
    ToolResultReceived,
    ToolTimedOut,
    UserMessageReceived,
)
from wire import LlmFailureKind, SessionState

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "state-machine.md"
REGENERATE = "python -m orchestrator.statedoc --write"

PROPERTY_EXAMPLES = 300
"""Examples of the stateful property test (`tests/test_core_properties.py`) per CI run."""
PROPERTY_STEPS = 40
"""Events per example of the stateful property test, at most."""
PROPERTY_RUNTIME = "about 10 s on a 2-core machine, roughly 10,000 events fed and replayed"
"""Measured cost of `tests/test_core_properties.py` with the numbers above."""

_CLIP = 60


def render() -> str:
    """The whole page, as Markdown."""
    parts = [
        "# The session state machine",
        f"<!-- Generated from orchestrator/table.py and orchestrator/core.py by `{REGENERATE}`."
        " Do not edit by hand. -->",
        _section("Rules", _docstring_body(core)),
        _section("How the table is read", _docstring_body(table)),
        _section("States", _states()),
        _section("Events", _events()),
        _section("Decisions", _decisions()),
        _section("Guards", _glossary(_names(("conditions", "unless")))),
        _section("Actions", _glossary(["emit_state", *_names(("before", "after"))])),
        _section("Order of commands within one step", _command_order()),
        _section("Diagram", _diagram()),
        _section("How it is proven", _proofs()),
    ]
    return "\n\n".join(parts) + "\n"


def _section(title: str, body: str) -> str:
    return f"## {title}\n\n{body.strip()}"


def _docstring_body(obj: Any) -> str:
    """A docstring without its summary line (the page has its own headings)."""
    doc = inspect.getdoc(obj) or ""
    return doc.partition("\n")[2].strip()


def _summary(obj: Any) -> str:
    return (inspect.getdoc(obj) or "").partition("\n")[0]


def _code(names: Iterable[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _states() -> str:
    return (
        f"At rest (a `user_message` starts a turn): {_code(s.value for s in table.AT_REST)}.\n"
        f"In a turn: {_code(s.value for s in table.IN_TURN)}. A session starts `idle`."
    )


def _events() -> str:
    rows = ["| trigger | event | what happened |", "|---|---|---|"]
    rows += [f"| `{e.trigger}` | `{e.__name__}` | {_summary(e)} |" for e in EVENT_TYPES]
    return "\n".join(rows)


def _rows_for(trigger: str, state: SessionState) -> list[dict[str, Any]]:
    return [
        row
        for row in table.TRANSITIONS
        if row["trigger"] == trigger and state in _listify(row["source"])
    ]


def _guard_text(row: dict[str, Any], first: bool) -> str:
    guards = [f"`{name}`" for name in _listify(row.get("conditions"))]
    guards += [f"not `{name}`" for name in _listify(row.get("unless"))]
    if guards:
        return " and ".join(guards)
    return "always" if first else "otherwise"


def _actions_text(row: dict[str, Any], state: SessionState) -> str:
    actions = _listify(row.get("before")) + _listify(row.get("after"))
    if row["dest"] not in (None, state):
        actions.append("emit_state")
    return " → ".join(f"`{name}`" for name in actions)


def _decisions() -> str:
    lines = [
        "For each event, every state is listed with its rows in the order they are tried; "
        "the first row whose guards pass decides. A `reject_*` action means the event is "
        "refused with a `RejectEvent` naming the event and the state, and nothing changes."
    ]
    for event_type in EVENT_TYPES:
        lines += [
            "",
            f"### `{event_type.trigger}` ({event_type.__name__})",
            "",
            "| state | when | next state | does |",
            "|---|---|---|---|",
        ]
        for state in table.STATES:
            for index, row in enumerate(_rows_for(event_type.trigger, state)):
                dest = row["dest"]
                following = "stays" if dest is None else f"**{dest.value}**"
                lines.append(
                    f"| `{state.value}` | {_guard_text(row, index == 0)} | {following} "
                    f"| {_actions_text(row, state)} |"
                )
    return "\n".join(lines)


def _names(keys: Sequence[str]) -> list[str]:
    """Callback names of the table under these keys, in first-use order."""
    found = [name for row in table.TRANSITIONS for key in keys for name in _listify(row.get(key))]
    return list(dict.fromkeys(found))


def _glossary(names: Iterable[str]) -> str:
    return "\n".join(f"- `{name}`: {_summary(getattr(SessionCore, name))}" for name in names)


def _diagram() -> str:
    moves = [row for row in table.TRANSITIONS if row["dest"] is not None]
    machine = GraphMachine(
        states=list(table.STATES),
        transitions=moves,
        initial=SessionState.IDLE,
        auto_transitions=False,
        graph_engine="mermaid",
        show_conditions=True,
        title="Session state machine",
    )
    source = machine.get_combined_graph().draw(None) or ""
    return (
        "Drawn by `transitions` (mermaid engine) from the rows that change the state; the rows "
        "that keep it (streamed text, results of a step not yet complete, every rejection) are "
        "in the tables above.\n\n"
        f"```mermaid\n{source.strip()}\n```"
    )


def _command_order() -> str:
    rules = """\
`handle(event)` returns the commands of one step in this order, the same on every run:

1. `ClearToolTimer` of the answered call (a tool result), or of every pending call (a cancel
   or the turn deadline), in call order; `AbortLlmRequest` when a cancel, the deadline or the
   output budget stops a model call.
2. `error` events: a failed tool (source `ide`), a timeout (source `ide`, code `timeout`),
   the response's invalid calls in call order (source `llm`, code `invalid_tool_call`),
   a model failure or a failed compaction (source `llm`), the user's `approval_decision`,
   then an error ending the turn (source `agent`, `max_steps` or `stuck`).
3. `agent_delta` or `agent_message`.
4. `tool_call` and `approval_request` events, in the model's call order (an allowed call's
   `tool_call`), then one `StartToolTimer` per call, in the same order; `StartTurnTimer` when
   a turn with a deadline starts.
5. With a context budget, the `context` event of a step request; then `StartLlmRequest` when
   the step calls the model (a compaction's request has no `context` event of its own).
6. The `state` event, last, exactly once, and only when the state changes.

`user_message_queued`, `approval_mode` and `files_reverted` are the only command of their
event. A refused event returns a single `RejectEvent` and nothing else. The traces below are
produced by running the core on four scripted sessions; the third has a context budget
(`context_window` 1000, `max_tokens` 100) that a couple of files fill, the fourth an IDE with
the features `approvals` and `steering` in the mode `ask`."""
    return "\n\n".join(
        [rules, *(_trace(title, events, config) for title, events, config in _TRACES)]
    )


def _trace(title: str, events: Sequence[Event], config: CoreConfig) -> str:
    session = SessionCore("s_1", config)
    lines: list[str] = []
    for event in events:
        lines.append(f"→ {_describe_event(event)}")
        lines += [f"    {_describe_command(command)}" for command in session.handle(event)]
    body = "\n".join(lines)
    return f"### {title}\n\n```text\n{body}\n```"


def _shorten(text: str) -> str:
    return text if len(text) <= _CLIP else f"{text[: _CLIP - 1]}…"


def _clip(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(_shorten(value), ensure_ascii=False)
    return _shorten(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def _fields(pairs: Iterable[tuple[str, Any]]) -> str:
    return " ".join(f"{key}={_clip(value)}" for key, value in pairs if value is not None)


def _describe_event(event: Event) -> str:
    if isinstance(event, LlmToolCallsCompleted):
        calls = ", ".join(f"{call.name}({call.arguments})" for call in event.calls)
        return f"{event.trigger} request_id={_clip(event.request_id)} calls: {calls}"
    values = [(f.name, getattr(event, f.name)) for f in dataclasses.fields(event)]
    return f"{event.trigger} {_fields(values)}"


def _describe_command(command: Command) -> str:
    if isinstance(command, EmitEvent):
        frame = command.event.model_dump(mode="json", exclude_none=True)
        head = f"emit #{frame.pop('seq')} {frame.pop('type')}"
        frame.pop("session_id")
        return f"{head} {_fields(frame.items())}"
    if isinstance(command, StartLlmRequest):
        return (
            f"StartLlmRequest request_id={command.request_id} "
            f"messages={len(command.messages)} tools={len(command.tools)}"
        )
    values = [(f.name, getattr(command, f.name)) for f in dataclasses.fields(command)]
    return f"{type(command).__name__} {_fields(values)}"


def _call(name: str, arguments: dict[str, Any] | str) -> ModelToolCall:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ModelToolCall(id=f"model-{name}", name=name, arguments=text)


_PLAIN = CoreConfig(system_prompt="(system prompt)", tool_timeout_s=120)
_BUDGET = CoreConfig(system_prompt="(system prompt)", context_window=1000, max_tokens=100)
_FILE = {"content": "x" * 900}
_ASKING = CoreConfig(
    system_prompt="(system prompt)", approval="ask", features=("approvals", "steering")
)

_TRACES: tuple[tuple[str, tuple[Event, ...], CoreConfig], ...] = (
    (
        "Parallel calls answered out of order, one of them invalid",
        (
            UserMessageReceived("Add logging to auth.js", "m1"),
            LlmTextDelta("t1.1", "Let me look. "),
            LlmToolCallsCompleted(
                "t1.1",
                (
                    _call("read_file", {"path": "src/auth.js"}),
                    _call("git_diff", {}),
                    _call("write_file", {"path": "src/auth.js"}),
                ),
            ),
            LlmStreamEnded("t1.1", "tool_calls", 120, 30),
            ToolResultReceived("c2", True, {"diff": ""}),
            UserMessageReceived("Hurry up", "m2"),
            ToolResultReceived("c1", True, {"content": "export function login() {}"}),
            LlmTextDelta("t1.2", "Added logging."),
            LlmStreamEnded("t1.2", "stop", 200, 12),
        ),
        _PLAIN,
    ),
    (
        "A timeout, a model failure, a cancel and a late result",
        (
            UserMessageReceived("Apply the fix"),
            LlmToolCallsCompleted("t1.1", (_call("apply_patch", {"diff": "--- a/x\n+++ b/x"}),)),
            LlmStreamEnded("t1.1", "tool_calls"),
            ToolTimedOut("c1"),
            LlmTextDelta("t1.2", "The patch"),
            LlmFailed(
                "t1.2",
                "llm_unavailable",
                "upstream closed the connection",
                LlmFailureKind.TRANSPORT,
            ),
            UserMessageReceived("Try again"),
            LlmToolCallsCompleted("t2.1", (_call("read_file", {"path": "x"}),)),
            LlmStreamEnded("t2.1", "tool_calls"),
            CancelRequested("m3"),
            ToolResultReceived("c2", True, {"content": "late"}),
            LlmTextDelta("t2.1", "stale"),
        ),
        _PLAIN,
    ),
    (
        "Elision, a compaction and an overflow retried once",
        (
            UserMessageReceived("Read a.py, then b.py"),
            LlmToolCallsCompleted("t1.1", (_call("read_file", {"path": "a.py"}),)),
            LlmStreamEnded("t1.1", "tool_calls", 520, 9),
            ToolResultReceived("c1", True, _FILE),
            LlmToolCallsCompleted("t1.2", (_call("read_file", {"path": "b.py"}),)),
            LlmStreamEnded("t1.2", "tool_calls", 840, 9),
            ToolResultReceived("c2", True, _FILE),
            LlmTextDelta("t1.3", "Read both."),
            LlmStreamEnded("t1.3", "stop", 790, 3),
            UserMessageReceived("Now c.py"),
            LlmFailed(
                "t2.1",
                "llm_context_exceeded",
                "LLM endpoint answered 400: maximum context length is 800 tokens",
                LlmFailureKind.STATUS,
                400,
                "maximum context length is 800 tokens",
            ),
            LlmTextDelta("t2.compact1", "a.py and b.py were read."),
            LlmStreamEnded("t2.compact1", "stop", 200, 8),
            LlmToolCallsCompleted("t2.2", (_call("read_file", {"path": "c.py"}),)),
            LlmStreamEnded("t2.2", "tool_calls", 560, 9),
            ToolResultReceived("c3", True, _FILE),
            LlmTextDelta("t2.3", "Read it."),
            LlmStreamEnded("t2.3", "stop", 700, 3),
        ),
        _BUDGET,
    ),
    (
        "Approvals, a rejection, steering and an undo",
        (
            UserMessageReceived("Rename login in auth.js"),
            LlmToolCallsCompleted(
                "t1.1",
                (
                    _call("write_file", {"path": "auth.js", "content": "signIn"}),
                    _call("read_file", {"path": "auth.js"}),
                ),
            ),
            LlmStreamEnded("t1.1", "tool_calls"),
            ToolResultReceived("c2", True, {"content": "login"}),
            UserMessageReceived("Also keep the old name as an alias"),
            ApprovalAnswered("c1", "reject", "keep the old name too"),
            LlmToolCallsCompleted(
                "t1.2", (_call("write_file", {"path": "auth.js", "content": "signIn, login"}),)
            ),
            LlmStreamEnded("t1.2", "tool_calls"),
            ApprovalAnswered("c3", "allow_path"),
            ToolResultReceived("c3", True, {"bytes_written": 13}),
            LlmTextDelta("t1.3", "Renamed, with an alias."),
            LlmStreamEnded("t1.3", "stop"),
            FilesRevertedByUser("t1", ("auth.js",)),
            ApprovalModeSet("read-only"),
        ),
        _ASKING,
    ),
)


def _proofs() -> str:
    return f"""\
- `tests/test_core_table.py` checks that every pair of state and event has an unconditional
  last row, fires every event variant (current or stale request, pending, answered,
  cancelled or unknown call) in every state reached by a legal path, and asserts the
  resulting state and commands, or a rejection with the whole observable state unchanged.
  It also holds the behaviour tests (cancel, busy, parallel calls, timeouts, limits,
  broken calls, model failures), each ending with an OpenAI-valid conversation.
- `tests/test_core_approvals.py` holds the behaviour tests of the approval round trip, the
  remembered rules, the three modes, steering and reverts, and their replay.
- `tests/test_core_properties.py` runs a hypothesis `RuleBasedStateMachine` whose rules are
  the events, checks the invariants after every event and replays each example into a
  fresh core to prove determinism. Budget per CI run: {PROPERTY_EXAMPLES} examples of up to
  {PROPERTY_STEPS} events, {PROPERTY_RUNTIME}.
- `tests/test_state_doc.py` fails when this page is stale; regenerate it with
  `{REGENERATE}`."""


def main(argv: Sequence[str] | None = None) -> int:
    """Print the page, or write it to `docs/state-machine.md` with `--write`."""
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.statedoc", description=_summary(sys.modules[__name__])
    )
    parser.add_argument("--write", action="store_true", help=f"write {DOC_PATH.name}")
    args = parser.parse_args(argv)
    page = render()
    if args.write:
        DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
        DOC_PATH.write_text(page, encoding="utf-8")
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
