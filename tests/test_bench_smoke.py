"""The benchmark at tiny sizes through real processes: every figure produced, every token delivered.

No timing thresholds here: the speed targets are the benchmark's own output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from benchmarks.directive import Directive
from benchmarks.processes import UpstreamProcess
from benchmarks.stamps import read_stamps, stamp_text
from benchmarks.upstream import MODEL

ROOT = Path(__file__).resolve().parents[1]
ROUTES = ["direct", "proxy", "pipeline", "in-process"]
TINY = [
    *("--rounds", "2", "--latency-tokens", "4", "--latency-rate", "200"),
    *("--throughput-tokens", "60", "--throughput-rounds", "1"),
    *("--sessions", "1,3", "--sweep-tokens", "20", "--sweep-rate", "100"),
]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpstreamProcess]:
    process = UpstreamProcess(tmp_path_factory.mktemp("upstream"))
    process.start()
    try:
        process.wait_ready()
        yield process
    finally:
        assert process.stop() == 0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    path = tmp_path_factory.mktemp("bench") / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "agent_service", "bench", *TINY, "--json", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(path.read_text()), done.stdout


def test_stamps_survive_text_merged_on_the_way() -> None:
    merged = stamp_text(17) + stamp_text(42) + stamp_text(1_700_000_000_000_000_000)
    assert read_stamps(merged) == [17, 42, 1_700_000_000_000_000_000]
    assert read_stamps("no tokens here") == []


def test_upstream_reads_the_directive_from_the_last_user_message() -> None:
    directive = Directive(tokens=7, rate=50.0, tool_call=True)
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": directive.message()},
        {"role": "tool", "tool_call_id": "call_1", "content": "{}"},
    ]
    assert Directive.from_messages(messages) == directive
    assert Directive.from_messages([{"role": "user", "content": "hello"}]).tool_call is False


def test_bench_upstream_streams_stamped_chunks_the_typed_openai_client_parses(
    upstream: UpstreamProcess,
) -> None:
    client = openai.OpenAI(base_url=upstream.base_url, api_key="none", max_retries=0)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": Directive(tokens=5).message()}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    stamps = read_stamps(text)
    assert len(stamps) == 5 and stamps == sorted(stamps)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_bench_upstream_answers_a_tool_directive_with_a_read_file_call_then_text(
    upstream: UpstreamProcess,
) -> None:
    client = openai.OpenAI(base_url=upstream.base_url, api_key="none", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": Directive(3, tool_call=True).message()}]
    first = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True))
    calls = [call for c in first for call in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function is not None and calls[0].function.name == "read_file"
    assert first[-1].choices[0].finish_reason == "tool_calls"
    call = {"id": calls[0].id, "type": "function", "function": {"name": "read_file"}}
    call["function"]["arguments"] = "".join(c.function.arguments or "" for c in calls if c.function)
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": calls[0].id, "content": "{}"},
    ]
    second = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in second)
    assert len(read_stamps(text)) == 3


def test_bench_reports_every_figure_for_every_route(tiny_run: tuple[dict[str, Any], str]) -> None:
    results, stdout = tiny_run
    figures = results["figures"]
    for name in ("ttft_ms", "token_ms", "tokens_per_s", "tool_call_ms", "tool_round_trip_ms"):
        assert list(figures[name]) == ROUTES, name
        assert figures[name]["direct"]["ratio_p50"] == 1
        assert all(figures[name][route]["p50"] > 0 for route in ROUTES), name
    assert figures["token_ms"]["pipeline"]["n"] == 2 * 4
    assert {target["name"] for target in results["targets"]} and all(
        target["measured"] is not None for target in results["targets"]
    )
    assert results["machine"]["cpus"] >= 1
    assert "target (pipeline, three processes)" in stdout and "concurrency sweep" in stdout


def test_bench_writes_its_page_of_charts_next_to_the_json(
    tiny_run: tuple[dict[str, Any], str],
) -> None:
    stdout = tiny_run[1]
    json_path = Path(stdout.rsplit("written to ", 1)[1].split(" and ")[0])
    html = json_path.with_suffix(".html").read_text()
    assert stdout.rstrip().endswith(f"written to {json_path} and {json_path.with_suffix('.html')}")
    assert html.startswith("<!doctype html>") and "<script" not in html
    assert html.count('<svg class="chart distribution"') == 4
    assert html.count('<svg class="chart lines"') == 5
    assert all(f'data-route="{route}"' in html for route in ROUTES)


def test_bench_counts_the_cpu_of_each_service_of_each_route(
    tiny_run: tuple[dict[str, Any], str],
) -> None:
    for scenario in ("paced", "full_speed"):
        cpu = tiny_run[0]["figures"]["cpu_us_per_token"][scenario]
        assert {"llm-proxy", "orchestrator", "gateway", "services"} <= set(cpu["pipeline"])
        assert {"llm-proxy", "gateway+orchestrator", "services"} <= set(cpu["in-process"])
        assert "services" not in cpu["direct"] and "llm-proxy" in cpu["proxy"]
        assert all(cpu[route]["all processes"]["p50"] > 0 for route in ROUTES)


def test_bench_delivers_every_token_sent_in_frames_it_counts(
    tiny_run: tuple[dict[str, Any], str],
) -> None:
    figures = tiny_run[0]["figures"]
    groups = [*figures["frames"].values(), *figures["sweep"].values()]
    for routes in groups:
        assert list(routes) and set(routes) == set(ROUTES)
        for counts in routes.values():
            assert "failed" not in counts, counts
            assert counts["tokens_received"] == counts["tokens_sent"] > 0
            assert 1 <= counts["frames"] <= counts["tokens_received"]
    assert figures["frames"]["full_speed"]["pipeline"]["tokens_sent"] == 60
    assert figures["frames"]["tool_call"]["proxy"]["tokens_sent"] == 2 * 5
    assert figures["sweep"]["3"]["pipeline"]["tokens_sent"] == 3 * 20


def test_bench_tells_tokens_from_the_frames_merged_text_came_in(
    tiny_run: tuple[dict[str, Any], str],
) -> None:
    # At full speed the orchestrator reads many SSE events at once and sends their text as one
    # agent_delta: fewer frames than tokens, and every token there. The tables keep the two
    # counts in columns of their own, so a frame count is never read as tokens received.
    results, stdout = tiny_run
    full_speed = results["figures"]["frames"]["full_speed"]["pipeline"]
    assert full_speed["frames"] < full_speed["tokens_received"] == full_speed["tokens_sent"]
    sweep = stdout.split("concurrency sweep", 1)[1]
    assert "tokens received/sent" in sweep and "frames/received" not in sweep
    assert "60/60" in sweep
