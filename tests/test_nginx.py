"""The documented nginx configuration (deploy/nginx/chat.conf), run for real in front of
Daphne: replies stream through it chunk by chunk (not buffered), WebSockets upgrade,
and the health endpoint answers."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect as ws_connect

from chat.models import Conversation, Message

ROOT = Path(__file__).resolve().parent.parent
SITE_CONFIG = ROOT / "deploy" / "nginx" / "chat.conf"
NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
)

pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)"),
    pytest.mark.django_db(transaction=True),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def substitute(text: str, pattern: str, replacement: str, count: int) -> str:
    """Replace exactly ``count`` matches: a changed config must fail here, not pass by luck."""
    result, found = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert found == count, f"expected {count} match(es) of {pattern!r} in {SITE_CONFIG}"
    return result


def render_site(upstream: str, https_port: int, http_port: int) -> str:
    """deploy/nginx/chat.conf with the test's Daphne as upstream and loopback ports, no TLS."""
    site = SITE_CONFIG.read_text()
    site = substitute(site, r"^\s*server 127\.0\.0\.1:\d+;\n", "", 2)
    site = substitute(site, r"^(\s*)least_conn;", rf"\1least_conn;\n\1server {upstream};", 1)
    site = substitute(site, r"^\s*listen \[::\]:\d+.*;\n", "", 2)
    site = substitute(site, r"^(\s*)listen 443 ssl http2;", rf"\1listen 127.0.0.1:{https_port};", 1)
    site = substitute(site, r"^(\s*)listen 80;", rf"\1listen 127.0.0.1:{http_port};", 1)
    site = substitute(site, r"^\s*ssl_certificate.*;\n", "", 2)
    return site


def main_config(site: str, prefix: Path) -> str:
    """A whole nginx.conf around the site, everything it writes kept under ``prefix``."""
    user = "user root;" if os.geteuid() == 0 else ""
    temp_paths = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
{user}
daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix / "access.log"};
{temp_paths}
{site}
}}
"""


@contextlib.contextmanager
def running_nginx(tmp_path: Path, upstream: str) -> Iterator[tuple[int, int]]:
    """Start nginx with the rendered config; yields its (https_port, http_port) on loopback."""
    https_port, http_port = free_port(), free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(main_config(render_site(upstream, https_port, http_port), tmp_path))
    assert NGINX is not None
    command = [NGINX, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", https_port)):
                break
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "nginx did not start listening"
            time.sleep(0.05)
        yield https_port, http_port
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful stop
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_documented_config_with_tls_is_valid(tmp_path: Path) -> None:
    """Unmodified but for the certificate paths, the site passes ``nginx -t``."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subject = ["-subj", "/CN=chat.example.com", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject],
        check=True,
        capture_output=True,
    )
    site = SITE_CONFIG.read_text()
    site = substitute(
        site, r"/etc/letsencrypt/live/chat\.example\.com/fullchain\.pem", str(cert), 1
    )
    site = substitute(site, r"/etc/letsencrypt/live/chat\.example\.com/privkey\.pem", str(key), 1)
    conf = tmp_path / "nginx.conf"
    conf.write_text(main_config(site, tmp_path))
    assert NGINX is not None
    checked = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.fixture
def demo_settings(settings: Any) -> None:
    """The demo provider at a pace that makes a reply last a couple of seconds."""
    settings.CHAT = {**settings.CHAT, "PROVIDER": "demo", "DEMO_WORDS_PER_SECOND": 40}


@pytest.fixture
def account() -> tuple[Any, str, Conversation]:
    user = get_user_model().objects.create_user("nginx-user", password="pw")
    token = Token.objects.create(user=user)
    conversation = Conversation.objects.create(owner=user, model="claude-sonnet-4-5")
    return user, token.key, conversation


@pytest.fixture
def proxy(demo_settings: None, daphne_server: str, tmp_path: Path) -> Iterator[tuple[int, int]]:
    with running_nginx(tmp_path, daphne_server.removeprefix("http://")) as ports:
        yield ports


def status_of(message_id: int) -> str:
    return Message.objects.get(pk=message_id).status


def test_health_endpoint_answers_through_nginx_on_both_servers(proxy: tuple[int, int]) -> None:
    https_port, http_port = proxy
    for port in (https_port, http_port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["status"] == "ok"
    # Anything else on the plain-HTTP server moves to HTTPS.
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
    conn.request("GET", "/", headers={"Host": "chat.example.com"})
    response = conn.getresponse()
    assert response.status == 301
    assert response.getheader("Location") == "https://chat.example.com/"


def test_sse_chunks_pass_through_nginx_as_they_are_written(
    proxy: tuple[int, int], account: tuple[Any, str, Conversation]
) -> None:
    _user, token, conversation = account
    conn = http.client.HTTPConnection("127.0.0.1", proxy[0], timeout=30)
    conn.request(
        "POST",
        f"/api/conversations/{conversation.pk}/messages/",
        body=json.dumps({"content": "Stream this through nginx, please."}),
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
        },
    )
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/event-stream")
    message_id = int(response.getheader("X-Message-Id", "0"))
    chunks: list[str] = []
    status_at_first_chunk = None
    while True:
        line = response.readline().decode()
        assert line, "the stream ended without [DONE]"
        if line.startswith("data: [DONE]"):
            break
        if line.startswith("data: ") and '"chunk"' in line:
            chunks.append(json.loads(line.removeprefix("data: "))["chunk"])
            if status_at_first_chunk is None:
                # Buffered by the proxy, the first chunk would only come once the reply ended.
                status_at_first_chunk = status_of(message_id)
    assert status_at_first_chunk == "streaming"
    assert len(chunks) > 10
    stored = Message.objects.get(pk=message_id)
    assert stored.status == "complete"
    assert "".join(chunks) == stored.content


def test_websocket_upgrades_through_nginx_and_streams(
    proxy: tuple[int, int], account: tuple[Any, str, Conversation]
) -> None:
    _user, token, conversation = account
    port = proxy[0]
    with ws_connect(
        f"ws://127.0.0.1:{port}/ws/conversations/{conversation.pk}/",
        additional_headers={"Authorization": f"Token {token}"},
        origin=f"http://127.0.0.1:{port}",  # type: ignore[arg-type]
        open_timeout=10,
    ) as socket_:
        socket_.send(json.dumps({"type": "message", "content": "Hello over a socket."}))
        chunks: list[str] = []
        status_at_first_chunk = None
        message_id = None
        while True:
            frame = json.loads(socket_.recv(timeout=30))
            if frame["type"] == "chunk":
                chunks.append(frame["chunk"])
                message_id = frame["message_id"]
                if status_at_first_chunk is None:
                    status_at_first_chunk = status_of(message_id)
            assert frame["type"] != "error", frame
            if frame["type"] == "done":
                break
    assert status_at_first_chunk == "streaming"
    assert message_id is not None
    assert "".join(chunks) == Message.objects.get(pk=message_id).content
