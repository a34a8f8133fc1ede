"""OpenAPI additions: the streaming endpoints (plain async views) and the error body.

``add_streaming_endpoints`` is a drf-spectacular postprocessing hook (registered in
``SPECTACULAR_SETTINGS``): it describes the SSE transport's wire contract and gives every
error response the shared ``{"error": {"type", "message"}}`` schema.
"""

from __future__ import annotations

import copy
from typing import Any

from chat.conf import chat_settings

MESSAGES_PATH = "/api/conversations/{conversation_id}/messages/"
STREAM_PATH = "/api/messages/{message_id}/stream/"
CANCEL_PATH = "/api/messages/{message_id}/cancel/"

SSE_DESCRIPTION = """\
A `text/event-stream` of one reply:

1. `retry: <ms>` then `event: start` with `{"message_id", "conversation_id", "model"}`;
2. each chunk as a default event: `id: <offset>` (the reply's length in Unicode code points
   after this chunk) and `data: {"chunk": "<text>"}`;
3. `event: done` with `{"message_id", "status", "stop_reason", "usage": {"input_tokens",
   "output_tokens"}}`, or `event: error` with `{"message_id", "error": {"type", "message"}}`;
4. always `data: [DONE]` last.

A `: ping` comment is sent every 15 s while idle.
"""

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The error body of every endpoint.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string", "example": "invalid_request"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "Per-field details of a validation error.",
                },
            },
        }
    },
}

ERROR_DESCRIPTIONS = {
    "400": "Invalid request (`invalid_request`); nothing was stored.",
    "403": "Not logged in (`not_authenticated`), or a failed CSRF check (`permission_denied`).",
    "404": "No such item of yours (`not_found`).",
    "409": "A reply is already running in this conversation (`conflict`).",
    "429": "Too many requests or replies at once (`rate_limit_error`).",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: {"description": ERROR_DESCRIPTIONS[code]} for code in codes}


def _sse_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "X-Message-Id": {"schema": {"type": "integer"}, "description": "The reply's id."}
        },
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }


def _path_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


def _start_reply(security: list[Any]) -> dict[str, Any]:
    conversation = _path_param(
        "conversation_id", {"type": "string", "format": "uuid"}, "The conversation."
    )
    return {
        "operationId": "conversations_messages_send",
        "summary": "Send a message and start the reply",
        "description": (
            "Stores the user's message and starts the assistant's reply. Answers `201` "
            "with both messages and the reply's `stream_url`; with "
            "`Accept: text/event-stream` it answers the reply's event stream instead.\n\n"
            + SSE_DESCRIPTION
        ),
        "tags": ["streaming"],
        "parameters": [conversation],
        "requestBody": {"required": True, "content": _json(_ref("SendMessageRequest"))},
        "security": security,
        "responses": {
            "201": {
                "description": "The reply started.",
                "headers": {"Location": {"schema": {"type": "string"}}},
                "content": _json(_ref("SendMessageResponse")),
            },
            "200": _sse_response("The reply's event stream (with `Accept: text/event-stream`)."),
            **_errors("400", "403", "404", "409", "429"),
        },
    }


def _follow_reply(security: list[Any]) -> dict[str, Any]:
    message = _path_param("message_id", {"type": "integer"}, "The assistant message.")
    offset_schema = {"type": "integer", "minimum": 0, "maximum": 10**17}
    return {
        "get": {
            "operationId": "messages_stream",
            "summary": "Follow a reply as Server-Sent Events",
            "description": (
                "Live while the reply streams, replayed once it has ended; a pure read. "
                "Resumes after the offset in `Last-Event-ID` (what `EventSource` sends on "
                "reconnect) or `?offset=`.\n\n" + SSE_DESCRIPTION
            ),
            "tags": ["streaming"],
            "parameters": [
                message,
                {
                    "name": "offset",
                    "in": "query",
                    "required": False,
                    "schema": offset_schema,
                    "description": "Resume after this many code points of the reply.",
                },
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "schema": offset_schema,
                    "description": "The last chunk id received; wins over `offset`.",
                },
            ],
            "security": security,
            "responses": {
                "200": _sse_response("The reply's event stream."),
                **_errors("400", "403", "404"),
            },
        }
    }


def _cancel_reply(security: list[Any]) -> dict[str, Any]:
    message = _path_param("message_id", {"type": "integer"}, "The assistant message.")
    return {
        "post": {
            "operationId": "messages_cancel",
            "summary": "Cancel a running reply",
            "description": "Stops the reply, keeping its text. Idempotent on a reply that ended.",
            "tags": ["streaming"],
            "parameters": [message],
            "security": security,
            "responses": {
                "202": {
                    "description": "Cancellation accepted; `status` is the reply's status now.",
                    "content": _json(_ref("CancelResponse")),
                },
                **_errors("403", "404"),
            },
        }
    }


def _components() -> dict[str, Any]:
    statuses = ["complete", "streaming", "cancelled", "error", "interrupted"]
    return {
        "Error": ERROR_SCHEMA,
        "SendMessageRequest": {
            "type": "object",
            "required": ["content"],
            "properties": {
                "content": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": chat_settings.MAX_MESSAGE_LENGTH,
                    "description": "The user's message.",
                }
            },
        },
        "SendMessageResponse": {
            "type": "object",
            "required": ["user_message", "assistant_message", "stream_url"],
            "properties": {
                "user_message": _ref("Message"),
                "assistant_message": _ref("Message"),
                "stream_url": {"type": "string", "example": "/api/messages/42/stream/"},
            },
        },
        "CancelResponse": {
            "type": "object",
            "required": ["message_id", "status"],
            "properties": {
                "message_id": {"type": "integer"},
                "status": {"type": "string", "enum": statuses},
            },
        },
    }


def _with_error_bodies(paths: dict[str, Any]) -> None:
    """Give every 4xx response without a body the shared error schema (and add 429)."""
    for operations in paths.values():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault("429", {"description": ERROR_DESCRIPTIONS["429"]})
            for code, response in responses.items():
                if str(code).startswith("4") and "content" not in response:
                    response["content"] = _json(_ref("Error"))


def add_streaming_endpoints(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular hook: add the SSE endpoints and the error schema to the schema."""
    paths = result.setdefault("paths", {})
    listing = paths.get(MESSAGES_PATH, {}).get("get", {})
    security = copy.deepcopy(listing.get("security", [{"cookieAuth": []}, {"tokenAuth": []}]))
    paths.setdefault(MESSAGES_PATH, {})["post"] = _start_reply(security)
    paths[STREAM_PATH] = _follow_reply(security)
    paths[CANCEL_PATH] = _cancel_reply(security)
    result.setdefault("components", {}).setdefault("schemas", {}).update(_components())
    _with_error_bodies(paths)
    return result
