"""The services the suite runs against: PostgreSQL and Redis when configured, and the
markers that skip tests needing them otherwise."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.core.cache import caches
from django.db import connection

from chat.testing import services as markers


@pytest.mark.needs_postgres
@pytest.mark.django_db
def test_database_is_postgresql() -> None:
    assert connection.vendor == "postgresql"


@pytest.mark.needs_redis
async def test_channel_layer_and_cache_are_redis() -> None:
    layer = get_channel_layer()
    assert type(layer).__module__.startswith("channels_redis")
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "probe", "n": 1})
    assert await layer.receive(channel) == {"type": "probe", "n": 1}
    key = f"infra-test-{uuid.uuid4().hex}"
    cache = caches["default"]
    assert type(cache).__name__ == "RedisCache"
    cache.set(key, 1, 10)
    assert cache.incr(key) == 2
    cache.delete(key)


def _item(*names: str) -> Any:
    return SimpleNamespace(get_closest_marker=lambda name: name if name in names else None)


def test_needs_postgres_skips_with_reason_on_sqlite(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", "django.db.backends.sqlite3")
    with pytest.raises(pytest.skip.Exception, match="DATABASE_URL=postgres"):
        markers.pytest_runtest_setup(_item("needs_postgres"))


def test_needs_redis_skips_with_reason_without_redis_url(settings: Any) -> None:
    settings.REDIS_URL = ""
    with pytest.raises(pytest.skip.Exception, match="REDIS_URL=redis"):
        markers.pytest_runtest_setup(_item("needs_redis"))
    markers.pytest_runtest_setup(_item())  # unmarked tests always run
