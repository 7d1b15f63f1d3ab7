"""Checks a chat completion request body before any backend sees it (a 400 otherwise).

Only what the proxy itself relies on is checked; every other field is the
backend's business and is passed through untouched.
"""

from __future__ import annotations

import json
from typing import Any

from llm_proxy.errors import InvalidJson, InvalidRequest

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def parse_chat_request(body: bytes) -> dict[str, Any]:
    """The request as a dict with a model, messages and a boolean `stream`."""
    try:
        request = json.loads(body)
    except RecursionError:
        raise InvalidJson("The JSON body of your request is nested too deeply.") from None
    except ValueError as exc:
        raise InvalidRequest(f"We could not parse the JSON body of your request ({exc}).") from None
    if not isinstance(request, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("You must provide a model parameter.", param="model")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array.", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidRequest(
                f"messages[{index}] must be an object whose 'role' is one of {sorted(ROLES)}.",
                param=f"messages[{index}]",
            )
    stream = request.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean.", param="stream")
    options = request.get("stream_options")
    if options is not None:
        if not stream:
            raise InvalidRequest(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        if not isinstance(options, dict):
            raise InvalidRequest("'stream_options' must be an object.", param="stream_options")
    return request
