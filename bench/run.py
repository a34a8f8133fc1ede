"""Run the streaming benchmark: ``python -m bench.run`` (``--quick`` for a smoke run).

For each K, for each round, every target in turn (interleaved): a fresh database, a fresh
server pinned to core 0, a warm-up reply, then K conversations opened over ~2 s against
the fake upstream (core 1, with this client). Figures are medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench import procs, profiling, report
from bench.client import HTTPConnection, Reply, Target, run_load
from bench.databases import BenchDatabase, pg_available
from bench.metrics import Samples, figures
from bench.targets.specs import TARGETS, TargetSpec

SERVER_CORE, CLIENT_CORE = 0, 1
FLUSH_INTERVAL = 0.5  # the project's default (chat/conf.py), stated for the write bound
DEFAULT_TARGETS = ["raw", "starlette", "sse-daphne", "sse-uvicorn", "ws-daphne", "sse-daphne-pg"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K = 1, 50; one round")
    parser.add_argument("--ks", type=lambda s: [int(k) for k in s.split(",")], default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--targets", type=lambda s: s.split(","), default=DEFAULT_TARGETS)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--ttft", type=float, default=0.2, help="upstream time to first token")
    parser.add_argument("--open-over", type=float, default=2.0)
    parser.add_argument("--max-tps", type=float, default=50.0)
    parser.add_argument("--total-tps", type=float, default=1500.0)
    parser.add_argument("--out", type=Path, default=None, help="markdown report path")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the server during each load phase"
    )
    args = parser.parse_args(argv)
    args.ks = args.ks or ([1, 50] if args.quick else [1, 50, 200, 500])
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.out is None:
        name = "benchmarks-quick.md" if args.quick else "benchmarks.md"
        args.out = (report.RESULTS if args.quick else report.DOCS) / name
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if "raw" not in args.targets:
        parser.error("the raw relay is the reference: keep it in --targets")
    return args


async def fetch_log(port: int) -> dict[str, Any]:
    """Take the upstream's send-time log (and clear it)."""
    conn = await HTTPConnection.open(port)
    try:
        conn.send("GET", "/bench/log", {})
        _status, headers = await conn.head()
        return dict(json.loads(await conn.read_all(headers)))
    finally:
        conn.close()


