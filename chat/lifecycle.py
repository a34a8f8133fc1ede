"""Process start-up and graceful shutdown for the generation engine.

- Uvicorn (and any server speaking ASGI lifespan): ``LifespanApp`` marks replies abandoned
  by dead processes on start-up and, on shutdown, lets running replies finish within
  ``SHUTDOWN_GRACE_SECONDS`` before ending the rest as interrupted, text kept.
- Daphne does not speak lifespan; under its Twisted reactor the same shutdown runs as a
  "before shutdown" trigger, which Twisted waits for (SIGTERM and SIGINT included).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from chat import services
from chat.db import run_db

logger = logging.getLogger("chat.lifecycle")


async def shutdown_engines() -> None:
    """Gracefully stop every engine of this process."""
    from chat.engine import all_engines

    await asyncio.gather(*(engine.shutdown() for engine in all_engines()))


class LifespanApp:
    """The ASGI ``lifespan`` handler."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    count = await run_db(services.mark_interrupted)
                    if count:
                        logger.info("marked %s abandoned replies interrupted", count)
                except Exception:
                    logger.exception("could not sweep abandoned replies on start-up")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await shutdown_engines()
                await send({"type": "lifespan.shutdown.complete"})
                return


_twisted_hooked = False


def hook_twisted_shutdown() -> None:
    """Under Daphne, run the graceful shutdown before the reactor stops (once per process)."""
    global _twisted_hooked
    if _twisted_hooked or "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    if not reactor.running:  # type: ignore[attr-defined]
        return
    _twisted_hooked = True
    reactor.addSystemEventTrigger(  # type: ignore[attr-defined]
        "before",
        "shutdown",  # type: ignore[arg-type]
        lambda: defer.Deferred.fromFuture(asyncio.ensure_future(shutdown_engines())),
    )
