"""A 200 MB answer through the real stack: the session keeps a bounded resume buffer, not the
answer two more times for its lifetime, and a resume from before what it kept is told
`resume_gap`."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_upstream import FakeUpstream, pieces_stream
from tests.support.stack import started_stack
from tests.support.wsclient import ProtocolClient

PIECE = "y" * (512 * 1024)
PIECES = 400  # 200 MiB
RESUME_CHARS = 8 * 1024 * 1024


def rss_mib(pids: Iterable[int]) -> float:
    """The resident memory of these processes together."""
    return sum(_rss_mib(pid) for pid in pids)


def health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return dict(json.loads(response.read()))


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_a_200_mb_answer_leaves_a_bounded_resume_buffer(
    tmp_path: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # glibc returns every block over this size to the system when it is freed (instead of
    # raising the threshold and keeping freed arenas), so the RSS below is what the process holds.
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", str(128 * 1024))
    upstream.reset(lambda request: pieces_stream(PIECE, PIECES))
    with started_stack(
        tmp_path,
        llm_base_url=upstream.base_url,
        model="fake-model",
        extra_args={
            # A 200 MB answer is far over the default output budget of a turn: lift it.
            "orchestrator": ["--max-resume-chars", str(RESUME_CHARS), "--max-turn-output", "0"]
        },
    ) as stack:
        config = stack.config
        # every orchestrator (one, or a cluster's: the session is on one of them)
        orchestrators = stack.health_urls("orchestrator")
        client = await ProtocolClient.connect(config.gateway_url, config.token)
        session = await client.hello()
        idle_mib = rss_mib(orchestrators)
        received = await client.text_of_turn("a very long answer")
        await client.close()
        assert received == PIECES * len(PIECE)

        kept = [health(url)["history_chars"] for url in orchestrators.values()]
        assert sum(kept) <= RESUME_CHARS, kept
        # the conversation holds the answer once (the model is sent it next turn); the resume
        # buffer no longer holds its deltas and its agent_message on top (883 MiB before)
        held_mib = rss_mib(orchestrators) - idle_mib
        assert held_mib < PIECES * len(PIECE) / 2**20 * 1.25

        late = await ProtocolClient.connect(config.gateway_url, config.token)
        await late.send(
            {"type": "hello", "protocol": 1, "session_id": session["session_id"], "last_seq": 1}
        )
        refused = await late.receive()
        assert (refused["type"], refused["code"]) == ("error", "resume_gap")
        await late.close()
