"""Let a long streaming response run without holding an OS thread.

Django runs every ASGI request inside an asgiref ``ThreadSensitiveContext``; the first
synchronous step of the request (the ``request_started`` signal handlers, sync middleware,
async ORM calls) starts a thread for that context, and the thread lives until the request
ends — for an event stream, as long as the stream is open (300 open streams, ~305
threads). Once a stream has begun there is no more sync work to do until it ends, so the
stream lets that thread go; the few sync steps after the stream (``request_finished``)
start a short-lived one.
"""

from __future__ import annotations

from asgiref.sync import SyncToAsync
from django.db import connections


def release_request_thread() -> None:
    """Close the request thread's database connections, then let the thread exit.

    Connections are per thread: closed here, in their own thread, they are not held for
    the life of the stream (one per open stream would exhaust PostgreSQL's
    ``max_connections``).
    """
    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None:
        return
    executor = SyncToAsync.context_to_thread_executor.pop(context, None)
    if executor is not None:
        executor.submit(connections.close_all)
        executor.shutdown(wait=False)
