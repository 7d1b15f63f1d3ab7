"""Benchmarks of the agent service: latency, throughput, CPU and memory against the direct path."""
