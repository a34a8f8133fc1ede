"""The load client: K conversations over raw asyncio HTTP (SSE) or ``websockets``.

Every reply is the same scripted text, " t0 t1 … t299"; the client records when each
chunk arrived and how much of the text it had by then, so per-token latency can be
computed afterwards from the upstream's send-time log, identically for every target.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets

HOST = "127.0.0.1"


def reply_text(tokens: int) -> str:
    """The upstream's scripted reply: each token names its index."""
    return "".join(f" t{i}" for i in range(tokens))


def prompt(bench_id: str, *, tokens: int, tps: float, ttft: float) -> str:
    """A user message that makes the fake upstream answer ``reply_text`` at ``tps``."""
    return f'bench-id:{bench_id}\n[fake text="{reply_text(tokens)}" tps={tps:g} ttft={ttft:g}]\n'


@dataclass
class Conversation:
    """One simulated user and conversation (credentials only for the project targets)."""

    bench_id: str
    conversation_id: str = ""
    sessionid: str = ""
    csrftoken: str = ""


@dataclass
class Reply:
    """What the client saw of one reply."""

    bench_id: str
    sent_at: float = 0.0
    answered_at: float | None = None  # the project's POST answered (201), SSE only
    # (arrival time.time(), characters of the reply received so far), one per chunk.
    chunks: list[tuple[float, int]] = field(default_factory=list)
    text: str = ""
    ended: bool = False  # the target's end marker ([DONE] / done frame) arrived
    error: str | None = None
    # Called once, at the first chunk (or at the end if none came).
    on_open: Callable[[], None] | None = field(default=None, repr=False)

    def add(self, chunk: str, arrival: float) -> None:
        """Record one chunk."""
        self.text += chunk
        self.chunks.append((arrival, len(self.text)))
        if len(self.chunks) == 1:
            self.opened()

    def opened(self) -> None:
        """Report the stream open (once)."""
        if self.on_open is not None:
            self.on_open, callback = None, self.on_open
            callback()


@dataclass
class Target:
    """How to reach one server: ``kind`` is "relay", "django-sse" or "django-ws"."""

    name: str
    kind: str
    port: int


class HTTPConnection:
    """A minimal HTTP/1.1 client connection (what the benchmark needs, nothing more)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> HTTPConnection:
        """Connect to the target."""
        reader, writer = await asyncio.open_connection(HOST, port, limit=2**20)
        return cls(reader, writer)

    def close(self) -> None:
        """Close the socket."""
        self.writer.close()

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> None:
        """Write a request (the caller awaits the response)."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    @property
    def port(self) -> int:
        """The peer's port (for the Host header)."""
        return int(self.writer.get_extra_info("peername")[1])

    async def head(self) -> tuple[int, dict[str, str]]:
        """The response's status and headers (lower-case names)."""
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in filter(None, lines):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    async def body(self, headers: dict[str, str]) -> AsyncIterator[bytes]:
        """The body as it arrives (chunked, sized, or up to EOF)."""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    return
                yield data[:-2]
        elif "content-length" in headers:
            yield await self.reader.readexactly(int(headers["content-length"]))
        else:
            while data := await self.reader.read(65536):
                yield data

    async def read_all(self, headers: dict[str, str]) -> bytes:
        """The whole body."""
        return b"".join([part async for part in self.body(headers)])


async def sse_events(
    conn: HTTPConnection, headers: dict[str, str]
) -> AsyncIterator[tuple[str, str, float]]:
    """(event name, data, arrival time) for each event of an SSE body."""
    buffer = b""
    async for data in conn.body(headers):
        arrival = time.time()
        # SSE allows CRLF line ends (sse-starlette's default); normalise across reads.
        buffer = (buffer + data).replace(b"\r\n", b"\n")
        while b"\n\n" in buffer:
            frame, buffer = buffer.split(b"\n\n", 1)
            name, payload = "message", []
            for line in frame.decode().split("\n"):
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    payload.append(line[5:].removeprefix(" "))
            if payload:
                yield name, "\n".join(payload), arrival


async def follow_sse(conn: HTTPConnection, headers: dict[str, str], reply: Reply) -> None:
    """Read an event stream into ``reply`` until ``[DONE]``."""
    async for name, data, arrival in sse_events(conn, headers):
        if data == "[DONE]":
            reply.ended = True
            return
        if name == "error":
            reply.error = f"error event: {data}"
        elif name == "message":
            reply.add(json.loads(data)["chunk"], arrival)


def cookie_headers(conv: Conversation) -> dict[str, str]:
    """A logged-in browser's cookies and CSRF header."""
    return {
        "Cookie": f"sessionid={conv.sessionid}; csrftoken={conv.csrftoken}",
        "X-CSRFToken": conv.csrftoken,
    }


