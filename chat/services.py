"""Database operations of the generation engine (synchronous; the engine calls them in a thread).

Every function takes keyword-only arguments and does one transaction's worth of work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from django.db import connection, transaction
from django.db.models import Field, Q
from django.utils import timezone

from chat import limits
from chat.conf import chat_settings
from chat.errors import Conflict, InvalidRequest, NotFound, TooManyGenerations
from chat.history import build_history
from chat.models import Conversation, Message
from chat.providers.base import ChatRequest

TITLE_LENGTH = 60
Status = Message.Status


@dataclass(frozen=True)
class Turn:
    """What starting a reply stored, and the request to send to the model."""

    conversation: Conversation
    user_message: Message
    assistant_message: Message
    request: ChatRequest


def validate_content(content: Any) -> str:
    """The message text, or ``InvalidRequest`` if it is missing, blank or too long."""
    if not isinstance(content, str):
        raise InvalidRequest("'content' must be a string.")
    if not content.strip():
        raise InvalidRequest("The message is empty.")
    limit = chat_settings.MAX_MESSAGE_LENGTH
    if len(content) > limit:
        raise InvalidRequest(
            f"The message is too long ({len(content)} characters; the limit is {limit})."
        )
    if "\x00" in content:
        raise InvalidRequest("The message contains a NUL character.")
    if not content.isascii():
        try:
            content.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (a JSON "\ud800" escape) cannot be stored
            raise InvalidRequest("The message contains invalid Unicode.") from None
    return content


def make_title(content: str) -> str:
    """A conversation title from the first user message: its first line, shortened."""
    line = " ".join(content.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


def lease_deadline() -> Any:
    """When a lease taken or renewed now expires."""
    return timezone.now() + timedelta(seconds=chat_settings.LEASE_SECONDS)


def start_turn(*, user_id: int, conversation_id: Any, content: str, worker: str) -> Turn:
    """Store the user's message and a streaming assistant placeholder, atomically.

    Refuses (storing nothing) when a reply is already running in the conversation or the
    user has too many running; replies abandoned by a dead process are marked first.
    """
    content = validate_content(content)
    # The messages-per-minute slot is given back if the start is refused.
    with limits.message_slot(user_id=user_id), transaction.atomic():
        # One statement locks the conversation and its owner's row (a start is the hot
        # path, and every round trip counts): the owner's lock makes concurrent starts
        # (in any process) count the user's replies in turn.
        conversation = (
            Conversation.objects.select_for_update()
            .select_related("owner")
            .filter(pk=conversation_id, owner_id=user_id)
            .first()
        )
        if conversation is None:
            raise NotFound("Conversation not found.")
        running = _running_conversations(user_id=user_id, conversation_id=conversation.pk)
        if conversation.pk in running:
            raise Conflict()
        if len(running) >= chat_settings.MAX_CONCURRENT_PER_USER:
            raise TooManyGenerations()
        limits.check_quota(user_id=user_id, running=len(running))
        return _store_turn(conversation, content, worker)


def _running_conversations(*, user_id: int, conversation_id: Any) -> list[Any]:
    """The conversation of each of the user's live replies, one entry per reply.

    Replies in ``conversation_id`` whose process died (lease lapsed) are marked
    interrupted first; one query reads them all, as a start is the hot path.
    """
    now = timezone.now()
    streaming = Message.objects.filter(status=Status.STREAMING, conversation__owner_id=user_id)
    rows = list(streaming.values_list("conversation_id", "lease_expires_at"))
    if any(c == conversation_id and (lease is None or lease <= now) for c, lease in rows):
        mark_interrupted(conversation_id=conversation_id)
    return [c for c, lease in rows if lease is not None and lease > now]


def _store_turn(conversation: Conversation, content: str, worker: str) -> Turn:
    model = conversation.model or chat_settings.MODEL
    user_message = Message(conversation=conversation, role=Message.Role.USER, content=content)
    assistant_message = Message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Status.STREAMING,
        model=model,
        worker=worker,
        lease_expires_at=lease_deadline(),
    )
    _insert(user_message, assistant_message)
    fields = ["updated_at"]
    if not conversation.title:
        conversation.title = make_title(content)
        fields.append("title")
    conversation.save(update_fields=fields)
    window = chat_settings.HISTORY_WINDOW
    recent = (
        Message.objects.filter(conversation=conversation, pk__lt=assistant_message.pk)
        .order_by("-created_at", "-id")
        .values_list("role", "content")[:window]
    )
    request = ChatRequest(
        model=model,
        messages=build_history(reversed(list(recent)), window=window),
        system=conversation.system_prompt or chat_settings.SYSTEM_PROMPT,
        max_tokens=chat_settings.MAX_TOKENS,
    )
    return Turn(conversation, user_message, assistant_message, request)


def _insert(*messages: Message) -> None:
    """INSERT the messages in one statement where the database returns their ids."""
    if connection.features.can_return_rows_from_bulk_insert:
        Message.objects.bulk_create(messages)
    else:
        for message in messages:
            message.save(force_insert=True)


def flush(*, contents: dict[int, str], renew: list[int]) -> None:
    """Write growing replies and renew leases, for many replies in one transaction.

    ``contents`` maps message ids to their text so far; ``renew`` lists replies whose text
    did not change but whose lease must not lapse. One commit per flush interval, however
    many replies stream. The rows go in one ``executemany``: the ORM would build and
    compile an UPDATE per reply, most of the flusher's CPU with hundreds of replies.
    """
    now = timezone.now()
    deadline = lease_deadline()
    with transaction.atomic():
        if contents:
            _update_streaming(
                ("content", "lease_expires_at", "updated_at"),
                [(content, deadline, now, pk) for pk, content in contents.items()],
            )
        if renew:
            Message.objects.filter(pk__in=renew, status=Status.STREAMING).update(
                lease_expires_at=deadline
            )


def _update_streaming(columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """``UPDATE chat_message SET <columns> WHERE id = … AND status = 'streaming'``, per row.

    Each row holds the column values, then the message id; datetimes are adapted here as
    the ORM would for this database.
    """
    ops = connection.ops
    fields = {name: cast("Field[Any, Any]", Message._meta.get_field(name)) for name in columns}
    assignments = ", ".join(f"{ops.quote_name(str(fields[c].column))} = %s" for c in columns)
    sql = (
        f"UPDATE {ops.quote_name(Message._meta.db_table)} SET {assignments} "
        f"WHERE {ops.quote_name('id')} = %s AND {ops.quote_name('status')} = %s"
    )
    params = [
        [
            *(
                fields[c].get_db_prep_value(v, connection)
                for c, v in zip(columns, row[:-1], strict=True)
            ),
            row[-1],
            Status.STREAMING.value,
        ]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


@dataclass(frozen=True)
class Outcome:
    """How a reply ended."""

    status: str
    content: str
    stop_reason: str = ""
    error_type: str = ""
    error_message: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    output_tokens_estimated: bool = False
    time_to_first_token_ms: int | None = None
    duration_ms: int | None = None


def finish(*, message_id: int, outcome: Outcome) -> None:
    """Write a reply's final state (only if it is still streaming)."""
    Message.objects.filter(pk=message_id, status=Status.STREAMING).update(
        status=outcome.status,
        content=outcome.content,
        stop_reason=outcome.stop_reason,
        error_type=outcome.error_type,
        error_message=outcome.error_message,
        input_tokens=outcome.input_tokens,
        output_tokens=outcome.output_tokens,
        output_tokens_estimated=outcome.output_tokens_estimated,
        time_to_first_token_ms=outcome.time_to_first_token_ms,
        duration_ms=outcome.duration_ms,
        lease_expires_at=None,
        updated_at=timezone.now(),
    )


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token) for when the provider gave none."""
    return math.ceil(len(text) / 4)


def mark_interrupted(*, conversation_id: Any = None, worker: str | None = None) -> int:
    """Mark replies whose process died (lease lapsed, or the given worker) as interrupted."""
    stale = Q(lease_expires_at__lte=timezone.now()) | Q(lease_expires_at__isnull=True)
    if worker:
        stale |= Q(worker=worker)
    qs = Message.objects.filter(stale, status=Status.STREAMING)
    if conversation_id is not None:
        qs = qs.filter(conversation_id=conversation_id)
    return qs.update(
        status=Status.INTERRUPTED,
        error_type="interrupted",
        error_message="The reply was interrupted because the server restarted.",
        lease_expires_at=None,
        updated_at=timezone.now(),
    )


def get_message(*, message_id: int, user_id: int) -> Message:
    """One of the user's messages, or ``NotFound``."""
    message = Message.objects.filter(pk=message_id, conversation__owner_id=user_id).first()
    if message is None:
        raise NotFound("Message not found.")
    return message


def reload(*, message_id: int) -> Message | None:
    """A fresh copy of a message (for followers of a reply running elsewhere)."""
    return Message.objects.filter(pk=message_id).first()
