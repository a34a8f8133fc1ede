"""An open event stream holds no OS thread in the server (checked on a real Daphne)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx2
import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from chat.models import Conversation
from chat.testing.fake_anthropic import FakeAnthropicServer
from chat.testing.live_server import database_options, running_daphne
from chat.threads import MAX_IDLE

pytestmark = pytest.mark.django_db(transaction=True)

STREAMS = 24


def thread_count(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Threads:")).split()[1])


async def test_open_streams_do_not_hold_a_thread_each(fake_anthropic: FakeAnthropicServer):
    user = await get_user_model().objects.acreate_user("alice", password="pw")
    token = await Token.objects.acreate(user=user)
    convs = [await Conversation.objects.acreate(owner=user, model="m") for _ in range(STREAMS)]
    env = {
        "CHAT_PROVIDER": "anthropic",
        "ANTHROPIC_API_KEY": "k",
        "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
        "CHAT_MAX_CONCURRENT_PER_USER": str(STREAMS),
        "CHAT_MESSAGES_PER_MINUTE": "1000",
    }
    headers = {"Authorization": f"Token {token.key}", "Accept": "text/event-stream"}
    database = database_options()
    with running_daphne(**database | {"env": env | database.get("env", {})}) as server:
        async with httpx2.AsyncClient(base_url=server.url, timeout=30) as client:
            await client.get("/healthz")
            baseline = thread_count(server.pid)
            opened = asyncio.Event()
            started = 0

            async def chat(conv: Conversation) -> str:
                nonlocal started
                url = f"/api/conversations/{conv.pk}/messages/"
                body = {"content": "hi [fake tokens=30 tps=10]"}
                async with client.stream("POST", url, json=body, headers=headers) as response:
                    assert response.status_code == 200
                    text = ""
                    async for part in response.aiter_text():
                        text += part
                        if "id: " in part and started < STREAMS:
                            started += 1
                            if started == STREAMS:
                                opened.set()
                    return text

            streams = [asyncio.create_task(chat(conv)) for conv in convs]
            await asyncio.wait_for(opened.wait(), 20)
            await asyncio.sleep(0.5)
            during = thread_count(server.pid)
            for task in streams:
                task.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
    # With a thread per stream this would be baseline + 24; what remains is the pool of
    # idle request threads (bounded, whatever the number of streams).
    assert during - baseline <= MAX_IDLE + 2, (baseline, during)


async def get(app, path: str) -> int:
    from asgiref.testing import ApplicationCommunicator

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }  # fmt: skip
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(5)
    while (await communicator.receive_output(5)).get("more_body"):
        pass
    await communicator.wait(5)  # the request has ended (and given its thread back)
    return int(start["status"])


async def test_requests_run_their_sync_steps_on_a_reused_thread(monkeypatch):
    """No thread start per request: the sync steps of one request after another share one."""
    import threading

    from chat import health
    from chat.middleware import InlineMiddlewareASGIHandler

    seen: list[threading.Thread] = []
    query = health._query_database

    def spy() -> None:
        seen.append(threading.current_thread())
        query()

    monkeypatch.setattr(health, "_query_database", spy)
    app = InlineMiddlewareASGIHandler()
    for _ in range(3):
        assert await get(app, "/healthz") == 200
    assert len(seen) == 3
    assert seen[0] is seen[1] is seen[2]
    assert seen[0] is not threading.main_thread()