async def run_relay(target: Target, conv: Conversation, text: str, reply: Reply) -> None:
    """The peers: one POST answered by the event stream."""
    conn = await HTTPConnection.open(target.port)
    try:
        body = json.dumps({"content": text}).encode()
        reply.sent_at = time.time()
        conn.send("POST", "/relay", {"Content-Type": "application/json"}, body)
        status, headers = await conn.head()
        if status != 200:
            reply.error = f"HTTP {status}: {(await conn.read_all(headers))[:200]!r}"
            return
        await follow_sse(conn, headers, reply)
    finally:
        conn.close()


async def run_django_sse(target: Target, conv: Conversation, text: str, reply: Reply) -> None:
    """The project's SSE path: POST the message, then GET its ``stream_url``."""
    conn = await HTTPConnection.open(target.port)
    try:
        auth = cookie_headers(conv)
        body = json.dumps({"content": text}).encode()
        path = f"/api/conversations/{conv.conversation_id}/messages/"
        headers = {**auth, "Content-Type": "application/json", "Accept": "application/json"}
        reply.sent_at = time.time()
        conn.send("POST", path, headers, body)
        status, head = await conn.head()
        answer = await conn.read_all(head)
        reply.answered_at = time.time()
        if status != 201:
            reply.error = f"POST HTTP {status}: {answer[:200]!r}"
            return
        stream_url = json.loads(answer)["stream_url"]
        if head.get("connection", "").lower() == "close":
            conn.close()
            conn = await HTTPConnection.open(target.port)
        conn.send("GET", stream_url, {**auth, "Accept": "text/event-stream"})
        status, head = await conn.head()
        if status != 200:
            reply.error = f"GET HTTP {status}: {(await conn.read_all(head))[:200]!r}"
            return
        await follow_sse(conn, head, reply)
    finally:
        conn.close()


async def run_django_ws(target: Target, conv: Conversation, text: str, reply: Reply) -> None:
    """The project's WebSocket consumer: send a message frame, read chunk frames."""
    uri = f"ws://{HOST}:{target.port}/ws/conversations/{conv.conversation_id}/"
    async with websockets.connect(
        uri,
        origin=websockets.Origin(f"http://{HOST}:{target.port}"),
        additional_headers={"Cookie": f"sessionid={conv.sessionid}"},
        max_size=2**22,
        compression=None,
        open_timeout=30,
    ) as ws:
        reply.sent_at = time.time()
        await ws.send(json.dumps({"type": "message", "content": text}))
        async for raw in ws:
            arrival = time.time()
            frame: dict[str, Any] = json.loads(raw)
            kind = frame.get("type")
            if kind == "chunk":
                reply.add(frame["chunk"], arrival)
            elif kind == "done":
                reply.ended = True
                return
            elif kind == "error":
                reply.error = f"error frame: {raw[:200]!r}"
                return


RUNNERS = {"relay": run_relay, "django-sse": run_django_sse, "django-ws": run_django_ws}


async def one_reply(
    target: Target, conv: Conversation, reply: Reply, text: str, *, delay: float, limit: float
) -> None:
    """Start one conversation after ``delay`` and follow its reply for ``limit`` seconds."""
    await asyncio.sleep(delay)
    try:
        await asyncio.wait_for(RUNNERS[target.kind](target, conv, text, reply), limit)
    except TimeoutError:
        reply.error = reply.error or f"timed out after {limit:.0f} s"
    except Exception as exc:  # every failure is a figure, not a crash
        reply.error = reply.error or f"{type(exc).__name__}: {exc}"
    finally:
        reply.opened()


async def run_load(
    target: Target,
    convs: list[Conversation],
    *,
    tokens: int,
    tps: float,
    ttft: float,
    open_over: float,
    limit: float,
    all_open: asyncio.Event,
    replies: list[Reply] | None = None,
) -> list[Reply]:
    """Every conversation, started evenly over ``open_over`` seconds.

    Sets ``all_open`` once every reply has its first chunk (or has failed), so the caller
    can sample the server while all the streams are open. Pass ``replies`` (one per
    conversation) to watch them fill in.
    """
    replies = replies if replies is not None else [Reply(conv.bench_id) for conv in convs]
    tasks = [
        asyncio.create_task(
            one_reply(
                target,
                conv,
                reply,
                prompt(conv.bench_id, tokens=tokens, tps=tps, ttft=ttft),
                delay=open_over * i / len(convs),
                limit=limit,
            )
        )
        for i, (conv, reply) in enumerate(zip(convs, replies, strict=True))
    ]

    waiting = len(replies)

    def one_open() -> None:
        nonlocal waiting
        waiting -= 1
        if waiting == 0:
            all_open.set()

    for reply in replies:
        reply.on_open = one_open
    await asyncio.gather(*tasks)
    all_open.set()
    return replies
