"""Pytest plugin: markers for tests that need real PostgreSQL or Redis.

``@pytest.mark.needs_postgres`` runs only when ``DATABASE_URL`` points at PostgreSQL and
``@pytest.mark.needs_redis`` only when ``REDIS_URL`` is set; otherwise the test is skipped
with a reason saying which variable to set. Registered by ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import SyncToAsync
from django.conf import settings
from django.db import connections

from chat.db import close_db_connection

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
