"""Run the engine's database work off the event loop, on two dedicated threads.

Writes (start, flush, finish) go through ``run_db``: one thread, so writes to one reply
stay in order. Reads that need no order (the session's user, a message to follow) go
through ``read_db``: a second thread, so a burst of requests authenticating does not
queue behind the writes (and, on PostgreSQL, their round trips overlap). Each thread
keeps its connection open (reconnecting only after a failure), so a reply pays no
connection set-up. Using our own executors (not asgiref's thread-sensitive one) keeps the
work detached from any request, whose thread is given back when the request ends.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import DatabaseError, connection

T = TypeVar("T")

_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-db")
_reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-db-read")


def _call(fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
    try:
        return fn(**kwargs)
    except DatabaseError:
        # A dead connection (database restarted) must not poison the shared thread.
        connection.close_if_unusable_or_obsolete()
        raise


async def run_db(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Call ``fn(**kwargs)`` on the engine's writing thread (in submission order)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_writer, functools.partial(_call, fn, kwargs))


async def read_db(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Call ``fn(**kwargs)`` on the engine's reading thread (no order with the writes)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_reader, functools.partial(_call, fn, kwargs))


def close_db_connection() -> None:
    """Close both engine threads' connections (tests and shutdown)."""
    # Resolve ``connection`` in each thread, not here: it is thread-local.
    for executor in (_writer, _reader):
        executor.submit(lambda: connection.close()).result()
