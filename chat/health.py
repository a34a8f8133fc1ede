"""The health endpoint: is this process able to serve chats?

``GET /healthz`` checks the database (a trivial query) and the channel layer (a message
sent to and received from a fresh channel). No login, and no side effect beyond that
probe message, so load balancers and orchestrators can call it freely.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger("chat.health")

# Seconds each check may take before it counts as failed.
CHECK_TIMEOUT = 5.0


def _query_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone() != (1,):
            raise RuntimeError("SELECT 1 returned something else")


async def check_database() -> None:
    """Raise if the database does not answer a trivial query."""
    await sync_to_async(_query_database)()


async def check_channel_layer() -> None:
    """Raise if a message sent on a fresh channel does not come back."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    channel = await layer.new_channel()
    nonce = uuid.uuid4().hex
    await layer.send(channel, {"type": "health.probe", "nonce": nonce})
    message = await layer.receive(channel)
    if message.get("nonce") != nonce:
        raise RuntimeError("the channel layer returned another message")


async def _run(name: str, check: Callable[[], Awaitable[None]]) -> str:
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT)
    except Exception:
        logger.exception("health check failed: %s", name)
        return "error"
    return "ok"


@never_cache
@require_safe
async def healthz(request: HttpRequest) -> JsonResponse:
    """200 ``{"status": "ok", ...}`` when every check passes, else 503 naming the failed."""
    database, channel_layer = await asyncio.gather(
        _run("database", check_database), _run("channel_layer", check_channel_layer)
    )
    healthy = database == channel_layer == "ok"
    return JsonResponse(
        {
            "status": "ok" if healthy else "error",
            "database": database,
            "channel_layer": channel_layer,
        },
        status=200 if healthy else 503,
    )
