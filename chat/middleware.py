"""Middleware adapted to the async request path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware


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
