"""Per-run figures from the client's replies, the upstream's log and the server's samples."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench.client import Reply, reply_text


@dataclass
class Samples:
    """What the orchestrator measured around one run."""

    wall: float  # seconds from the first request to the last reply's end
    server_cpu: float  # CPU-seconds the server used over that time
    client_cpu: float  # CPU-seconds of the client + upstream (the other core)
    other_cpu: float  # CPU-seconds used by every other process on the machine (noise)
    idle_rss: int
    idle_threads: int
    open_rss: int  # while every stream was open
    open_threads: int
    open_streams: int  # streams open at that moment
    idle_fds: int
    open_fds: int
    writes: dict[str, int]  # rows written per chat table during the run
    flush_interval: float


def pct(values: list[float], q: float) -> float | None:
    """A percentile in milliseconds, or None without data."""
    return float(np.percentile(values, q)) * 1000 if values else None


def token_ends(tokens: int) -> list[int]:
    """Where each token of the scripted reply ends, in characters."""
    return list(itertools.accumulate(len(f" t{i}") for i in range(tokens)))


def latencies(reply: Reply, sent_at: list[float], ends: list[int]) -> list[float]:
    """Arrival - upstream send time, for every token, at the chunk that completed it."""
    out: list[float] = []
    index = 0
    for arrival, length in reply.chunks:
        while index < min(len(ends), len(sent_at)) and ends[index] <= length:
            out.append(arrival - sent_at[index])
            index += 1
    return out


def figures(
    replies: list[Reply], log: dict[str, Any], samples: Samples, *, tokens: int
) -> dict[str, Any]:
    """Every figure of one run (latencies in ms, CPU per 1,000 tokens, memory per stream)."""
    expected, ends = reply_text(tokens), token_ends(tokens)
    added: list[float] = []
    ttft: list[float] = []
    post: list[float] = [r.answered_at - r.sent_at for r in replies if r.answered_at]
    durations: list[float] = []
    errors: list[str] = []
    incomplete = 0
    for reply in replies:
        upstream = log.get(reply.bench_id)
        if reply.error:
            errors.append(reply.error)
        if not (reply.ended and reply.error is None and reply.text == expected):
            incomplete += 1
        if not upstream or not upstream["sent_at"] or not reply.chunks:
            continue
        sent = upstream["sent_at"]
        added += latencies(reply, sent, ends)
        upstream_ttft = sent[0] - upstream["received_at"]
        ttft.append(reply.chunks[0][0] - reply.sent_at - upstream_ttft)
        durations.append(sent[-1] - upstream["received_at"])
    k = len(replies)
    delivered = sum(min(len(r.text), len(expected)) for r in replies)
    delivered_tokens = delivered / len(expected) * tokens if expected else 0
    duration = float(np.median(durations)) if durations else 0.0
    message_writes = samples.writes.get("chat_message")
    return {
        "k": k,
        "added_p50": pct(added, 50),
        "added_p99": pct(added, 99),
        "ttft_p50": pct(ttft, 50),
        "ttft_p99": pct(ttft, 99),
        "post_p50": pct(post, 50),
        "post_p99": pct(post, 99),
        "cpu_per_1k": samples.server_cpu / (delivered_tokens / 1000) if delivered_tokens else None,
        "rss_kb_per_stream": (samples.open_rss - samples.idle_rss) / 1024 / samples.open_streams
        if samples.open_streams
        else None,
        "threads_per_stream": (samples.open_threads - samples.idle_threads) / samples.open_streams
        if samples.open_streams
        else None,
        "fds_per_stream": (samples.open_fds - samples.idle_fds) / samples.open_streams
        if samples.open_streams
        else None,
        "errors": len(errors),
        "incomplete": incomplete,
        "error_examples": sorted(set(errors))[:3],
        "writes_per_reply": message_writes / k if message_writes is not None and k else None,
        "conversation_writes_per_reply": samples.writes.get("chat_conversation", 0) / k
        if samples.writes
        else None,
        "writes_bound": 2 + duration / samples.flush_interval if duration else None,
        "reply_seconds": duration,
        "server_core_pct": 100 * samples.server_cpu / samples.wall if samples.wall else None,
        "client_core_pct": 100 * samples.client_cpu / samples.wall if samples.wall else None,
        "other_cores_pct": 100 * samples.other_cpu / samples.wall if samples.wall else None,
        "samples": asdict(samples),
    }
