"""Run the engine's database work off the event loop, on one dedicated thread.

The engine's reads and writes (start, flush, finish) all go through ``run_db``: one
thread per process whose connection is kept open (reconnecting only after a failure), so
a reply pays no connection set-up, and writes to one reply stay in order. Using our own
executor (not asgiref's thread-sensitive one) keeps the work detached from any request,
whose thread is torn down when the request ends.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import DatabaseError, connection

T = TypeVar("T")

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-db")


def _call(fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
    try:
        return fn(**kwargs)
    except DatabaseError:
        # A dead connection (database restarted) must not poison the shared thread.
        connection.close_if_unusable_or_obsolete()
        raise


async def run_db(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Call ``fn(**kwargs)`` on the engine's database thread and await the result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, functools.partial(_call, fn, kwargs))


def close_db_connection() -> None:
    """Close the engine thread's connection (tests and shutdown)."""
    # Resolve ``connection`` in the engine thread, not here: it is thread-local.
    _executor.submit(lambda: connection.close()).result()
