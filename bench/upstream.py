"""The upstream of every target: the project's fake Anthropic server, plus a send-time log.

Each token the fake writes is stamped with ``time.time()``; this wrapper adds the time each
request arrived, keys both by the ``bench-id:<id>`` line of the prompt, and serves them at
``GET /bench/log`` (which also forgets them), so the client can compute latencies for any
target, whatever the target does to the chunks on the way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
from typing import Any

from chat.testing.fake_anthropic import (
    FakeAnthropicServer,
    RequestRecord,
    _Connection,
    message_text,
)

BENCH_ID_RE = re.compile(r"bench-id:(\S+)")


def bench_id(record: RequestRecord) -> str | None:
    """The ``bench-id:`` of the request's last user message, if any."""
    body = record.body
    if not isinstance(body, dict):
        return None
    users = [m for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"]
    match = BENCH_ID_RE.search(message_text(users[-1].get("content")) if users else "")
    return match.group(1) if match else None


class LoggingFakeServer(FakeAnthropicServer):
    """The fake Anthropic server with the ``/bench/log`` endpoint."""

    async def _answer(self, conn: _Connection, record: RequestRecord, raw: bytes) -> bool:
        if record.path.startswith("/bench/log"):
            self.requests.remove(record)
            await conn.send_json(200, self.take_log())
            return True
        record.received_at = time.time()  # type: ignore[attr-defined]
        return await super()._answer(conn, record, raw)

    def take_log(self) -> dict[str, Any]:
        """Every benchmark request so far (arrival, token send times), then forget them."""
        log: dict[str, Any] = {}
        for record in self.requests:
            key = bench_id(record)
            if key is not None:
                log[key] = {
                    "received_at": getattr(record, "received_at", None),
                    "sent_at": [sent for _text, sent in record.sent],
                    "completed": record.completed,
                    "status": record.status,
                }
        self.requests.clear()
        return log


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted (pacing comes from each request's ``[fake ...]`` line)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tps", type=float, default=50.0)
    parser.add_argument("--ttft", type=float, default=0.2)
    args = parser.parse_args(argv)
    server = LoggingFakeServer(host="127.0.0.1", port=args.port, tps=args.tps, ttft=args.ttft)

    async def serve() -> None:
        await server.start()
        print(f"upstream ready on {server.base_url}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