class Bench:
    """One benchmark invocation: the upstream, the databases and the results."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.upstream: procs.Child | None = None
        self.dbs: dict[str, BenchDatabase] = {}
        self.results: list[dict[str, Any]] = []
        self.me = psutil.Process()

    def setup(self) -> None:
        """Start the upstream and build the database templates the targets need."""
        port = procs.free_port()
        self.upstream = procs.start(
            ["-m", "bench.upstream", "--port", str(port), "--ttft", str(self.args.ttft)],
            core=CLIENT_CORE, port=port, env={}, log=self.workdir / "upstream.log",
        )  # fmt: skip
        engines = {TARGETS[t].db for t in self.args.targets} - {None}
        if "postgres" in engines and not pg_available():
            print("PostgreSQL not reachable on 127.0.0.1:5432: skipping the -pg targets")
            self.args.targets = [t for t in self.args.targets if TARGETS[t].db != "postgres"]
            engines.discard("postgres")
        for engine in sorted(e for e in engines if e):
            print(f"preparing the {engine} template ({max(self.args.ks) + 1} users)…", flush=True)
            db = BenchDatabase(engine, self.workdir, users=max(self.args.ks) + 1)
            db.build_template()
            self.dbs[engine] = db

    def teardown(self) -> None:
        """Stop everything we started and drop the PostgreSQL databases."""
        procs.stop_all()
        for db in self.dbs.values():
            db.drop()

    def server_env(self, spec: TargetSpec) -> dict[str, str]:
        """The server's environment: the fake upstream, and the project's settings."""
        assert self.upstream is not None
        env = {
            "ANTHROPIC_API_KEY": "bench",
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{self.upstream.port}",
        }
        if spec.db:
            env |= {
                "CHAT_PROVIDER": "anthropic",
                "DJANGO_DEBUG": "0",
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "DATABASE_URL": self.dbs[spec.db].url,
                "DJANGO_SETTINGS_MODULE": "chatsite.settings",
                # One message per user per run: no cap or throttle may refuse one.
                "CHAT_MAX_CONCURRENT_PER_USER": "100",
                "API_THROTTLE_RATE": "",
            }
        return env

    def tps(self, k: int) -> float:
        """Each stream's pace at K streams: R = min(50, 1500 / K)."""
        return min(self.args.max_tps, self.args.total_tps / k)

    def run_all(self) -> None:
        """Every K, round and target, interleaved; Ctrl-C stops after the current run."""
        stopping = False

        def stop_soon(*_: object) -> None:
            nonlocal stopping
            stopping = True
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second one: now
            print("stopping after this run (Ctrl-C again to abort)", file=sys.stderr)

        signal.signal(signal.SIGINT, stop_soon)
        partial = report.RESULTS / "partial.json"
        partial.parent.mkdir(parents=True, exist_ok=True)
        for k in self.args.ks:
            for rnd in range(self.args.rounds):
                for name in self.args.targets:
                    if stopping:
                        return
                    started = time.monotonic()
                    result = asyncio.run(self.run_one(TARGETS[name], k, rnd))
                    self.results.append(result)
                    partial.write_text(json.dumps(self.results, default=str))
                    print(report.progress_line(result, time.monotonic() - started), flush=True)

    async def run_one(self, spec: TargetSpec, k: int, rnd: int) -> dict[str, Any]:
        """One target at one K: fresh database and server, warm-up, load, figures."""
        assert self.upstream is not None
        base: dict[str, Any] = {"target": spec.name, "k": k, "round": rnd, "tps": self.tps(k)}
        db = self.dbs.get(spec.db) if spec.db else None
        if db is not None:
            db.fresh()
        port = procs.free_port()
        log = self.workdir / f"{spec.name}-k{k}-r{rnd}.log"
        server = procs.start(
            spec.command(port), core=SERVER_CORE, port=port, env=self.server_env(spec), log=log
        )
        try:
            return base | await self.measure(spec, server, db, k, rnd)
        except Exception as exc:
            return base | {"failed": f"{type(exc).__name__}: {exc}", "log": str(log)}
        finally:
            server.stop()

    async def measure(
        self, spec: TargetSpec, server: procs.Child, db: BenchDatabase | None, k: int, rnd: int
    ) -> dict[str, Any]:
        """Warm up, then run K conversations while sampling the server."""
        assert self.upstream is not None
        target = Target(spec.name, spec.kind, server.port)
        prefix = f"{spec.name}-k{k}-r{rnd}"
        convs = db.conversations(k, prefix) if db else [db_free(f"{prefix}-{i}") for i in range(k)]
        warm = db.warmup_conversation(prefix) if db else db_free(f"{prefix}-warm")
        await self.warm_up(target, warm)
        await fetch_log(self.upstream.port)
        await asyncio.sleep(0.5)
        ps, up = server.ps, self.upstream.ps
        idle = procs.footprint(ps)
        writes_before = db.writes() if db else {}
        cpu0, client0 = procs.cpu_seconds(ps), procs.cpu_seconds(self.me) + procs.cpu_seconds(up)
        busy0 = procs.machine_busy_seconds()
        wall0 = time.monotonic()
        spy_out = report.RESULTS / f"profile-{prefix}.txt"
        spy = profiling.start(ps.pid, spy_out, core=CLIENT_CORE) if self.args.profile else None
        all_open = asyncio.Event()
        live = [Reply(conv.bench_id) for conv in convs]
        timeout = self.args.open_over + self.args.ttft + 2 * self.args.tokens / self.tps(k) + 30
        load = asyncio.create_task(
            run_load(
                target, convs, tokens=self.args.tokens, tps=self.tps(k), ttft=self.args.ttft,
                open_over=self.args.open_over, limit=timeout, all_open=all_open,
                replies=live,
            )
        )  # fmt: skip
        await asyncio.wait_for(all_open.wait(), timeout)
        await asyncio.sleep(0.2)
        opened = procs.footprint(ps)
        # Streams sampled: started, not yet ended (a short run may have some finished).
        open_streams = sum(1 for r in live if r.chunks and not r.ended and not r.error)
        replies: list[Reply] = await asyncio.wait_for(load, timeout + 30)
        if spy is not None:
            profiling.stop(spy)
            spy_out.with_suffix(".summary").write_text(profiling.summarise(spy_out))
        await asyncio.sleep(0.3)  # let the server finish its last writes and teardown
        wall = time.monotonic() - wall0
        cpu = procs.cpu_seconds(ps) - cpu0
        client = procs.cpu_seconds(self.me) + procs.cpu_seconds(up) - client0
        other = procs.machine_busy_seconds() - busy0 - cpu - client
        writes_after = db.writes() if db else {}
        samples = Samples(
            wall=wall, server_cpu=cpu, client_cpu=client, other_cpu=max(0.0, other),
            idle_rss=idle.rss, idle_threads=idle.threads,
            open_rss=opened.rss, open_threads=opened.threads,
            open_streams=open_streams, idle_fds=idle.fds, open_fds=opened.fds,
            writes={t: writes_after.get(t, 0) - n for t, n in writes_before.items()}
            | {t: n for t, n in writes_after.items() if t not in writes_before},
            flush_interval=FLUSH_INTERVAL,
        )  # fmt: skip
        return figures(
            replies, await fetch_log(self.upstream.port), samples, tokens=self.args.tokens
        )

    async def warm_up(self, target: Target, conv: Any) -> None:
        """One short reply first, so imports and client set-up are not measured."""
        done = asyncio.Event()
        [reply] = await run_load(
            target, [conv], tokens=5, tps=0, ttft=0, open_over=0, limit=60, all_open=done
        )
        if reply.error or not reply.ended:
            raise RuntimeError(f"warm-up failed: {reply.error or 'no end marker'}")


def db_free(bench_id: str) -> Any:
    """A conversation for a target without users (the peers)."""
    from bench.client import Conversation

    return Conversation(bench_id)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run, then print and write the report."""
    args = parse_args(argv)
    os.sched_setaffinity(0, {CLIENT_CORE})
    procs.raise_priority()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            bench.setup()
            bench.run_all()
        except KeyboardInterrupt:
            print("interrupted: reporting what was measured", file=sys.stderr)
        finally:
            bench.teardown()
            report.keep_logs(Path(tmp), bench.results)
    elapsed = time.monotonic() - started
    report.publish(bench.results, args, elapsed)


if __name__ == "__main__":
    main()
