"""Emission stamps carried inside the token text, so that every hop's delay shows at the client.

The bench upstream writes each token as ` @<ns>`: a space and the time, on the
system-wide monotonic clock, at which it wrote the token. The bench client, in
another process, subtracts it from its own time of receipt. Text merged on the
way (several tokens in one frame) still yields every stamp, in order.
"""

from __future__ import annotations

import re

_STAMP = re.compile(r"@(\d+)")


def stamp_text(emitted_ns: int) -> str:
    """The text of one token written at `emitted_ns`."""
    return f" @{emitted_ns}"


def read_stamps(text: str) -> list[int]:
    """The emission times of every token in `text`."""
    return [int(digits) for digits in _STAMP.findall(text)]
