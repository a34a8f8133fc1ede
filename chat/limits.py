"""Per-user abuse limits: tokens per day (quota) and messages per minute (rate limit).

Both are checked by ``services.start_turn`` before anything is stored, so a refusal
leaves no trace. The quota is counted from the stored replies themselves (every reply,
cancelled and failed ones too, stores its real or estimated usage when it ends), so it
settles by itself. The rate limit counts in Django's cache: the Redis cache when
``REDIS_URL`` is set, shared by every server process.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db.models import Q, Sum, Value
from django.db.models.functions import Coalesce, Length
from django.utils import timezone

from chat.conf import chat_settings
from chat.errors import QuotaExceeded, RateLimited
from chat.models import Message

logger = logging.getLogger("chat.limits")

WINDOW_SECONDS = 60
RATE_KEY_PREFIX = "chat:rate"

# -- tokens per day ----------------------------------------------------------------------


def day_start(now: datetime | None = None) -> datetime:
    """Midnight (UTC) of the current quota day."""
    now = now or timezone.now()
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def tokens_used_today(*, user_id: int, now: datetime | None = None) -> int:
    """Input + output tokens of the user's replies started today (UTC) that have ended.

    A reply without a token count (its process died) counts its text at about four
    characters a token.
    """
    tokens = Coalesce("input_tokens", Value(0)) + Coalesce("output_tokens", Length("content") / 4)
    total = (
        Message.objects.filter(
            conversation__owner_id=user_id,
            role=Message.Role.ASSISTANT,
            created_at__gte=day_start(now),
        )
        .exclude(status=Message.Status.STREAMING)
        .aggregate(total=Sum(tokens))["total"]
    )
    return int(total or 0)


def running_replies(*, user_id: int) -> int:
    """How many of the user's replies are streaming under a live lease."""
    return Message.objects.filter(
        Q(status=Message.Status.STREAMING, lease_expires_at__gt=timezone.now()),
        conversation__owner_id=user_id,
    ).count()


def check_quota(*, user_id: int, running: int | None = None) -> None:
    """Raise ``QuotaExceeded`` when the user has no tokens left today.

    Each running reply reserves ``MAX_TOKENS`` (the most it can still produce), so
    concurrent replies cannot together run far past the quota. Call it inside the
    transaction that locks the user's row, so concurrent starts count in turn.
    """
    quota = chat_settings.DAILY_TOKEN_QUOTA
    if not quota:
        return
    if running is None:
        running = running_replies(user_id=user_id)
    reserved = running * chat_settings.MAX_TOKENS
    used = tokens_used_today(user_id=user_id)
    if used + reserved >= quota:
        now = timezone.now()
        retry_after = (day_start(now) + timedelta(days=1) - now).total_seconds()
        raise QuotaExceeded(
            f"You have used your {quota} tokens for today"
            f"{' (counting your running replies)' if reserved else ''}; "
            "the quota resets at midnight UTC.",
            retry_after=math.ceil(retry_after),
        )


# -- messages per minute -------------------------------------------------------------------


def rate_key(user_id: int, window: int) -> str:
    """The cache key counting a user's messages in one minute window."""
    return f"{RATE_KEY_PREFIX}:{user_id}:{window}"


def retry_delay(*, current: int, previous: int, elapsed: float, limit: int) -> float:
    """Seconds until one more message fits the sliding window.

    The window weighs the previous minute's count by the part of it still inside the
    last 60 seconds: ``current + previous * (1 - elapsed / 60)``.
    """
    if current + 1 <= limit and previous:
        # Later in this minute, once enough of the previous one has slid out.
        at = WINDOW_SECONDS * (1 - (limit - current - 1) / previous)
        if at < WINDOW_SECONDS:
            return max(at - elapsed, 0.0)
    # In the next minute, where this minute's count becomes the previous one.
    at_next = WINDOW_SECONDS * (1 - (limit - 1) / current) if current else 0.0
    return (WINDOW_SECONDS - elapsed) + max(at_next, 0.0)


def take_message_slot(*, user_id: int, now: float | None = None) -> str | None:
    """Count one message for the user, or raise ``RateLimited`` (counting nothing).

    Returns the cache key counted (for ``release_message_slot``), or None when unlimited
    or when the cache is unreachable (sending then stays possible: the limit fails open).
    """
    limit = chat_settings.MESSAGES_PER_MINUTE
    if not limit:
        return None
    now = time.time() if now is None else now
    window, elapsed = divmod(now, WINDOW_SECONDS)
    key = rate_key(user_id, int(window))
    try:
        # add() then incr(): atomic on Redis and in the local cache, across processes.
        cache.add(key, 0, timeout=3 * WINDOW_SECONDS)
        count = cache.incr(key)
        previous = int(cache.get(rate_key(user_id, int(window) - 1)) or 0)
    except Exception:
        logger.warning("rate limit cache unavailable; not limiting", exc_info=True)
        return None
    if count + previous * (1 - elapsed / WINDOW_SECONDS) <= limit:
        return key
    release_message_slot(key)
    delay = retry_delay(current=count - 1, previous=previous, elapsed=elapsed, limit=limit)
    raise RateLimited(
        f"You can send {limit} messages a minute; wait {math.ceil(delay)} s.",
        retry_after=max(1, math.ceil(delay)),
    )


def release_message_slot(key: str | None) -> None:
    """Give back a slot taken by ``take_message_slot`` (the message was refused)."""
    if key is None:
        return
    try:
        cache.decr(key)
    except Exception:  # expired or unreachable: nothing to give back
        logger.debug("could not release rate slot %s", key, exc_info=True)


@contextmanager
def message_slot(*, user_id: int) -> Iterator[None]:
    """Take a messages-per-minute slot for the block; give it back if the block raises."""
    key = take_message_slot(user_id=user_id)
    try:
        yield
    except BaseException:
        release_message_slot(key)
        raise
