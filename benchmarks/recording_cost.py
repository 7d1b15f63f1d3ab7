"""What transcript recording costs per streamed token: the hot-path calls, then the flush.

Each token is what the runtime records for one model chunk: `record_input`
of an `LlmTextDelta` and `record_outputs` of the `EmitEvent(AgentDelta)` the
core returns. Flushes come every `--step` tokens, as at step boundaries.

    .venv/bin/python -m benchmarks.recording_cost [--tokens 50000] [--step 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from orchestrator import Command, CoreConfig, EmitEvent, LlmTextDelta, encode
from transcripts import TranscriptRecorder
from wire import AgentDelta


def measure(tokens: int, step: int, directory: Path) -> dict[str, float]:
    """Microseconds per token spent in encoding alone, in `record_*`, and in `flush`."""
    chunks = [LlmTextDelta("t1.1", f" word{i}") for i in range(tokens)]
    emits: list[list[Command]] = [
        [EmitEvent(AgentDelta.model_construct(session_id="s1", seq=i, turn_id="t1", text=c.text))]
        for i, c in enumerate(chunks)
    ]
    started = time.perf_counter()
    for chunk, emit in zip(chunks, emits, strict=True):
        encode(chunk)
        encode(emit[0])
    encoding = time.perf_counter() - started

    recorder = TranscriptRecorder(directory / "bench.db")
    recorder.session_started("s1", CoreConfig(), "bench")
    recorder.flush()
    recording = flushing = 0.0
    for start in range(0, tokens, step):
        began = time.perf_counter()
        for index in range(start, min(start + step, tokens)):
            recorder.record_input("s1", chunks[index])
            recorder.record_outputs("s1", emits[index])
        flushed = time.perf_counter()
        recorder.flush()
        recording += flushed - began
        flushing += time.perf_counter() - flushed
    recorder.close()
    per_token = 1e6 / tokens
    return {
        "encode only": encoding * per_token,
        "record_input + record_outputs": recording * per_token,
        "flush (redact + write)": flushing * per_token,
        "total": (recording + flushing) * per_token,
    }


def main() -> None:
    """Print the cost per token, best of three runs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--step", type=int, default=200, help="tokens between flushes")
    args = parser.parse_args()
    runs = []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as directory:
            runs.append(measure(args.tokens, args.step, Path(directory)))
    print(f"{args.tokens} tokens, a flush every {args.step} tokens; microseconds per token:")
    for name in runs[0]:
        print(f"  {name:<32} {min(run[name] for run in runs):6.2f}")


if __name__ == "__main__":
    main()
