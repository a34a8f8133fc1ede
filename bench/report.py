"""Medians over rounds, ratios to the raw relay, the markdown table, the plot."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.targets.specs import TARGETS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RESULTS = ROOT / "bench" / "results"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
FIGURES = [
    "added_p50", "added_p99", "ttft_p50", "ttft_p99", "post_p50", "post_p99", "cpu_per_1k",
    "rss_kb_per_stream",
    "threads_per_stream", "fds_per_stream", "errors", "incomplete", "writes_per_reply",
    "writes_bound", "conversation_writes_per_reply", "server_core_pct", "client_core_pct",
    "other_cores_pct",
]  # fmt: skip
PACKAGES = ["Django", "channels", "daphne", "Twisted", "uvicorn", "starlette", "sse-starlette",
            "anthropic", "httpx2"]  # fmt: skip
SATURATED = 90.0  # % of a core above which the client side may distort the figures


def median(values: list[float | None]) -> float | None:
    """The median of the known values."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def aggregate(results: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (target, K): median of each figure over rounds, and the median per-round ratio
    to the raw relay's same figure."""
    by_key: dict[tuple[str, int, int], dict[str, Any]] = {
        (r["target"], r["k"], r["round"]): r for r in results
    }
    table: dict[tuple[str, int], dict[str, Any]] = {}
    for target, k in dict.fromkeys((r["target"], r["k"]) for r in results):
        rounds = [r for r in results if (r["target"], r["k"]) == (target, k)]
        good = [r for r in rounds if "failed" not in r]
        row: dict[str, Any] = {
            "target": target, "k": k, "tps": rounds[0]["tps"], "rounds": len(good),
            "failed": [r["failed"] for r in rounds if "failed" in r],
            "error_examples": sorted({e for r in good for e in r.get("error_examples", [])})[:3],
        }  # fmt: skip
        for fig in FIGURES:
            row[fig] = median([r.get(fig) for r in good])
            ratios = []
            for r in good:
                raw = by_key.get(("raw", k, r["round"]), {}).get(fig)
                if raw and r.get(fig) is not None:
                    ratios.append(r[fig] / raw)
            row[f"{fig}_x"] = median(ratios)
        table[(target, k)] = row
    return table


def num(value: float | None, digits: int = 1) -> str:
    """A figure, or a dash."""
    return "–" if value is None else f"{value:.{digits}f}"


def times(value: float | None) -> str:
    """A ratio to the raw relay."""
    return "" if value is None else f" ({value:.2f}×)"


def row_cells(row: dict[str, Any]) -> list[str]:
    """One table row's cells."""
    bound = f" (≤ {row['writes_bound']:.0f})" if row["writes_bound"] else ""
    client = num(row["client_core_pct"], 0) + (
        " ⚠" if (row["client_core_pct"] or 0) > SATURATED else ""
    )
    return [
        f"{row['k']} ({row['tps']:g}/s)",
        row["target"],
        f"{num(row['added_p50'])} / {num(row['added_p99'])}{times(row['added_p99_x'])}",
        f"{num(row['ttft_p50'])} / {num(row['ttft_p99'])}{times(row['ttft_p50_x'])}",
        f"{num(row['cpu_per_1k'], 3)}{times(row['cpu_per_1k_x'])}",
        f"{num(row['rss_kb_per_stream'])}{times(row['rss_kb_per_stream_x'])}",
        num(row["threads_per_stream"], 2),
        f"{num(row['errors'], 0)} / {num(row['incomplete'], 0)}",
        num(row["writes_per_reply"]) + bound,
        f"{num(row['server_core_pct'], 0)} / {client} / {num(row['other_cores_pct'], 0)}",
    ]


HEADER = [
    "K (R)", "target", "added latency p50 / p99 ms (p99 ×raw)",
    "TTFT overhead p50 / p99 ms (p50 ×raw)", "server CPU s / 1k tokens (×raw)",
    "RSS KB / open stream (×raw)", "threads / open stream", "errors / incomplete",
    "DB writes / reply (bound)", "CPU % server / client+upstream / other processes",
]  # fmt: skip


