"""The HTTP + Server-Sent Events transport: async views, thin adapters over the engine.

Every view is async and streams with an async iterator, so an open stream costs a
coroutine, not a worker. Refusals are ``{"error": {"type", "message"}}`` JSON; events
are encoded by ``chat.events`` (``to_sse``), never here.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.http import (
    HttpRequest,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.request import RawPostDataException
from django.views.decorators.csrf import csrf_exempt

from chat.auth import authenticate
from chat.conf import chat_settings
from chat.engine import get_engine
from chat.errors import ChatError, InvalidRequest, NotFound
from chat.events import SSE_DONE, Event, Idle, sse_retry
from chat.presenters import message_dict
from chat.threads import release_request_thread

DONE = SSE_DONE.encode()


class MethodNotAllowed(ChatError):
    """The URL exists but does not answer this method."""

    type = "method_not_allowed"
    status = 405
    default_message = "Method not allowed."


def error_response(error: ChatError, **headers: str) -> JsonResponse:
    """The JSON answer to a refusal."""
    response = JsonResponse({"error": error.as_dict()}, status=error.status)
    if error.retry_after is not None:  # rate limits and quotas say when to try again
        response["Retry-After"] = str(math.ceil(error.retry_after))
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def method_not_allowed(request: HttpRequest, allowed: str) -> JsonResponse:
    """A 405 naming the allowed methods."""
    return error_response(
        MethodNotAllowed(f'Method "{request.method}" not allowed.'), Allow=allowed
    )


def wants_event_stream(request: HttpRequest) -> bool:
    """Whether the client asked for the reply as an event stream."""
    return "text/event-stream" in request.headers.get("Accept", "")


def stream_url(message_id: int) -> str:
    """Where a reply can be followed (``GET``)."""
    return f"/api/messages/{message_id}/stream/"


# -- the event stream -------------------------------------------------------------------


async def sse_body(events: AsyncIterator[Event | Idle]) -> AsyncIterator[bytes]:
    """The frames of a reply: ``retry``, its events, ``: ping`` while idle, ``[DONE]`` last.

    A client that goes away cancels this iterator: only the following stops (the
    follower's queue is released); the generation runs on.
    """
    try:
        yield sse_retry(chat_settings.SSE_RETRY_MS).encode()
        # The middleware has run by now: nothing sync is left until the stream ends.
        release_request_thread()
        async for event in events:
            yield event.to_sse().encode()
        yield DONE
    finally:
        await events.aclose()  # type: ignore[attr-defined]


def event_stream_response(
    events: AsyncIterator[Event | Idle], **headers: str
) -> StreamingHttpResponse:
    """A ``text/event-stream`` response that no proxy or middleware buffers or compresses."""
    response = StreamingHttpResponse(
        sse_body(events),
        content_type="text/event-stream; charset=utf-8",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    # GZipMiddleware leaves a response alone once it has a Content-Encoding.
    response["Content-Encoding"] = "identity"
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


# -- views --------------------------------------------------------------------------------


@csrf_exempt  # CSRF is enforced in chat.auth for session users only (tokens need none).
async def conversation_messages(request: HttpRequest, conversation_id: str) -> HttpResponseBase:
    """``POST``: send a message and start the reply; ``GET``: the REST list of messages."""
    try:
        conversation_uuid = uuid.UUID(conversation_id)
    except ValueError:
        return error_response(NotFound("Conversation not found."))
    if request.method in ("GET", "HEAD"):
        return await _list_messages(request, conversation_uuid)
    if request.method != "POST":
        return method_not_allowed(request, "GET, HEAD, POST")
    try:
        user = await authenticate(request)
        content = message_content(request)
        turn = await get_engine().start(
            user_id=user.pk, conversation_id=conversation_uuid, content=content
        )
    except ChatError as error:
        return error_response(error)
    assistant = turn.assistant_message
    if wants_event_stream(request):
        events = await get_engine().follow(
            message_id=assistant.pk, user_id=user.pk, heartbeat=chat_settings.SSE_PING_SECONDS
        )
        return event_stream_response(
            events, X_Message_Id=str(assistant.pk), X_User_Message_Id=str(turn.user_message.pk)
        )
    body = {
        "user_message": message_dict(turn.user_message),
        "assistant_message": message_dict(assistant),
        "stream_url": stream_url(assistant.pk),
    }
    return JsonResponse(body, status=201, headers={"Location": stream_url(assistant.pk)})


async def _list_messages(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponseBase:
    """Hand ``GET`` to the REST API's message list (a DRF view, which authenticates itself)."""
    try:
        from chat.api.views import message_list_view  # type: ignore[attr-defined]
    except ImportError:
        return method_not_allowed(request, "POST")
    if iscoroutinefunction(message_list_view):
        return await message_list_view(request, conversation_id=conversation_id)
    response = await sync_to_async(message_list_view)(request, conversation_id=conversation_id)
    if hasattr(response, "render"):
        response = await sync_to_async(response.render)()
    return response


def message_content(request: HttpRequest) -> str:
    """The ``content`` of a JSON body; ``InvalidRequest`` when it is missing or malformed."""
    try:
        data = json.loads(request.body or b"null")
    except (RequestDataTooBig, RawPostDataException):
        raise InvalidRequest("The request body is too large.") from None
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deep nesting
        raise InvalidRequest('The body must be JSON, like {"content": "Hello"}.') from None
    if not isinstance(data, dict):
        raise InvalidRequest('The body must be a JSON object, like {"content": "Hello"}.')
    if "content" not in data:
        raise InvalidRequest("'content' is required.")
    content = data["content"]
    if not isinstance(content, str):
        raise InvalidRequest("'content' must be a string.")
    return content


async def message_stream(request: HttpRequest, message_id: int) -> HttpResponseBase:
    """``GET``: follow a reply from the start, ``Last-Event-ID`` or ``?offset=`` (a pure read)."""
    if request.method != "GET":
        return method_not_allowed(request, "GET")
    try:
        user = await authenticate(request)
        offset = requested_offset(request)
        events = await get_engine().follow(
            message_id=message_id,
            user_id=user.pk,
            offset=offset,
            heartbeat=chat_settings.SSE_PING_SECONDS,
        )
    except ChatError as error:
        return error_response(error)
    return event_stream_response(events, X_Message_Id=str(message_id))


def requested_offset(request: HttpRequest) -> int:
    """The resume point: ``Last-Event-ID`` (``EventSource`` reconnecting), else ``?offset=``."""
    header = request.headers.get("Last-Event-ID")
    raw = header if header is not None else request.GET.get("offset", "0")
    name = "Last-Event-ID" if header is not None else "offset"
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise InvalidRequest(f"'{name}' must be a non-negative integer.")
    return int(raw)


@csrf_exempt  # CSRF is enforced in chat.auth for session users only (tokens need none).
async def message_cancel(request: HttpRequest, message_id: int) -> HttpResponseBase:
    """``POST``: stop a running reply, keeping its text; a no-op on one that has ended."""
    if request.method != "POST":
        return method_not_allowed(request, "POST")
    try:
        user = await authenticate(request)
        status = await get_engine().cancel(message_id=message_id, user_id=user.pk)
    except ChatError as error:
        return error_response(error)
    return JsonResponse({"message_id": message_id, "status": status}, status=202)
