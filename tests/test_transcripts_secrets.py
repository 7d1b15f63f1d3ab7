"""No key or token reaches a transcript file: the recorder never gets them, and redaction scrubs
the ones a tool output carries before anything is written."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from agent_service.options import add_internal_token, add_llm_upstream, add_token
from agent_service.transcript_flags import add_recording_flags, open_recorder
from orchestrator.codec import encode
from orchestrator.events import ToolResultReceived
from tests.support.fake_credentials import (
    AWS_ACCESS_KEY_ID,
    GITHUB_TOKEN,
    GOOGLE_API_KEY,
    JWT,
    OPENAI_STYLE_KEY,
    PRIVATE_KEY_BLOCK,
    SLACK_TOKEN,
)
from tests.support.recorded_session import record_session
from transcripts import (
    DEFAULT_PATTERNS,
    REDACTED,
    BadRedactionPattern,
    Redactor,
    TranscriptRecorder,
    TranscriptStore,
    verify_session,
)

API_KEY = OPENAI_STYLE_KEY
GATEWAY_TOKEN = "gw-token-4f9d2c7e1a8b3f6d"
INTERNAL_TOKEN = "link-secret-9c1e7b4a2d6f"
SECRETS = {
    "openai_style_key": API_KEY,
    "aws_access_key_id": AWS_ACCESS_KEY_ID,
    "github_token": GITHUB_TOKEN,
    "slack_token": SLACK_TOKEN,
    "google_api_key": GOOGLE_API_KEY,
    "bearer_token": "Bearer " + "eyJhbGciOi.payload.sig-" + "7" * 12,
    "jwt": JWT,
    "private_key_block": PRIVATE_KEY_BLOCK,
}


def _file_bytes(directory: Path) -> bytes:
    """Every byte of the database and its -wal/-shm files."""
    return b"".join(path.read_bytes() for path in sorted(directory.iterdir()))


def _surrounding_config(db: Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_llm_upstream(parser, unset_means="the demo model")
    add_token(parser)
    add_internal_token(parser)
    add_recording_flags(parser)
    return parser.parse_args(
        [
            "--llm-api-key",
            API_KEY,
            "--token",
            GATEWAY_TOKEN,
            "--internal-token",
            INTERNAL_TOKEN,
            "--model",
            "gpt-test",
            "--transcripts",
            str(db),
        ]
    )


def test_recorder_writes_no_key_or_token_when_the_surrounding_config_holds_them(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "db"
    directory.mkdir()
    args = _surrounding_config(directory / "t.db")
    recorder = open_recorder(args)
    assert isinstance(recorder, TranscriptRecorder)
    record_session(recorder, "s1")
    written_while_open = _file_bytes(directory)
    recorder.close()
    for data in (written_while_open, _file_bytes(directory)):
        assert b"What does the README say?" in data
        for secret in (API_KEY, GATEWAY_TOKEN, INTERNAL_TOKEN):
            assert secret.encode() not in data


def test_recorder_redacts_every_common_key_shape_when_a_tool_output_carries_it(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "db"
    directory.mkdir()
    env_file = "".join(f"{name.upper()}={secret}\n" for name, secret in SECRETS.items())
    with TranscriptRecorder(directory / "t.db") as recorder:
        record_session(recorder, "s1", messages=["show .env"], tool_output={"content": env_file})
        recorder.flush()
        written_while_open = _file_bytes(directory)
    for data in (written_while_open, _file_bytes(directory)):
        assert REDACTED.encode() in data
        for secret in SECRETS.values():
            assert secret.encode() not in data
            assert json.dumps(secret).encode() not in data
    store = TranscriptStore.open(directory / "t.db")
    assert store.session("s1").redactions >= len(SECRETS)
    assert verify_session(store, "s1").ok


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_redactor_finds_a_key_when_it_starts_a_line_or_follows_text_or_is_quoted_twice(
    name: str,
) -> None:
    redactor = Redactor([DEFAULT_PATTERNS[name]])
    secret = SECRETS[name]
    for content in (secret, f"x\n{secret}\n", f"été {secret}", json.dumps({"v": secret})):
        once = encode(ToolResultReceived("c1", ok=True, output={"content": content}))
        twice = json.dumps({"messages": [{"content": once}]})
        for payload in (once, twice):
            redacted, count = redactor.redact(payload)
            assert count == 1, (content, payload)
            assert secret not in json.dumps(json.loads(redacted))
            assert REDACTED in json.dumps(json.loads(redacted))


def test_redactor_leaves_ordinary_text_alone_when_it_only_looks_like_a_prefix() -> None:
    text = (
        "risk-assessment-for-the-quarterly-review; task-aaaaaaaaaaaaaaaaaaaaaaaaa; a bearer of news"
    )
    payload = encode(ToolResultReceived("c1", ok=True, output=text))
    assert Redactor.default().redact(payload) == (payload, 0)


def test_redactor_applies_extra_patterns_when_configured() -> None:
    payload = encode(ToolResultReceived("c1", ok=True, output="id acme_live_0123456789abcdef"))
    redacted, count = Redactor.default([r"acme_live_[0-9a-f]{16}"]).redact(payload)
    assert count == 1
    assert json.loads(redacted)["output"] == f"id {REDACTED}"


def test_redactor_keeps_the_json_whole_when_a_pattern_reaches_past_a_closing_quote() -> None:
    payload = encode(ToolResultReceived("c1", ok=True, output="token: s3cret", error_code="e"))
    redacted, count = Redactor([r"token: \S+"]).redact(payload)
    assert count == 1
    assert json.loads(redacted)["output"] == REDACTED
    assert json.loads(redacted)["error_code"] == "e"


@pytest.mark.parametrize("pattern", ["(unclosed", "(?i)late global flag"])
def test_redactor_refuses_a_pattern_when_it_cannot_be_used(pattern: str) -> None:
    with pytest.raises(BadRedactionPattern) as caught:
        Redactor(["first", pattern])
    assert caught.value.code == "bad_redaction_pattern"
