"""Plain-dict views of models, shared by every transport (SSE, WebSocket, REST)."""

from __future__ import annotations

from typing import Any

from chat.models import Conversation, Message


def message_dict(message: Message) -> dict[str, Any]:
    """The public JSON shape of a message."""
    error = (
        {"type": message.error_type, "message": message.error_message}
        if message.error_type
        else None
    )
    return {
        "id": message.pk,
        "conversation_id": str(message.conversation_id),
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "model": message.model,
        "stop_reason": message.stop_reason or None,
        "error": error,
        "usage": {
            "input_tokens": message.input_tokens,
            "output_tokens": message.output_tokens,
            "output_tokens_estimated": message.output_tokens_estimated,
        },
        "time_to_first_token_ms": message.time_to_first_token_ms,
        "duration_ms": message.duration_ms,
        "created_at": message.created_at.isoformat() if message.created_at else None,
        "updated_at": message.updated_at.isoformat() if message.updated_at else None,
    }


def conversation_dict(conversation: Conversation) -> dict[str, Any]:
    """The public JSON shape of a conversation (without its messages)."""
    return {
        "id": str(conversation.pk),
        "title": conversation.title,
        "model": conversation.model,
        "system_prompt": conversation.system_prompt,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
    }
