"""`agent-service transcripts view`: the page of a session recorded through the live stack,
loaded in headless Chromium; and a session full of hostile text that must stay text."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from ide_client.sample import create_sample_workspace
from orchestrator.commands import EmitEvent
from orchestrator.events import (
    LlmStreamEnded,
    LlmTextDelta,
    LlmToolCallsCompleted,
    ModelToolCall,
    ToolResultReceived,
    UserMessageReceived,
)
from tests.support.chromium import Chromium, Page, png_colours, png_size
from tests.support.procs import ROOT
from tests.support.recorded_session import SessionDriver
from tests.support.stack import running_stack
from tests.test_e2e_transcripts import run_demo_turn
from transcripts import TranscriptRecorder
from wire import ToolCall

MODEL_WAIT, MODEL_STREAM, TOOL = (bytes.fromhex(c) for c in ("8250df", "c297ff", "1f883d"))
HOSTILE = (
    '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    '[click](javascript:window.pwned=3) <iframe src="https://example.com"></iframe>'
    "</pre></code></div><style>body{display:none}</style>"
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AGENT_TRANSCRIPTS"}
    return subprocess.run(
        [sys.executable, "-m", "agent_service", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


ON_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live_session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A demo turn (read, patch, diff, answer) recorded by the orchestrator of the live stack."""
    tmp = tmp_path_factory.mktemp("live")
    db = tmp / "t.db"
    workspace = create_sample_workspace(tmp / "ws")
    extra = {"llm-proxy": ["--demo-delay-ms", "2"], "orchestrator": ["--transcripts", str(db)]}
    with running_stack(tmp, extra_args=extra) as config:
        frames = await run_demo_turn(config.gateway_url, config.token, workspace)
    return db, str(frames[0]["session_id"])


