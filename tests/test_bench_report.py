"""The bench's HTML report, drawn from a recorded run's JSON and loaded in headless Chromium."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support.chromium import Chromium, Page, png_colours, png_size
from tests.support.procs import ROOT

RECORDED = Path(__file__).parent / "data" / "bench-tiny.json"
ROUTES = ["direct", "proxy", "pipeline", "in-process"]
PIPELINE, DIRECT = bytes.fromhex("8250df"), bytes.fromhex("59636e")
ON_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent_service", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chromium]:
    async with Chromium.launch(tmp_path_factory.mktemp("profile")) as chromium:
        yield chromium


async def report(browser: Chromium, results: dict[str, Any], tmp_path: Path) -> Page:
    source = tmp_path / "results.json"
    source.write_text(json.dumps(results))
    done = bench("--from", str(source))
    assert done.returncode == 0, done.stderr
    html = tmp_path / "results.html"
    assert done.stdout.endswith(f"written to {html}\n")
    assert "target (pipeline, three processes)" in done.stdout
    page = await browser.open(html.resolve().as_uri())
    assert page.problems == [] and page.outside_requests() == []
    return page


def test_bench_fails_loudly_when_a_route_received_fewer_tokens_than_were_sent(
    tmp_path: Path,
) -> None:
    results = json.loads(RECORDED.read_text())
    results["figures"]["sweep"]["3"]["in-process"]["tokens_received"] -= 2
    results["figures"]["frames"]["paced"]["proxy"]["tokens_received"] -= 1
    source = tmp_path / "results.json"
    source.write_text(json.dumps(results))
    done = bench("--from", str(source))
    assert done.returncode == 1
    assert "FAILED: tokens the upstream sent never reached the client" in done.stderr
    assert "in-process, 3 sessions: received 58 of 60 tokens sent" in done.stderr
    assert "proxy, paced: received 7 of 8 tokens sent" in done.stderr
    assert "concurrency sweep" in done.stdout, "the figures are still printed"


CHARTS = """[...document.querySelectorAll('svg.chart')].map(svg => ({
  kind: svg.classList[1], title: svg.querySelector('.title').textContent,
  routes: [...svg.querySelectorAll('g.route')].map(g => g.dataset.route),
  boxes: svg.querySelectorAll('rect.box').length, bars: svg.querySelectorAll('rect.bar').length,
  points: Object.fromEntries([...svg.querySelectorAll('g.route')].map(
      g => [g.dataset.route, g.querySelectorAll('circle.point').length])),
  widths: [...svg.querySelectorAll('rect.box, rect.bar')].map(r => r.getBBox().width),
}))"""


@ON_MODULE_LOOP
async def test_report_draws_latency_boxes_throughput_bars_and_sweep_lines_for_every_route(
    browser: Chromium, tmp_path: Path
) -> None:
    results = json.loads(RECORDED.read_text())
    page = await report(browser, results, tmp_path)

    charts = await page.evaluate(CHARTS)
    kinds = [chart["kind"] for chart in charts]
    assert kinds == ["distribution"] * 4 + ["bars"] * 3 + ["lines"] * 5
    assert all(chart["routes"] == ROUTES for chart in charts[:10])
    assert [chart["boxes"] for chart in charts[:4]] == [4] * 4
    assert [chart["bars"] for chart in charts[4:7]] == [4] * 3
    assert all(chart["points"] == dict.fromkeys(ROUTES, 2) for chart in charts[7:10])
    services = dict.fromkeys(["proxy", "pipeline", "in-process"], 2)
    assert [chart["points"] for chart in charts[10:]] == [services, services], "direct has none"
    assert all(width > 0 for chart in charts for width in chart["widths"])
    assert charts[0]["title"] == "time to first token (ms)"
    targets = await page.evaluate("document.querySelectorAll('table.targets tr').length")
    assert targets == 1 + len(results["targets"])

    whole = await page.screenshot(tmp_path / "report.png")
    assert png_size(whole)[1] > 900
    box = await page.screenshot(tmp_path / "ttft.png", "svg.chart.distribution")
    assert {PIPELINE, DIRECT} <= png_colours(box)


@ON_MODULE_LOOP
async def test_report_marks_a_failed_sweep_level_and_draws_figures_of_older_runs(
    browser: Chromium, tmp_path: Path
) -> None:
    results = copy.deepcopy(json.loads(RECORDED.read_text()))
    results["figures"]["sweep"]["3"]["in-process"] = {"failed": "<b>refused</b>"}
    for figure in results["figures"]["ttft_ms"].values():
        for key in ("min", "p25", "p75", "p90", "max"):
            figure.pop(key)
    page = await report(browser, results, tmp_path)

    charts = await page.evaluate(CHARTS)
    assert charts[0]["boxes"] == 4
    assert all(chart["points"]["in-process"] == 1 for chart in charts if chart["kind"] == "lines")
    failure = await page.evaluate("document.querySelector('ul.bad li').textContent")
    assert failure == "in-process failed at 3 sessions: <b>refused</b>"


def test_bench_from_a_file_that_is_no_bench_result_says_so_in_one_line(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    done = bench("--from", str(other))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"agent-service bench: {other} is not the JSON of a bench run")
    assert len(done.stderr.splitlines()) == 1
