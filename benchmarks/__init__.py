"""Benchmarks of the agent service: latency, throughput, CPU and memory against the direct path.

Its one public module is `cli`, the `agent-service bench` command (`configure`, `run`); the
rest is how it measures.
"""

from benchmarks import cli

__all__ = ["cli"]
