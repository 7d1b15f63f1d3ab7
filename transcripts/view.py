"""A recorded session as one self-contained HTML page: each turn's waterfall, then the conversation.

Everything the model, the user or the IDE produced is escaped: messages go
through CommonMark with raw HTML off, tool payloads are preformatted text, and
the page allows no script at all (see `htmlpage.document`).
"""

from __future__ import annotations

from htmlpage import attrs, esc, markdown_html, page
from orchestrator import decode_config
from transcripts.conversation import (
    Block,
    Cancelled,
    Failed,
    Item,
    Rejected,
    Said,
    ToolAnswered,
    ToolCalled,
    TurnFinished,
    conversation,
)
from transcripts.exchanges import exchanges
from transcripts.export import UNKNOWN, duration, one_line, timestamp
from transcripts.store import SessionRecord, TranscriptStore
from transcripts.timeline import Turn, timeline
from transcripts.waterfall import CSS as WATERFALL_CSS
from transcripts.waterfall import LEGEND, milliseconds, waterfall_svg

TURN_TITLE_CHARS = 80

CSS = (
    WATERFALL_CSS
    + """
.summary { color: var(--muted); margin: 0 0 8px; }
.turn h3 { font-weight: 600; }
.item { margin: 10px 0; border-left: 3px solid var(--line); padding: 2px 0 2px 12px; }
.item .who { font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .04em;
  color: var(--muted); }
.item .who code { text-transform: none; letter-spacing: 0; }
.item.user { border-color: var(--accent); } .item.agent { border-color: #8250df; }
.item.tool { border-color: #1f883d; } .item.tool.failed, .item.error { border-color: var(--bad); }
.item .md p { margin: 4px 0; }
.item .label { font-size: 12px; color: var(--muted); margin-top: 6px; }
pre.diff .add { background: #dafbe1; color: #116329; display: inline-block; min-width: 100%; }
pre.diff .del { background: #ffebe9; color: #82071e; display: inline-block; min-width: 100%; }
pre.diff .hunk { color: #0550ae; } pre.diff .meta { color: var(--muted); font-weight: 600; }
.note { color: var(--muted); font-style: italic; margin: 6px 0; }
"""
)


def _diff_line(line: str) -> str:
    if line.startswith(("+++", "---", "diff ", "index ")):
        kind = "meta"
    elif line.startswith("@@"):
        kind = "hunk"
    elif line.startswith("+"):
        kind = "add"
    elif line.startswith("-"):
        kind = "del"
    else:
        return esc(line)
    return f'<span class="{kind}">{esc(line)}</span>'


def block_html(block: Block) -> str:
    """A diff with its lines coloured, a file's text or JSON as preformatted text."""
    label = block.label if block.language == block.label else f"{block.label} · {block.language}"
    head = f'<div class="label">{esc(label)}</div>' if block.label else ""
    if block.kind == "diff":
        body = "\n".join(_diff_line(line) for line in block.text.split("\n"))
    else:
        body = esc(block.text)
    cut = f'<p class="muted">… {block.omitted} more characters</p>' if block.omitted else ""
    return f"{head}<pre{attrs(class_=block.kind)}>{body}</pre>{cut}"


def _blocks(blocks: tuple[Block, ...]) -> str:
    return "".join(block_html(block) for block in blocks)


def item_html(item: Item) -> str:
    """One conversation item; tool calls carry the id the waterfall links to."""
    match item:
        case Said(role=role, text=text):
            who = "User" if role == "user" else "Agent"
            return (
                f'<div class="item {role}"><div class="who">{who}</div>'
                f'<div class="md">{markdown_html(text)}</div></div>'
            )
        case ToolCalled(tool=tool, call_id=call_id, blocks=shown):
            return (
                f"<div{attrs(class_='item tool call', id=f'call-{call_id}')}>"
                f'<div class="who">tool call <code>{esc(tool)}</code> '
                f"<code>{esc(call_id)}</code></div>{_blocks(shown)}</div>"
            )
        case ToolAnswered(ok=True, call_id=call_id, tool=tool, blocks=shown):
            return (
                f'<div class="item tool result"><div class="who">result of <code>{esc(tool)}</code> '
                f"<code>{esc(call_id)}</code> · ok</div>{_blocks(shown)}</div>"
            )
        case ToolAnswered(call_id=call_id, tool=tool, error_code=code, error_message=message):
            return (
                f'<div class="item tool result failed"><div class="who">result of '
                f"<code>{esc(tool)}</code> <code>{esc(call_id)}</code> · failed "
                f'<code>{esc(code)}</code></div><pre class="text">{esc(message or "")}</pre></div>'
            )
        case TurnFinished():
            return (
                f'<p class="note">Turn {esc(item.turn_id)} finished ({esc(item.finish_reason)}): '
                f"{item.prompt_tokens} prompt and {item.completion_tokens} completion tokens.</p>"
            )
        case Cancelled():
            return '<p class="note">The user cancelled the turn.</p>'
        case Rejected(code=code, message=message):
            return f'<p class="note">Rejected (<code>{esc(code)}</code>): {esc(message)}</p>'
        case Failed(code=code, source=source, message=message):
            return (
                f'<div class="item error"><div class="who">error <code>{esc(code)}</code> '
                f'from {esc(source)}</div><pre class="text">{esc(message)}</pre></div>'
            )
    raise AssertionError(f"unknown conversation item {item!r}")


def turn_html(turn: Turn) -> str:
    """The turn's heading, its figures and its waterfall."""
    spans = turn.spans
    models = [s for s in spans if s.kind == "model"]
    tools = [s for s in spans if s.kind == "tool"]
    first = next((s.first_output for s in models if s.first_output is not None), None)
    figures = [
        f"{milliseconds(turn.end - turn.start)} in all",
        f"{len(models)} model request{'s' * (len(models) != 1)}",
        f"{len(tools)} tool call{'s' * (len(tools) != 1)}",
    ]
    if first is not None:
        figures.append(f"first model output after {milliseconds(first - turn.start)}")
    figures.append(turn.outcome)
    return (
        f"<section{attrs(class_='turn', id=f'turn-{turn.number}')}>"
        f"<h3>Turn {turn.number}: {esc(one_line(turn.message, TURN_TITLE_CHARS))}</h3>"
        f'<p class="summary">{esc(" · ".join(figures))}</p>{waterfall_svg(turn)}</section>'
    )


def view_html(store: TranscriptStore, session: SessionRecord) -> str:
    """The whole page of one session."""
    config = decode_config(session.config)
    turns = timeline(exchanges(store.events(session.session_id)))
    lasted = store.last_recorded_at(session.session_id) - session.created_at
    facts = [
        f"recorded {timestamp(session.created_at)}",
        f"model {session.model or UNKNOWN}",
        f"{len(turns)} turn{'s' * (len(turns) != 1)} in {duration(lasted)}",
        f"{session.inputs} inputs, {session.outputs} outputs",
        f"at most {config.max_steps} model calls a turn, tool timeout {config.tool_timeout_s:g} s",
    ]
    if session.redactions:
        facts.append(f"{session.redactions} secrets replaced by [REDACTED]")
    body = [
        f"<h1>Session <code>{esc(session.session_id)}</code></h1>",
        f'<p class="summary">{esc(" · ".join(facts))}</p>',
        "<h2>Timeline</h2>",
        LEGEND,
        *(turn_html(turn) for turn in turns),
        "<h2>Conversation</h2>",
        '<div class="conversation">',
        *map(item_html, conversation(exchanges(store.events(session.session_id)))),
        "</div>",
    ]
    return page(f"Session {session.session_id}", "\n".join(body), CSS)
