"""Middleware adapted to the async request path.

Every request of this site is served async (ASGI); these adapters keep Django's and
WhiteNoise's sync-only middleware from hopping to a thread for work that needs none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import django
from asgiref.sync import ThreadSensitiveContext, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.handlers import base as base_handler
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase
from django.utils.module_loading import import_string
from whitenoise.middleware import WhiteNoiseMiddleware

from chat.threads import RequestExecutor


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise for an async stack: only static-file requests leave the event loop.

    WhiteNoise is sync-only, so in an async middleware stack Django would hop every
    request (each chat message, each event stream) to a thread and back to run it.
    Here a request outside the static prefix goes straight on; a static one is looked
    up and served as WhiteNoise does, in a thread.
    """

    async_capable = True
    sync_capable = False

    def __init__(
        self, get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]], **kwargs: Any
    ) -> None:
        super().__init__(get_response, **kwargs)
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:  # type: ignore[override]
        if request.path_info.startswith(self.static_prefix):
            static_file = await sync_to_async(self._find)(request.path_info)
            if static_file is not None:
                return await sync_to_async(self.serve)(static_file, request)
        return await self.get_response(request)  # type: ignore[misc]

    def _find(self, path: str) -> Any:
        return self.find_file(path) if self.autorefresh else self.files.get(path)


ResponseCheck = Callable[[HttpRequest, HttpResponseBase], bool]


def inline(path: str, *, response_needs_thread: ResponseCheck | None = None) -> type:
    """An async-native adapter that runs a sync-only middleware's hooks on the event loop.

    Django runs each ``MiddlewareMixin`` hook of an async stack in a thread (one hop for
    ``process_request``, ``process_view`` and ``process_response`` each): about a dozen
    hops per request for the default stack, each waiting for a turn of a busy event loop,
    which is most of a chat message's time to first token under load. The hooks adapted
    here do no I/O, so they run inline; ``response_needs_thread`` names the responses
    whose ``process_response`` may touch the database (it then runs in a thread).
    """
    middleware_class = import_string(path)

    class Inline:
        async_capable = True
        sync_capable = False

        def __init__(self, get_response: Callable[[HttpRequest], Awaitable[Any]]) -> None:
            self.get_response = get_response
            self.inner = middleware_class(get_response)
            markcoroutinefunction(self)
            if hasattr(self.inner, "process_view"):
                self.process_view = self._process_view

        async def __call__(self, request: HttpRequest) -> HttpResponseBase:
            response = None
            if hasattr(self.inner, "process_request"):
                response = self.inner.process_request(request)
            if response is None:
                response = await self.get_response(request)
            if hasattr(self.inner, "process_response"):
                if response_needs_thread is not None and response_needs_thread(request, response):
                    return await sync_to_async(self.inner.process_response)(request, response)
                response = self.inner.process_response(request, response)
            return response

        async def _process_view(self, request: HttpRequest, *args: Any) -> Any:
            return self.inner.process_view(request, *args)

    Inline.__name__ = Inline.__qualname__ = f"Inline{middleware_class.__name__}"
    Inline.__module__ = __name__
    return Inline


def _session_will_save(request: HttpRequest, response: HttpResponseBase) -> bool:
    session = getattr(request, "session", None)
    return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


def _messages_will_store(request: HttpRequest, response: HttpResponseBase) -> bool:
    storage = getattr(request, "_messages", None)
    return storage is not None and (storage.used or storage.added_new)


# Middleware whose hooks do no I/O (or say when they will), by the dotted path settings use.
INLINE: dict[str, ResponseCheck | None] = {
    "django.middleware.security.SecurityMiddleware": None,
    "django.contrib.sessions.middleware.SessionMiddleware": _session_will_save,
    "django.middleware.common.CommonMiddleware": None,
    "django.middleware.csrf.CsrfViewMiddleware": None,
    "django.contrib.auth.middleware.AuthenticationMiddleware": None,
    "django.contrib.messages.middleware.MessageMiddleware": _messages_will_store,
    "django.middleware.clickjacking.XFrameOptionsMiddleware": None,
    "django.middleware.csp.ContentSecurityPolicyMiddleware": None,
    "csp.middleware.CSPMiddleware": None,
}


class InlineMiddlewareASGIHandler(ASGIHandler):
    """Django's ASGI handler, loading the middleware in ``INLINE`` as inline adapters.

    ``settings.MIDDLEWARE`` keeps Django's own dotted paths (system checks look for them);
    only the classes built from them change, and only when serving async.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one request with its sync steps on a pooled thread (``chat.threads``)."""
        executor = RequestExecutor()
        try:
            # Django's own ThreadSensitiveContext, inside this one, then leaves it alone.
            async with ThreadSensitiveContext(executor=executor):
                await super().__call__(scope, receive, send)
        finally:
            executor.shutdown()

    def load_middleware(self, is_async: bool = False) -> None:
        if not is_async:
            super().load_middleware(is_async)
            return
        # load_middleware resolves each path with base.import_string: swap it while it runs
        # (once, at start-up, before any request).
        original = base_handler.import_string  # type: ignore[attr-defined]

        def import_inline(path: str) -> Any:
            if path in INLINE:
                return inline(path, response_needs_thread=INLINE[path])
            return original(path)

        base_handler.import_string = import_inline  # type: ignore[attr-defined]
        try:
            super().load_middleware(is_async)
        finally:
            base_handler.import_string = original  # type: ignore[attr-defined]


def get_asgi_application() -> InlineMiddlewareASGIHandler:
    """Like ``django.core.asgi.get_asgi_application``, with the inline middleware."""
    django.setup(set_prefix=False)
    return InlineMiddlewareASGIHandler()
