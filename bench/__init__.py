"""Benchmarks for pageview-streams: throughput, scale-out, latency, memory (issue 5).

Run ``python -m bench --help`` from the repository root. Every figure is printed beside a
baseline measured in the same run, because absolute numbers on a shared machine mean little.
"""