@pytest.fixture(scope="module")
def hostile_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user, a model and an IDE that all answer with markup and script."""
    db = tmp_path_factory.mktemp("hostile") / "t.db"
    with TranscriptRecorder(db) as recorder:
        driver = SessionDriver.start(recorder, "evil", tool_output={"content": HOSTILE + "\nx"})
        driver.turn(HOSTILE)
        driver.feed(UserMessageReceived("second " + HOSTILE))
        driver.feed(LlmTextDelta("t2.1", HOSTILE))
        driver.feed(LlmStreamEnded("t2.1", "stop"))
        driver.feed(UserMessageReceived("third"))
        call = ModelToolCall("call_9", "read_file", '{"path": "x"}')
        driver.feed(LlmToolCallsCompleted("t3.1", (call,)))
        (sent,) = [
            command.event
            for command in driver.feed(LlmStreamEnded("t3.1", "tool_calls"))
            if isinstance(command, EmitEvent) and isinstance(command.event, ToolCall)
        ]
        driver.feed(
            ToolResultReceived(sent.call_id, ok=False, error_code=HOSTILE, error_message=HOSTILE)
        )
    return db


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chromium]:
    async with Chromium.launch(tmp_path_factory.mktemp("profile")) as chromium:
        yield chromium


async def load_view(browser: Chromium, db: Path, session_id: str, out: Path) -> Page:
    done = cli("transcripts", "view", session_id, "--db", str(db), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"written to {out}"
    page = await browser.open(out.resolve().as_uri())
    assert page.problems == []
    assert page.outside_requests() == []
    return page


BARS = """[...document.querySelectorAll('svg.waterfall .span')].map(g => {
  const bars = [...g.querySelectorAll('rect.bar')].map(r => r.getBBox());
  return {kind: g.classList.contains('model') ? 'model' : 'tool', key: g.dataset.span,
          x: Math.min(...bars.map(b => b.x)), end: Math.max(...bars.map(b => b.x + b.width)),
          parts: bars.length, firstToken: g.querySelectorAll('line.first-token').length,
          href: g.getAttribute('href'), tip: g.querySelector('title').textContent};
})"""


@ON_MODULE_LOOP
async def test_view_of_a_live_session_draws_a_waterfall_and_the_coloured_diff(
    browser: Chromium, live_session: tuple[Path, str], tmp_path: Path
) -> None:
    db, session_id = live_session
    page = await load_view(browser, db, session_id, tmp_path / "view.html")

    bars: list[dict[str, Any]] = await page.evaluate(BARS)
    assert [bar["kind"] for bar in bars] == ["model", "tool"] * 3 + ["model"]
    assert [bar["key"] for bar in bars if bar["kind"] == "tool"] == ["c1", "c2", "c3"]
    assert all(bar["end"] > bar["x"] for bar in bars)
    starts = [bar["x"] for bar in bars]
    assert starts == sorted(starts), "a waterfall: each row starts after the one above"
    assert all(
        bar["parts"] == 2 and bar["firstToken"] == 1 for bar in bars if bar["kind"] == "model"
    )
    assert [bar["href"] for bar in bars if bar["kind"] == "tool"] == [
        "#call-c1",
        "#call-c2",
        "#call-c3",
    ]
    assert "first output after" in bars[0]["tip"] and "ok after" in bars[1]["tip"]

    targets = await page.evaluate(
        "['c1','c2','c3'].map(id => !!document.getElementById('call-' + id))"
    )
    assert targets == [True, True, True]
    added = await page.evaluate(
        "[...document.querySelectorAll('pre.diff span.add')].map(s => s.textContent)"
    )
    assert '+  console.log("login called");' in added
    deleted_or_added = await page.evaluate("document.querySelectorAll('pre.diff span.del').length")
    assert deleted_or_added == 0
    file_text = await page.evaluate("document.querySelector('pre.text').textContent")
    assert file_text.startswith("// Session authentication for the sample app.\n")
    agent = await page.evaluate("document.querySelector('.item.agent .md p').textContent")
    assert agent.startswith("Done. I added a log line")

    whole = await page.screenshot(tmp_path / "view.png")
    width, height = png_size(whole)
    assert width >= 1200 and height > 900 and len(whole) > 50_000
    chart = await page.screenshot(tmp_path / "waterfall.png", "svg.waterfall")
    assert {MODEL_WAIT, MODEL_STREAM, TOOL} <= png_colours(chart)


@ON_MODULE_LOOP
async def test_view_keeps_markup_from_the_user_the_model_and_the_ide_as_text(
    browser: Chromium, hostile_session: Path, tmp_path: Path
) -> None:
    page = await load_view(browser, hostile_session, "evil", tmp_path / "evil.html")

    found = await page.evaluate(
        """({pwned: window.pwned ?? null,
             scripts: document.scripts.length,
             frames: document.querySelectorAll('iframe, img, object, embed').length,
             styles: document.querySelectorAll('style').length,
             handlers: [...document.querySelectorAll('*')].flatMap(e => [...e.attributes])
                 .filter(a => a.name.startsWith('on')).length,
             scriptLinks: [...document.links].filter(a => !a.href.startsWith('file:')).length,
             visible: getComputedStyle(document.body).display})"""
    )
    assert found == {
        "pwned": None,
        "scripts": 0,
        "frames": 0,
        "styles": 1,
        "handlers": 0,
        "scriptLinks": 0,
        "visible": "block",
    }
    texts = await page.evaluate(
        "[...document.querySelectorAll('.item .md, pre.text, .who code')].map(e => e.textContent)"
    )
    shown = [text for text in texts if "<script>window.pwned = 1</script>" in text]
    # two user messages, the model's text, the file's text, and the code and message of both
    # the failed result and the error event the IDE was sent about it
    assert len(shown) == 8, texts
    title = await page.evaluate("document.querySelector('.turn h3').textContent")
    assert title.startswith("Turn 1: <script>")
    await page.screenshot(tmp_path / "evil.png")


def test_view_writes_the_page_to_stdout_and_names_an_unknown_session(
    hostile_session: Path,
) -> None:
    done = cli("transcripts", "view", "evil", "--db", str(hostile_session), "--out", "-")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("<!doctype html>") and "<script" not in done.stdout
    missing = cli("transcripts", "view", "nope", "--db", str(hostile_session))
    assert missing.returncode == 1 and "[session_not_found]" in missing.stderr
