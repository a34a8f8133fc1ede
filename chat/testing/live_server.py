"""A real Daphne server for tests, and a parser for the Server-Sent Events it streams.

``start_daphne()`` runs ``chatsite.asgi:application`` in a subprocess on a free loopback
port, against the test database and the test's ``CHAT`` settings (passed as the
environment variables ``chatsite.settings`` reads). The ``daphne_server`` fixture wraps
it; register this module in ``pytest_plugins``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def chat_env_names() -> dict[str, str]:
    """settings.CHAT keys -> the environment variables ``chatsite.settings`` reads them from."""
    from django.conf import settings

    mapping = getattr(settings, "CHAT_ENVIRONMENT", {})
    return {key: name for key, (name, _cast) in mapping.items()}


@dataclass
class LiveServer:
    """A running server process: its base URL (``http://127.0.0.1:<port>``) and its log."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The server's process id (to inspect its threads or memory)."""
        return self.process.pid

    @property
    def ws_url(self) -> str:
        """The base URL for WebSockets (``ws://127.0.0.1:<port>``)."""
        return "ws" + self.url.removeprefix("http")

    def log(self) -> str:
        """Everything the server wrote to stdout/stderr so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove its log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        with contextlib.suppress(OSError):
            self.log_path.unlink()


def chat_environment(chat: Mapping[str, Any]) -> dict[str, str]:
    """Environment variables reproducing ``chat`` (a ``settings.CHAT``) in a server process.

    Keys with no environment variable (``PROVIDER_OPTIONS``...) are not passed on.
    """
    names = chat_env_names()
    env: dict[str, str] = {}
    for key, value in chat.items():
        name = names.get(key)
        if name is not None and value is not None:
            env[name] = str(value)
    return env


def free_socket(host: str = "127.0.0.1") -> socket.socket:
    """A bound, listening TCP socket on a free port (handed to the server: no port race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


def start_daphne(
    *,
    database_name: str | None = None,
    chat: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    timeout: float = 30.0,
) -> LiveServer:
    """Start Daphne serving ``chatsite.asgi:application`` and wait until it answers.

    ``database_name`` is a SQLite file (the test database); ``chat`` a ``CHAT`` settings
    dict to reproduce; ``env`` extra environment variables; ``args`` extra Daphne options.
    """
    sock = free_socket()
    host, port = sock.getsockname()[:2]
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatsite.settings", "PYTHONUNBUFFERED": "1"}
    for name in chat_env_names().values():
        environ.pop(name, None)
    if database_name:
        environ["DATABASE_URL"] = f"sqlite:///{database_name}"
    environ |= chat_environment(chat or {}) | dict(env or {})
    log = tempfile.NamedTemporaryFile(prefix="daphne-", suffix=".log", delete=False)  # noqa: SIM115
    command = [sys.executable, "-m", "daphne", "--fd", str(sock.fileno()), *args]
    try:
        process = subprocess.Popen(
            [*command, "chatsite.asgi:application"],
            cwd=ROOT,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(sock.fileno(),),
        )
    finally:
        sock.close()  # the child holds its own copy
        log.close()
    server = LiveServer(f"http://{host}:{port}", process, Path(log.name))
    try:
        wait_until_serving(server, host, port, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def wait_until_serving(server: LiveServer, host: str, port: int, timeout: float) -> None:
    """Poll with a real HTTP request until the server answers (Django loaded), or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"Daphne exited with {server.process.returncode}:\n{server.log()}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 1) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            if conn.recv(16).startswith(b"HTTP/1.1"):
                return
        time.sleep(0.05)
    raise RuntimeError(f"Daphne did not answer within {timeout} s:\n{server.log()}")


class LiveURL(str):
    """A server's base URL (a plain ``str``) that also knows its ``server`` (pid, log...)."""

    server: LiveServer


@contextlib.contextmanager
def running_daphne(**options: Any) -> Iterator[LiveServer]:
    """``start_daphne(**options)`` as a context manager that always stops the server."""
    server = start_daphne(**options)
    try:
        yield server
    finally:
        server.stop()


def database_options() -> dict[str, Any]:
    """``start_daphne`` options that point a server at the current test database."""
    from django.db import connection

    db = connection.settings_dict
    if "sqlite" in db["ENGINE"]:
        return {"database_name": str(db["NAME"])}
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    url = f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    return {"env": {"DATABASE_URL": url}}


@pytest.fixture
def daphne_server(transactional_db: None, settings: Any) -> Iterator[LiveURL]:
    """The base URL of a real Daphne server on the test database and the test's ``CHAT``.

    Data the test writes is committed (``transactional_db``) so the server sees it. Set
    ``settings.CHAT`` (e.g. with ``anthropic_settings``) before requesting this fixture.
    ``daphne_server.server`` is the ``LiveServer`` (its ``pid``, ``ws_url``, ``log()``).
    """
    chat = getattr(settings, "CHAT", {})
    with running_daphne(**database_options(), chat=chat) as server:
        url = LiveURL(server.url)
        url.server = server
        yield url


# -- Server-Sent Events -----------------------------------------------------------------


@dataclass(frozen=True)
class SSEFrame:
    """One frame of an event stream: its fields (``event``, ``id``, ``data``...) or a comment."""

    fields: dict[str, str]
    comment: str | None = None

    @property
    def event(self) -> str | None:
        return self.fields.get("event")

    @property
    def data(self) -> str | None:
        return self.fields.get("data")

    @property
    def id(self) -> str | None:
        return self.fields.get("id")

    def json(self) -> Any:
        """The ``data`` field decoded as JSON."""
        return json.loads(self.fields["data"])


def parse_sse(text: str) -> list[SSEFrame]:
    """Split an event stream into frames (a frame ends at a blank line)."""
    frames = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block:
            continue
        fields: dict[str, str] = {}
        comment = None
        for line in block.split("\n"):
            if line.startswith(":"):
                comment = line[1:].strip()
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = f"{fields[name]}\n{value}" if name in fields else value
        frames.append(SSEFrame(fields, comment))
    return frames
