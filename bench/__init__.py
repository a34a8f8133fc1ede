"""Streaming benchmarks: this project's transports against a raw ASGI relay and Starlette.

Run with ``make bench`` (``make bench-quick`` for a smoke run); see docs/benchmarks.md.
"""
