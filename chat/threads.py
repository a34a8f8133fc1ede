"""The threads that run a request's synchronous steps: pooled, and let go while streaming.

Django runs every ASGI request inside an asgiref ``ThreadSensitiveContext``; its sync steps
(the ``request_started`` / ``request_finished`` handlers, sync middleware and views) run on
one thread of that context. Left to Django, each request starts a thread and, at its end,
another one that joins it: two thread starts per request, which under a burst of
requests cost the event loop more than the work itself. ``RequestExecutor`` instead
borrows an idle single-thread executor from a small pool on first use and gives it back
when the request ends, like a WSGI server's worker threads.

An open event stream must not hold a thread either (300 open streams would hold ~300
threads): once a stream has begun there is no more sync work until it ends, so
``release_request_thread`` closes the thread's database connections and returns it; the
few sync steps after the stream (``request_finished``) borrow one again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync
from django.db import connections

T = TypeVar("T")

MAX_IDLE = 8  # idle threads kept for later requests; more are let go

_idle: list[ThreadPoolExecutor] = []
_lock = threading.Lock()  # one pool for every event loop of the process, whatever its thread


def _take() -> ThreadPoolExecutor:
    with _lock:
        if _idle:
            return _idle.pop()
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")


def _give(executor: ThreadPoolExecutor) -> None:
    with _lock:
        if len(_idle) < MAX_IDLE:
            _idle.append(executor)
            return
    executor.shutdown(wait=False)


class RequestExecutor(Executor):
    """One request's thread-sensitive executor: a pooled thread, borrowed on first use.

    Every sync step of the request runs on the borrowed thread, one at a time, in order,
    until ``release``; a step after that borrows a thread again.
    """

    def __init__(self) -> None:
        self._borrowed: ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn`` on the request's thread."""
        if self._borrowed is None:
            self._borrowed = _take()
        return self._borrowed.submit(fn, *args, **kwargs)

    def release(self, *, close_connections: bool = False) -> None:
        """Give the thread back to the pool (after closing its connections, if asked)."""
        borrowed, self._borrowed = self._borrowed, None
        if borrowed is None:
            return
        if close_connections:
            borrowed.submit(connections.close_all)
        _give(borrowed)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """The request is over: give its thread back (the pool owns the threads)."""
        self.release()


def release_request_thread() -> None:
    """Let the current request's thread go, closing its database connections first.

    Connections are per thread: closed here, in their own thread, they are not held for
    the life of the stream (one per open stream would exhaust PostgreSQL's
    ``max_connections``).
    """
    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None:
        return
    executor = SyncToAsync.context_to_thread_executor.get(context)
    if isinstance(executor, RequestExecutor):
        executor.release(close_connections=True)
        return
    # A context Django made (a test client's handler): its executor is its own thread.
    executor = SyncToAsync.context_to_thread_executor.pop(context, None)
    if executor is not None:
        executor.submit(connections.close_all)
        executor.shutdown(wait=False)
