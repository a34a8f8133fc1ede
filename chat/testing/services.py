"""Pytest plugin: markers for tests that need real PostgreSQL or Redis, and per-test
clean-up of shared state (worker-thread connections, rate-limit counters).

``@pytest.mark.needs_postgres`` runs only when ``DATABASE_URL`` points at PostgreSQL and
``@pytest.mark.needs_redis`` only when ``REDIS_URL`` is set; otherwise the test is skipped
with a reason saying which variable to set. Registered by ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import SyncToAsync
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.db import connections

from chat.db import close_db_connection
from chat.limits import RATE_KEY_PREFIX

MARKERS = {
    "needs_postgres": "the test needs PostgreSQL (set DATABASE_URL=postgres://...)",
    "needs_redis": "the test needs Redis (set REDIS_URL=redis://...)",
}


def using_postgres() -> bool:
    """Whether the default database is PostgreSQL."""
    return "postgresql" in settings.DATABASES["default"]["ENGINE"]


def using_redis() -> bool:
    """Whether the channel layer and cache are on Redis."""
    return bool(getattr(settings, "REDIS_URL", ""))


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers (so ``--strict-markers`` accepts them)."""
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a marked test, saying why, when its service is not configured."""
    if item.get_closest_marker("needs_postgres") and not using_postgres():
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://... to run it")
    if item.get_closest_marker("needs_redis") and not using_redis():
        pytest.skip("needs Redis: set REDIS_URL=redis://... to run it")


@pytest.fixture(autouse=True)
def _close_worker_thread_connections() -> Iterator[None]:
    """After each test on PostgreSQL, close connections held by worker threads.

    The engine's database thread and asgiref's shared sync thread keep connections open
    across tests; PostgreSQL refuses to drop the test database while any is open.
    """
    yield
    if using_postgres():
        close_db_connection()
        SyncToAsync.single_thread_executor.submit(connections.close_all).result()


def clear_rate_limits() -> None:
    """Forget every messages-per-minute count (and, in a local cache, everything else)."""
    cache = caches["default"]
    if isinstance(cache, LocMemCache):
        cache.clear()  # this process's own cache
        return
    client = getattr(cache, "_cache", None)
    if client is not None and hasattr(client, "get_client"):  # Redis: only our keys
        redis = client.get_client(None, write=True)
        keys = list(redis.scan_iter(match=f"*{RATE_KEY_PREFIX}:*", count=1000))
        if keys:
            redis.delete(*keys)


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Every test starts with no messages counted: user ids repeat from test to test."""
    clear_rate_limits()
