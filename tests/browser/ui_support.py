"""Helpers of the browser tests: Chromium's location, pages that record errors, logging in."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from typing import Any

from chat.models import Message

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct-horse-battery"
# Expectations wait this long (ms): the machine is small and shared.
TIMEOUT_MS = 20_000


class PageErrors(list[str]):
    """Uncaught script errors and dialogs seen by a page (both must stay empty)."""


def open_page(browser: Any, *, color_scheme: str = "light", **options: Any) -> tuple[Any, Any]:
    """A fresh context (own cookies and storage) and a page that records script errors."""
    context = browser.new_context(
        viewport=options.pop("viewport", {"width": 1200, "height": 800}),
        color_scheme=color_scheme,
        **options,
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors = PageErrors()
    page.on("pageerror", lambda error: errors.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: message.type == "error" and errors.append(f"console: {message.text}"),
    )
    page.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.errors = errors
    return context, page


def login(page: Any, base_url: str, *, username: str = "alice") -> None:
    """Log in through the login form and wait for the chat page."""
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    wait_ready(page)


def wait_ready(page: Any) -> None:
    """Wait until the page's scripts have started (they mark the root element)."""
    page.locator("html[data-ready]").wait_for(state="attached")


def send(page: Any, text: str) -> None:
    """Type a message and press Enter."""
    page.locator("#composer-input").fill(text)
    page.locator("#composer-input").press("Enter")


def normalized(text: str) -> str:
    return " ".join(text.split())


def last_assistant(*, status: str | None = None) -> Message:
    """The newest assistant message in the database (optionally waiting for a status)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        message = Message.objects.filter(role="assistant").order_by("-id").first()
        if message is not None and (status is None or message.status == status):
            return message
        if time.monotonic() > deadline:
            raise AssertionError(f"no assistant message with status {status!r}: {message}")
        time.sleep(0.05)


class DroppingProxy:
    """A loopback TCP proxy in front of the server whose ``drop()`` cuts every open
    connection at once: a network drop, as the browser sees it."""

    def __init__(self, target_url: str) -> None:
        host, port = target_url.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:  # the server has stopped
                client.close()
                continue
            with self.lock:
                self.open |= {client, upstream}
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        """Cut every connection open now (new ones still get through)."""
        with self.lock:
            cut, self.open = self.open, set()
        for end in cut:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self.listener.close()
        self.drop()