def markdown_table(table: dict[tuple[str, int], dict[str, Any]]) -> str:
    """The results as one markdown table, grouped by K."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in sorted(table.values(), key=lambda r: r["k"]):
        lines.append("| " + " | ".join(row_cells(row)) + " |")
    return "\n".join(lines)


def checks(table: dict[tuple[str, int], dict[str, Any]]) -> list[str]:
    """The issue's targets for each project target: met or missed, with the figure."""
    lines = []
    for name in dict.fromkeys(t for t, _ in table):
        if not TARGETS[name].is_project:
            continue
        rows = {k: r for (t, k), r in table.items() if t == name}
        lines.append(f"- **{name}**: " + "; ".join(target_checks(rows, table)))
    return lines


def verdict(ok: bool | None, text: str) -> str:
    """One check's text."""
    return f"{text} {'✅' if ok else '❌' if ok is not None else '(not measured)'}"


def target_checks(
    rows: dict[int, dict[str, Any]], table: dict[tuple[str, int], dict[str, Any]]
) -> list[str]:
    """The checks of one target against the issue's targets."""
    out = []
    clean = all(
        r["errors"] == 0 and r["incomplete"] == 0 and not r["failed"] for r in rows.values()
    )
    out.append(verdict(clean, "every reply complete and exact"))
    cpu = [r["cpu_per_1k_x"] for r in rows.values() if r["cpu_per_1k_x"] is not None]
    out.append(
        verdict(
            max(cpu) <= 1.5 if cpu else None, f"CPU ≤ 1.5× raw (max {max(cpu, default=0):.2f}×)"
        )
    )
    if 200 in rows and ("raw", 200) in table and rows[200]["added_p99"] is not None:
        gap = rows[200]["added_p99"] - (table[("raw", 200)]["added_p99"] or 0)
        out.append(verdict(gap <= 10, f"p99 at K=200 {gap:+.1f} ms vs raw (≤ +10)"))
    for k, limit in ((1, 20), (200, 100)):
        if k in rows and rows[k]["ttft_p50"] is not None:
            value = rows[k]["ttft_p50"]
            out.append(
                verdict(value <= limit, f"TTFT overhead p50 at K={k} {value:.0f} ms (≤ {limit})")
            )
    rss = [
        r["rss_kb_per_stream"]
        for k, r in rows.items()
        if k >= 50 and r["rss_kb_per_stream"] is not None
    ]
    if rss:
        out.append(verdict(max(rss) <= 100, f"memory ≤ 100 KB/stream (max {max(rss):.0f})"))
    threads = [
        r["threads_per_stream"]
        for k, r in rows.items()
        if k >= 50 and r["threads_per_stream"] is not None
    ]
    if threads:
        out.append(
            verdict(max(threads) < 0.1, f"no thread per stream (max {max(threads):.2f}/stream)")
        )
    writes = [
        (r["writes_per_reply"], r["writes_bound"])
        for r in rows.values()
        if r["writes_per_reply"] is not None and r["writes_bound"]
    ]
    if writes:
        ok = all(w <= b for w, b in writes)
        out.append(verdict(ok, "DB writes ≤ 2 + duration / flush interval"))
    return out  # fmt: skip


def machine() -> str:
    """CPU model, cores, OS and versions, for the report's header."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions = ", ".join(f"{p} {safe_version(p)}" for p in PACKAGES)
    return (
        f"{model}, {os.cpu_count()} cores; {platform.platform()}; "
        f"Python {platform.python_version()}; {versions}; code: {git_state()}"
    )


def git_state() -> str:
    """The commit measured, and whether the project's code had uncommitted changes."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "chat", "chatsite")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}{' + uncommitted changes in chat/ or chatsite/' if dirty else ''}"


