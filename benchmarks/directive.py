"""What the bench asks the upstream to play, carried as the text of the user message.

The user message is what every path hands to the upstream unchanged (the
orchestrator only adds its system prompt and tools around it), so one
directive works the same directly, through the proxy and through the pipeline.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Directive:
    """An answer of `tokens` stamped tokens at `rate` per second (0: as fast as it is read).

    With `tool_call` the upstream first answers with a `read_file` call, and
    streams the tokens once the tool's result comes back.
    """

    tokens: int
    rate: float = 0.0
    tool_call: bool = False

    def message(self) -> str:
        """The user message that carries this directive."""
        return json.dumps({"bench": asdict(self)})

    @classmethod
    def from_messages(cls, messages: list[dict[str, Any]]) -> Directive:
        """The directive in the last user message; a short answer when there is none."""
        users = [message for message in messages if message.get("role") == "user"]
        try:
            fields = json.loads(users[-1]["content"])["bench"]
            return cls(int(fields["tokens"]), float(fields["rate"]), bool(fields["tool_call"]))
        except (IndexError, KeyError, TypeError, ValueError):
            return cls(tokens=20)
