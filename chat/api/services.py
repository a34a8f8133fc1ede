"""The REST API's reads and writes: annotated conversation lists, search, usage, deletion.

Views and serializers stay thin; the admin reuses the same annotations so both list pages
cost a fixed number of queries whatever the page size.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from asgiref.sync import async_to_sync
from django.db.models import (
    Count,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Substr, TruncDate
from django.utils import timezone

from chat.conf import chat_settings
from chat.errors import InvalidRequest
from chat.models import Conversation, Message

PREVIEW_LENGTH = 200
Role = Message.Role


def _latest_message(**filters: Any) -> QuerySet[Message]:
    """The messages of the outer conversation, newest first (for ``[:1]`` subqueries)."""
    return Message.objects.filter(conversation=OuterRef("pk"), **filters).order_by(
        "-created_at", "-id"
    )


def _per_conversation(aggregate: Any) -> Subquery:
    """One aggregate over the outer conversation's messages, as a scalar subquery."""
    rows = (
        Message.objects.filter(conversation=OuterRef("pk"))
        .order_by()
        .values("conversation")
        .annotate(value=aggregate)
        .values("value")
    )
    return Subquery(rows, output_field=IntegerField())


def annotate_conversations(qs: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """Add ``message_count`` and the last message's id, role, status and preview."""
    latest = _latest_message()
    return qs.annotate(
        message_count=Coalesce(_per_conversation(Count("id")), Value(0)),
        last_message_id=Subquery(latest.values("id")[:1]),
        last_message_role=Subquery(latest.values("role")[:1]),
        last_message_status=Subquery(latest.values("status")[:1]),
        last_message_preview=Subquery(
            latest.annotate(preview=Substr("content", 1, PREVIEW_LENGTH)).values("preview")[:1]
        ),
        last_message_at=Subquery(latest.values("created_at")[:1]),
    )


def annotate_review(qs: QuerySet[Conversation]) -> QuerySet[Conversation]:
    """The admin's columns: message count, total tokens, status of the last reply."""
    tokens = Coalesce(F("input_tokens"), 0) + Coalesce(F("output_tokens"), 0)
    return qs.annotate(
        message_count=Coalesce(_per_conversation(Count("id")), Value(0)),
        total_tokens=Coalesce(_per_conversation(Sum(tokens)), Value(0)),
        last_reply_status=Subquery(_latest_message(role=Role.ASSISTANT).values("status")[:1]),
    )


def search_filter(q: str) -> Q:
    """Conversations whose title or any message contains ``q`` (each one listed once).

    A subquery instead of a join: a conversation with many matching messages must not
    appear many times, and no DISTINCT is needed over the annotated columns.
    """
    q = q.replace("\x00", "")
    matching = Message.objects.filter(content__icontains=q).values("conversation_id")
    return Q(title__icontains=q) | Q(pk__in=matching)


def conversations_for(*, user_id: int, q: str = "") -> QuerySet[Conversation]:
    """The user's conversations, annotated for listing, optionally searched."""
    qs = Conversation.objects.filter(owner_id=user_id)
    if q.strip():
        qs = qs.filter(search_filter(q.strip()))
    return annotate_conversations(qs)


def validate_model(model: str) -> str:
    """``model`` if it is one of the configured models, else ``InvalidRequest``."""
    if model not in chat_settings.MODELS:
        allowed = ", ".join(chat_settings.MODELS)
        raise InvalidRequest(f"Unknown model {model!r}; choose one of: {allowed}.")
    return model


def create_conversation(
    *, user_id: int, title: str = "", system_prompt: str = "", model: str | None = None
) -> Conversation:
    """A new empty conversation; the model defaults to the configured default."""
    return Conversation.objects.create(
        owner_id=user_id,
        title=title,
        system_prompt=system_prompt,
        model=validate_model(model) if model else chat_settings.MODEL,
    )


def update_conversation(conversation: Conversation, *, changes: dict[str, Any]) -> Conversation:
    """Apply validated changes (title, system prompt, model) to a conversation."""
    if "model" in changes:
        validate_model(changes["model"])
    for field, value in changes.items():
        setattr(conversation, field, value)
    conversation.save(update_fields=[*changes, "updated_at"])
    return conversation


def delete_conversation(conversation: Conversation) -> None:
    """Delete a conversation with its messages, stopping a reply running in it first."""
    _cancel_running(conversation)
    conversation.delete()


def _cancel_running(conversation: Conversation) -> None:
    # Under ASGI a sync view runs in a thread whose caller loop owns the engine, and
    # async_to_sync hops back onto that loop; elsewhere there is no reply to stop here.
    from chat.engine import get_engine

    async def cancel() -> None:
        await get_engine().cancel_conversation(
            conversation_id=str(conversation.pk), user_id=conversation.owner_id
        )

    async_to_sync(cancel)()


def _tokens_by(qs: QuerySet[Message], *keys: str) -> list[dict[str, Any]]:
    return list(
        qs.values(*keys)
        .annotate(
            replies=Count("id"),
            input_tokens=Coalesce(Sum("input_tokens"), 0),
            output_tokens=Coalesce(Sum("output_tokens"), 0),
        )
        .order_by(*keys)
    )


def replies_since(days: int) -> QuerySet[Message]:
    """Assistant messages created in the last ``days`` days (today included)."""
    start = timezone.now() - dt.timedelta(days=days - 1)
    start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    return Message.objects.filter(role=Role.ASSISTANT, created_at__gte=start)


def usage_for(*, user_id: int, days: int) -> dict[str, Any]:
    """The user's replies and tokens over the last ``days`` days: per day, per model, total."""
    qs = replies_since(days).filter(conversation__owner_id=user_id)
    by_day = _tokens_by(qs.annotate(date=TruncDate("created_at")), "date")
    by_model = _tokens_by(qs, "model")
    total = {
        key: sum(row[key] for row in by_model)
        for key in ("replies", "input_tokens", "output_tokens")
    }
    return {"days": days, "by_day": by_day, "by_model": by_model, "total": total}


def usage_per_user_per_day(*, days: int) -> QuerySet[Any]:
    """Staff view: replies and tokens per user per day, newest day first, biggest first."""
    tokens = Coalesce(F("input_tokens"), 0) + Coalesce(F("output_tokens"), 0)
    return (
        replies_since(days)
        .annotate(date=TruncDate("created_at"))
        .values("date", "conversation__owner_id", "conversation__owner__username")
        # The total first: the names below shadow the fields they sum.
        .annotate(total_tokens=Sum(tokens))
        .annotate(
            replies=Count("id"),
            input_tokens=Coalesce(Sum("input_tokens"), 0),
            output_tokens=Coalesce(Sum("output_tokens"), 0),
        )
        .order_by("-date", "-total_tokens", "conversation__owner__username")
    )
