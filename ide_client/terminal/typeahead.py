"""Keys typed while a turn runs: kept off the screen's reply, and queued as the next messages.

During a turn the terminal's echo is off (so typing never lands inside the agent's reply) and
keys are read here: Enter queues the line typed so far as a message, Backspace and Ctrl-U edit
it, a bracketed paste is taken whole (its newlines stay in the message), other escape sequences
(arrow keys) are ignored. Ctrl-C still reaches the process as SIGINT.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import termios
from collections.abc import Callable
from typing import Any

PASTE_ON = "\x1b[?2004h"
PASTE_OFF = "\x1b[?2004l"
PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"
ERASE = frozenset({"\x7f", "\x08"})
KILL_LINE = "\x15"


class TypeAhead:
    """Reads the terminal's keys between `start()` and `stop()`.

    `lines` are the messages completed with Enter, in order; `partial` is what was typed after
    the last Enter (the next prompt starts with it). `on_change` is called after every key.
    While a question waits (`answer_next`), Enter answers it instead of queuing the line.
    """

    def __init__(
        self, fd: int, write: Callable[[str], None], on_change: Callable[[], None]
    ) -> None:
        self.fd = fd
        self.lines: list[str] = []
        self.partial = ""
        self._write = write
        self._on_change = on_change
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._in_paste = False
        self._saved: list[Any] | None = None
        self._answer: asyncio.Future[str] | None = None

    def answer_next(self) -> asyncio.Future[str]:
        """The next line completed with Enter (empty too), as the answer to a question."""
        self._answer = asyncio.get_running_loop().create_future()
        return self._answer

    def start(self) -> None:
        """Turn echo and line buffering off and read keys on the running event loop."""
        self._saved = termios.tcgetattr(self.fd)
        quiet = termios.tcgetattr(self.fd)
        quiet[3] &= ~(termios.ECHO | termios.ICANON)
        quiet[6][termios.VMIN] = 1
        quiet[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, quiet)
        self._write(PASTE_ON)
        asyncio.get_running_loop().add_reader(self.fd, self._read)

    def stop(self) -> None:
        """Give the terminal back as it was."""
        asyncio.get_running_loop().remove_reader(self.fd)
        self._write(PASTE_OFF)
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSANOW, self._saved)
            self._saved = None

    def feed(self, text: str) -> None:
        """Take typed text as the terminal sent it."""
        self._pending += text
        while self._pending:
            if not self._take_one():
                break
        self._on_change()

    def _read(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.fd)
            return
        self.feed(self._decoder.decode(data))

    def _take_one(self) -> bool:
        """Consume one key or sequence from `_pending`; False: wait for more bytes."""
        text = self._pending
        for marker, pasting in ((PASTE_START, True), (PASTE_END, False)):
            if text.startswith(marker):
                self._in_paste = pasting
                self._pending = text[len(marker) :]
                return True
        if text[0] == "\x1b" and not self._in_paste:
            end = _escape_end(text)
            if end is None:
                return False
            self._pending = text[end:]
            return True
        if self._in_paste and len(text) < len(PASTE_END) and PASTE_END.startswith(text):
            return False
        key, self._pending = text[0], text[1:]
        self._key(key)
        return True

    def _key(self, key: str) -> None:
        if self._in_paste:
            self.partial += "\n" if key == "\r" else key
        elif key in "\r\n":
            if self._answer is not None and not self._answer.done():
                self._answer.set_result(self.partial)
            elif self.partial.strip():
                self.lines.append(self.partial)
            self._answer = None
            self.partial = ""
        elif key in ERASE:
            self.partial = self.partial[:-1]
        elif key == KILL_LINE:
            self.partial = ""
        elif key.isprintable() or key == "\t":
            self.partial += key


def _escape_end(text: str) -> int | None:
    """Where the escape sequence at the start of `text` ends; None if it is incomplete."""
    if len(text) < 2:
        return None
    if text[1] not in "[O":
        return 2
    for index in range(2, len(text)):
        if "\x40" <= text[index] <= "\x7e":
            return index + 1
    return None