def safe_version(package: str) -> str:
    """An installed package's version, or "?"."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def generated_block(results: list[dict[str, Any]], args: argparse.Namespace, elapsed: float) -> str:
    """The generated part of the report."""
    table = aggregate(results)
    failed = [
        f"- {r['target']} K={r['k']} round {r['round']}: {r['failed']}"
        for r in results
        if "failed" in r
    ]
    errors = [
        f"- {r['target']} K={r['k']}: {e}" for r in table.values() for e in r["error_examples"]
    ]
    parts = [
        f"Run {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} ({elapsed / 60:.0f} min): "
        f"K = {', '.join(map(str, args.ks))}; {args.rounds} round(s); {args.tokens} tokens per "
        f"reply; upstream TTFT {args.ttft:g} s; streams opened over {args.open_over:g} s; "
        f"R = min({args.max_tps:g}, {args.total_tps:g} / K) tokens/s.",
        "",
        f"Machine: {machine()}.",
        "",
        markdown_table(table),
        "",
        "Checks against the targets of issue 7:",
        "",
        *checks(table),
    ]
    if failed or errors:
        parts += ["", "Failures:", "", *failed, *errors]
    png = args.out.with_suffix(".png")
    if plot(table, png):
        parts += ["", f"![added latency p99 and CPU per 1,000 tokens against K]({png.name})"]
    return "\n".join(parts)  # fmt: skip


def plot(table: dict[tuple[str, int], dict[str, Any]], path: Path) -> bool:
    """Added latency p99 and CPU per 1,000 tokens against K, one line per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    names = list(dict.fromkeys(t for t, _ in table))
    for ax, fig_name, label in (
        (axes[0], "added_p99", "added latency p99 (ms)"),
        (axes[1], "cpu_per_1k", "server CPU s per 1,000 tokens"),
    ):
        for name in names:
            points = sorted(
                (k, r[fig_name])
                for (t, k), r in table.items()
                if t == name and r[fig_name] is not None
            )
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("K concurrent streams")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True  # fmt: skip


def write_markdown(path: Path, block: str) -> None:
    """Replace the generated block of ``path`` (keeping hand-written text around it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + START + "\n" + block + "\n" + END + rest.split(END, 1)[1]
    else:
        text = f"# Streaming benchmarks\n\n{START}\n{block}\n{END}\n"
    path.write_text(text)


def progress_line(result: dict[str, Any], seconds: float) -> str:
    """One line per run while the benchmark goes."""
    head = f"K={result['k']:<4} round {result['round']} {result['target']:<14}"
    if "failed" in result:
        return f"{head} FAILED: {result['failed']} (log {result.get('log')})"
    return (
        f"{head} added p50/p99 {num(result['added_p50'])}/{num(result['added_p99'])} ms, "
        f"TTFT+ {num(result['ttft_p50'])} ms (POST {num(result['post_p50'])}), "
        f"CPU {num(result['cpu_per_1k'], 3)} s/1k, "
        f"RSS {num(result['rss_kb_per_stream'])} KB/stream, "
        f"threads {num(result['threads_per_stream'], 2)}/stream, "
        f"fds {num(result['fds_per_stream'], 1)}/stream, "
        f"err {result['errors']}/{result['incomplete']}, "
        f"writes {num(result['writes_per_reply'])}, "
        f"CPU% {num(result['server_core_pct'], 0)}/{num(result['client_core_pct'], 0)}"
        f"/other {num(result['other_cores_pct'], 0)} "
        f"({seconds:.0f} s)"
    )


def keep_logs(workdir: Path, results: list[dict[str, Any]]) -> None:
    """Copy the server logs of failed or erroring runs to bench/results/logs/."""
    dest = RESULTS / "logs"
    for result in results:
        if "failed" in result or result.get("errors") or result.get("incomplete"):
            log = workdir / f"{result['target']}-k{result['k']}-r{result['round']}.log"
            if log.exists():
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copy(log, dest / log.name)


def publish(results: list[dict[str, Any]], args: argparse.Namespace, elapsed: float) -> None:
    """Save the raw results, print the table and write the markdown report and plot."""
    if not results:
        print("no results")
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"run-{stamp}.json").write_text(json.dumps(results, indent=1, default=str))
    block = generated_block(results, args, elapsed)
    print("\n" + block)
    write_markdown(args.out, block)
    print(f"\nwritten to {args.out} (raw results in {RESULTS}/run-{stamp}.json)")
