"""How a model request failed, as data: what a replay needs to fail the same way again.

The orchestrator's LLM client and stream decoder put one `LlmFailureKind` on
every `llm_failed` event, with the endpoint's HTTP status and its own words
where it gave them; the llm-proxy's replay backend reads them from a
transcript. Neither side ever parses the other's English.
"""

from __future__ import annotations

from enum import StrEnum


class LlmFailureKind(StrEnum):
    """The form a failure took on the wire."""

    STATUS = "status"
    """The endpoint answered an HTTP error status before any stream (`status`, `detail`)."""
    STREAM_ERROR = "stream_error"
    """The stream carried an error event (`detail`: its message)."""
    NO_DONE = "no_done"
    """The stream ended cleanly without `[DONE]`."""
    NOT_JSON = "not_json"
    """A chunk was not JSON."""
    NOT_AN_OBJECT = "not_an_object"
    """A chunk was JSON but not an object."""
    BAD_CHUNK = "bad_chunk"
    """A chunk was an object without a chat-completion chunk's shape."""
    TRANSPORT = "transport"
    """The endpoint could not be reached, did not answer in time, or the connection broke."""
    LOCAL = "local"
    """Nothing on the wire: the client's setup, a restart, or a bug on this side."""
