"""What the terminal makes of typed keys and lines: type-ahead during a turn, slash commands."""

from __future__ import annotations

from ide_client.terminal.commands import Command, Invocation, Unknown, help_lines, parse_line
from ide_client.terminal.typeahead import PASTE_END, PASTE_START, TypeAhead


def typed(*chunks: str) -> TypeAhead:
    keys = TypeAhead(-1, lambda _: None, lambda: None)
    for chunk in chunks:
        keys.feed(chunk)
    return keys


def test_typeahead_queues_a_line_on_enter_and_keeps_the_rest_as_a_draft() -> None:
    keys = typed("first\r", "sec", "ond")
    assert keys.lines == ["first"]
    assert keys.partial == "second"


def test_typeahead_edits_with_backspace_and_ctrl_u_and_ignores_arrow_keys() -> None:
    keys = typed("helo\x7flo\x1b[A\x1b[D", "\r", "junk\x15ok")
    assert keys.lines == ["hello"]
    assert keys.partial == "ok"


def test_typeahead_takes_a_bracketed_paste_whole_with_its_newlines() -> None:
    keys = typed(PASTE_START + "one\rtwo\nthree" + PASTE_END, "\r")
    assert keys.lines == ["one\ntwo\nthree"]


def test_typeahead_waits_for_the_rest_of_a_sequence_split_across_reads() -> None:
    keys = typed("\x1b[20", "0~a\nb\x1b[2", "01~", "\r", "\x1b", "[B")
    assert keys.lines == ["a\nb"]
    assert keys.partial == ""


async def test_typeahead_gives_the_line_to_a_waiting_question_instead_of_queuing_it() -> None:
    keys = typed("next message\r", "n not ")
    answer = keys.answer_next()
    keys.feed("this way\r")
    keys.feed("after\r")
    assert await answer == "n not this way"
    assert keys.lines == ["next message", "after"]


def test_typeahead_skips_empty_lines() -> None:
    assert typed("\r\r  \r").lines == []


def test_slash_words_are_commands_and_other_lines_are_messages() -> None:
    assert parse_line("/help") == Invocation(Command.HELP)
    assert parse_line("  /STATUS ") == Invocation(Command.STATUS)
    assert parse_line("quit") == Invocation(Command.QUIT)
    assert parse_line("exit") == Invocation(Command.QUIT)
    assert parse_line("/undo  t3 --force ") == Invocation(Command.UNDO, "t3 --force")
    assert parse_line("/approval ask") == Invocation(Command.APPROVAL, "ask")
    assert parse_line("/redo") == Unknown("redo")
    assert parse_line("//etc/hosts is odd") == "/etc/hosts is odd"
    assert parse_line("Add logging to src/auth.js") == "Add logging to src/auth.js"
    assert parse_line("quit smoking\nplease") == "quit smoking\nplease"


def test_help_lists_every_command_and_only_those() -> None:
    listed = [line.split()[0] for line in help_lines() if line.startswith("/")]
    assert listed == [f"/{command.name.lower()}" for command in Command]
