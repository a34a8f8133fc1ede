"""Operations: the health endpoint and the structured (JSON) logs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError

from chat import health
from chat.db import close_db_connection
from chat.engine import get_engine
from chat.logging import JsonFormatter
from chat.models import Conversation

ROOT = Path(__file__).resolve().parent.parent


# -- /healthz -----------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz_answers_ok_without_login(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "channel_layer": "ok"}
    assert "no-cache" in response.headers["Cache-Control"]


@pytest.mark.django_db
def test_healthz_is_503_naming_a_failed_database(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(health, "_query_database", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "error", "channel_layer": "ok"}


@pytest.mark.django_db
def test_healthz_is_503_naming_an_unreachable_channel_layer(client: Any, settings: Any) -> None:
    # Nothing listens on port 1: the Redis layer's connection is refused.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "ok", "channel_layer": "error"}


@pytest.mark.django_db
def test_healthz_refuses_writes(client: Any) -> None:
    assert client.post("/healthz").status_code == 405
    assert client.head("/healthz").status_code == 200


# -- JSON logs ----------------------------------------------------------------------


def make_record(**extra: Any) -> logging.LogRecord:
    record = logging.getLogger("chat.test").makeRecord(
        "chat.test", logging.INFO, __file__, 1, "hello %s", ("world",), None, extra=extra
    )
    return record


def test_json_formatter_puts_extra_fields_at_top_level() -> None:
    conversation = uuid.uuid4()
    line = JsonFormatter().format(make_record(conversation=conversation, tokens=12))
    entry = json.loads(line)
    assert entry["message"] == "hello world"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "chat.test"
    assert entry["conversation"] == str(conversation)
    assert entry["tokens"] == 12
    assert entry["time"].endswith("+00:00")
    assert "\n" not in line


def test_json_formatter_keeps_the_exception_and_fixed_fields() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = make_record(level="spoofed")
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "INFO"  # an extra field cannot overwrite a fixed one
    assert "ValueError: boom" in entry["exc_info"]


@pytest.mark.django_db(transaction=True)
async def test_generation_finished_log_has_the_generation_fields(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.CHAT = {**settings.CHAT, "PROVIDER": "locmem", "PROVIDER_OPTIONS": {}}
    caplog.set_level(logging.INFO, logger="chat.engine")
    user = await get_user_model().objects.acreate_user("logger", password="pw")
    conversation = await Conversation.objects.acreate(owner=user, model="claude-sonnet-4-5")
    try:
        engine = get_engine()
        turn = await engine.start(user_id=user.pk, conversation_id=conversation.pk, content="Hi")
        task = engine.generations[turn.assistant_message.pk].task
        assert task is not None
        await task  # the line is logged once the reply is stored and released
    finally:
        await get_engine().close_bridge()  # its tasks (with REDIS_URL) live on this loop
        close_db_connection()
    [record] = [r for r in caplog.records if r.getMessage() == "generation finished"]
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "generation finished"
    assert entry["conversation_id"] == str(conversation.pk)
    assert entry["message_id"] == turn.assistant_message.pk
    assert entry["status"] == "complete"
    assert entry["model"] == "claude-sonnet-4-5"
    assert entry["output_tokens"] == 2
    assert entry["input_tokens"] > 0
    assert entry["ttft_ms"] >= 0
    assert entry["duration_ms"] >= entry["ttft_ms"]


def test_chat_log_format_json_makes_every_log_line_json() -> None:
    script = (
        "import django, logging; django.setup(); "
        "logging.getLogger('chat.engine').info('generation finished', "
        "extra={'status': 'complete', 'ttft_ms': 42})"
    )
    env = {**os.environ, "CHAT_LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "chatsite.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    entry = json.loads(result.stderr.strip().splitlines()[-1])
    assert entry["message"] == "generation finished"
    assert entry["status"] == "complete"
    assert entry["ttft_ms"] == 42
