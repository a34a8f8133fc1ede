"""Serializers of the REST API.

The read serializers declare their fields for the OpenAPI schema, but produce their
output with ``chat.presenters`` so the REST API, SSE and WebSocket send one JSON shape
(a test keeps the declared fields and the presenters' keys equal).
"""

from __future__ import annotations

from typing import Any, cast

from django.core.validators import MaxLengthValidator
from rest_framework import serializers

from chat.api.services import PREVIEW_LENGTH
from chat.conf import chat_settings
from chat.models import Conversation, Message
from chat.presenters import conversation_dict, message_dict

TITLE_MAX_LENGTH = Conversation._meta.get_field("title").max_length


class ErrorDetailSerializer(serializers.Serializer):
    """Why a reply failed."""

    type = serializers.CharField()
    message = serializers.CharField()


class UsageDetailSerializer(serializers.Serializer):
    """A reply's token counts (null until known)."""

    input_tokens = serializers.IntegerField(allow_null=True)
    output_tokens = serializers.IntegerField(allow_null=True)
    output_tokens_estimated = serializers.BooleanField()


class MessageSerializer(serializers.Serializer):
    """A message: the same shape over REST, Server-Sent Events and WebSocket."""

    id = serializers.IntegerField(read_only=True)
    conversation_id = serializers.UUIDField(read_only=True)
    role = serializers.ChoiceField(choices=Message.Role.choices, read_only=True)
    content = serializers.CharField(read_only=True)
    status = serializers.ChoiceField(choices=Message.Status.choices, read_only=True)
    model = serializers.CharField(read_only=True)
    stop_reason = serializers.CharField(read_only=True, allow_null=True)
    error = ErrorDetailSerializer(read_only=True, allow_null=True)
    usage = UsageDetailSerializer(read_only=True)
    time_to_first_token_ms = serializers.IntegerField(read_only=True, allow_null=True)
    duration_ms = serializers.IntegerField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance: Message) -> dict[str, Any]:
        """The presenter's dict."""
        return message_dict(instance)


class LastMessageSerializer(serializers.Serializer):
    """The newest message of a conversation, shortened."""

    id = serializers.IntegerField()
    role = serializers.ChoiceField(choices=Message.Role.choices)
    status = serializers.ChoiceField(choices=Message.Status.choices)
    preview = serializers.CharField(help_text=f"The first {PREVIEW_LENGTH} characters.")
    created_at = serializers.DateTimeField()


class ConversationBaseSerializer(serializers.Serializer):
    """A conversation: the same shape over every transport."""

    id = serializers.UUIDField(read_only=True)
    title = serializers.CharField(read_only=True)
    model = serializers.CharField(read_only=True)
    system_prompt = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, instance: Conversation) -> dict[str, Any]:
        """The presenter's dict."""
        return conversation_dict(instance)


class ConversationSerializer(ConversationBaseSerializer):
    """A conversation with its message count and newest message."""

    message_count = serializers.IntegerField(read_only=True)
    last_message = LastMessageSerializer(read_only=True, allow_null=True)

    def to_representation(self, instance: Conversation) -> dict[str, Any]:
        """The presenter's dict plus the listing annotations of ``annotate_conversations``."""
        last = None
        if getattr(instance, "last_message_id", None) is not None:
            created = instance.last_message_at  # type: ignore[attr-defined]
            last = {
                "id": instance.last_message_id,  # type: ignore[attr-defined]
                "role": instance.last_message_role,  # type: ignore[attr-defined]
                "status": instance.last_message_status,  # type: ignore[attr-defined]
                "preview": instance.last_message_preview or "",  # type: ignore[attr-defined]
                "created_at": created.isoformat() if created else None,
            }
        return {
            **conversation_dict(instance),
            "message_count": getattr(instance, "message_count", 0),
            "last_message": last,
        }


class ConversationWriteSerializer(serializers.Serializer):
    """What a client may set on a conversation (all optional)."""

    title = serializers.CharField(max_length=TITLE_MAX_LENGTH, allow_blank=True, required=False)
    system_prompt = serializers.CharField(allow_blank=True, required=False, trim_whitespace=False)
    model = serializers.ChoiceField(choices=[], required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read at use time so the configured model list (and test overrides) apply.
        cast(serializers.ChoiceField, self.fields["model"]).choices = chat_settings.MODELS
        limit = chat_settings.MAX_MESSAGE_LENGTH
        prompt = self.fields["system_prompt"]
        prompt.max_length = limit  # type: ignore[attr-defined]
        message = f"Ensure this field has no more than {limit} characters."
        prompt.validators.append(MaxLengthValidator(limit, message=message))


class ExportSerializer(serializers.Serializer):
    """A conversation with all its messages."""

    conversation = ConversationBaseSerializer(read_only=True)
    messages = MessageSerializer(many=True, read_only=True)
    exported_at = serializers.DateTimeField(read_only=True)


class TokenCountsSerializer(serializers.Serializer):
    """Replies and tokens of a group of assistant messages."""

    replies = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()


class DayUsageSerializer(serializers.Serializer):
    """Usage of one day (UTC)."""

    date = serializers.DateField()
    replies = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()


class ModelUsageSerializer(serializers.Serializer):
    """Usage of one model."""

    model = serializers.CharField()
    replies = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()


class UsageSerializer(serializers.Serializer):
    """The user's replies and tokens over the last `days` days."""

    days = serializers.IntegerField()
    by_day = DayUsageSerializer(many=True)
    by_model = ModelUsageSerializer(many=True)
    total = TokenCountsSerializer()


class UsageQuerySerializer(serializers.Serializer):
    """The usage window."""

    days = serializers.IntegerField(min_value=1, max_value=366, default=30)


class ExportQuerySerializer(serializers.Serializer):
    """The export format."""

    format = serializers.ChoiceField(choices=["json", "markdown"], default="json")


class SearchQuerySerializer(serializers.Serializer):
    """The conversation search."""

    q = serializers.CharField(required=False, allow_blank=True, max_length=500)
