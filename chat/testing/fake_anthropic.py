"""A fake Anthropic Messages API on plain asyncio, speaking the real wire protocol.

Run it standalone (``python -m chat.testing.fake_anthropic --port 8765 --tps 50``) or in
tests (``FakeAnthropicServer``). Each request is scriptable with an ``x-fake-script`` JSON
header or a ``[fake tokens=300 tps=50 fail=drop after=5]`` directive in the last user
message (header > directive > ``server.default_script``). Options: ``text`` (reply; default
"Echo: <prompt>" plus filler words), ``tokens`` (exact delta count), ``tps``, ``ttft``
(seconds before the response), ``input_tokens``, ``stop_reason``, ``should_retry``, and
``fail``: 400/401/403/404/500, ``429`` (with ``retry_after``), ``529``/``overloaded``,
or after ``after`` tokens ``overloaded_midstream`` (error event), ``drop`` (connection
closed without the final chunk), ``stall`` (silence until the client gives up).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import shlex
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

FILLER = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
# Words with their leading whitespace; a trailing run of whitespace is its own token, so
# "".join(tokenize(text)) == text for any text.
TOKEN_RE = re.compile(r"\s*\S+|\s+")
# [fake key=value key="quoted value" ...], anywhere in the text.
DIRECTIVE_RE = re.compile(r"\[fake((?:\s+(?:[^\]\"'\s]|\"[^\"]*\"|'[^']*')+)*)\s*\]")
SCRIPT_TYPES: dict[str, type] = {
    **dict.fromkeys(("text", "fail", "stop_reason"), str),
    **dict.fromkeys(("tokens", "after", "input_tokens"), int),
    **dict.fromkeys(("tps", "ttft", "retry_after"), float),
    "should_retry": bool,
}
# fail=<name or status> for failures answered before any stream starts.
STATUS_FAILURES: dict[str, tuple[int, str, str]] = {
    "400": (400, "invalid_request_error", "Invalid request (scripted)."),
    "401": (401, "authentication_error", "invalid x-api-key"),
    "403": (403, "permission_error", "Your API key does not have permission to use this model."),
    "404": (404, "not_found_error", "model: not found (scripted)"),
    "429": (429, "rate_limit_error", "Number of requests has exceeded your rate limit."),
    "500": (500, "api_error", "Internal server error (scripted)."),
    "529": (529, "overloaded_error", "Overloaded"),
}
FAIL_ALIASES = {"auth": "401", "rate_limit": "429", "overloaded": "529"}
# fail=<name> for failures after ``after`` tokens of a stream.
STREAM_FAILURES = {"overloaded_midstream", "drop", "stall"}


class ScriptError(ValueError):
    """A malformed ``x-fake-script`` header or ``[fake ...]`` directive."""


def tokenize(text: str) -> list[str]:
    """Split reply text into the deltas the fake streams (words with leading whitespace)."""
    return TOKEN_RE.findall(text)


def parse_directive(prompt: str) -> tuple[dict[str, Any], str]:
    """Extract ``[fake k=v ...]`` directives: (script options, the prompt without them)."""
    script: dict[str, Any] = {}
    for match in DIRECTIVE_RE.finditer(prompt):
        for item in shlex.split(match.group(1)):
            key, sep, value = item.partition("=")
            if not sep:
                raise ScriptError(f"fake directive item {item!r} is not key=value")
            script[key] = value
    return coerce_script(script), DIRECTIVE_RE.sub("", prompt).strip()


def coerce_script(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate script keys and convert string values to their types."""
    script: dict[str, Any] = {}
    for key, value in raw.items():
        kind = SCRIPT_TYPES.get(key)
        if kind is None:
            raise ScriptError(f"unknown fake script option {key!r}")
        if kind is bool and isinstance(value, str):
            value = value.lower() in {"1", "true", "yes", "on"}
        try:
            script[key] = kind(value)
        except (TypeError, ValueError) as exc:
            raise ScriptError(f"fake script option {key}={value!r}: {exc}") from exc
    if "fail" in script:
        script["fail"] = FAIL_ALIASES.get(script["fail"], script["fail"])
        if script["fail"] not in STATUS_FAILURES and script["fail"] not in STREAM_FAILURES:
            raise ScriptError(f"unknown fake failure {script['fail']!r}")
    return script


def reply_tokens(prompt: str, text: str | None, count: int | None) -> list[str]:
    """The deltas of a reply: the scripted text, or "Echo: <prompt>" padded/cut to ``count``."""
    tokens = tokenize(text if text is not None else f"Echo: {prompt}")
    if count is None:
        return tokens
    if text is not None and tokens:
        # Explicit text with a count: repeat the text's tokens to fill it.
        return list(itertools.islice(itertools.cycle(tokens), count))
    filler = (f" {word}" for word in itertools.cycle(FILLER))
    return (tokens + list(itertools.islice(filler, max(0, count - len(tokens)))))[:count]


def message_text(content: Any) -> str:
    """The text of a message's content (a string or a list of content blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


@dataclass
class RequestRecord:
    """What the fake saw and did for one request (read it from tests)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    script: dict[str, Any] = field(default_factory=dict)
    status: int | None = None
    # (token text, time.time() when written to the socket), in order.
    sent: list[tuple[str, float]] = field(default_factory=list)
    completed: bool = False
    client_disconnected: bool = False

    @property
    def sent_text(self) -> str:
        """Everything streamed so far, concatenated."""
        return "".join(text for text, _ in self.sent)


class ClientGone(Exception):
    """The client closed the connection while we were answering."""


@dataclass
class _Connection:
    """One keep-alive HTTP/1.1 connection: read requests, write responses."""

    server: FakeAnthropicServer
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    # Our own read buffer, shared by the request parser and the hang-up watcher, so bytes
    # the watcher reads (a pipelined request) are kept rather than lost.
    buffer: bytearray = field(default_factory=bytearray)

    async def fill(self) -> bool:
        """Read more bytes into the buffer; False at end of stream."""
        data = await self.reader.read(65536)
        self.buffer += data
        return bool(data)

    async def take(self, size: int | None = None, until: bytes = b"") -> bytes | None:
        """Consume ``size`` bytes, or up to and including ``until``; None at end of stream."""
        while (end := self._end(size, until)) is None:
            if not await self.fill():
                return None
        data = bytes(self.buffer[:end])
        del self.buffer[:end]
        return data

    def _end(self, size: int | None, until: bytes) -> int | None:
        if size is not None:
            return size if len(self.buffer) >= size else None
        found = self.buffer.find(until)
        return found + len(until) if found >= 0 else None

    async def serve(self) -> None:
        """Answer requests until the client closes or asks to."""
        # ValueError: a malformed request line or header; just hang up.
        with contextlib.suppress(ConnectionError, ClientGone, ValueError):
            while (request := await self.read_request()) is not None:
                method, path, headers, raw = request
                record = RequestRecord(method, path, headers)
                self.server.requests.append(record)
                keep_alive = await self.answer_watching_eof(record, raw)
                self.server._notify()
                if not keep_alive or headers.get("connection", "").lower() == "close":
                    break
        self.writer.close()

    async def read_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        """Parse one request; None at a clean end of connection."""
        if (head := await self.take(until=b"\r\n\r\n")) is None:
            return None
        request_line, *lines = head.decode("utf-8", "replace").split("\r\n")
        method, path, _version = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        for line in filter(None, lines):
            name, _, value = line.partition(":")
            name = name.strip().lower()
            headers[name] = (
                f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
            )
        # The SDK always sends a Content-Length body (no chunked uploads to support).
        body = await self.take(int(headers.get("content-length", 0)))
        return None if body is None else (method, path, headers, body)

    async def answer_watching_eof(self, record: RequestRecord, raw: bytes) -> bool:
        """Answer while watching for the client hanging up (reader EOF); keep alive?"""
        answer = asyncio.ensure_future(self.server._answer(self, record, raw))
        watch = asyncio.ensure_future(self.watch_eof())
        try:
            done, _ = await asyncio.wait({answer, watch}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the server is stopping
            answer.cancel()
            watch.cancel()
            raise
        watch.cancel()
        # Let the watcher finish cancelling, or the next read would clash with it.
        await asyncio.gather(watch, return_exceptions=True)
        if answer not in done:
            record.client_disconnected = True
            answer.cancel()
        try:
            return await answer
        except (asyncio.CancelledError, ClientGone, ConnectionError):
            record.client_disconnected = True
            return False

    async def watch_eof(self) -> None:
        """Return when the client closes its side of the connection."""
        while await self.fill():
            pass

    async def write(self, data: bytes) -> None:
        """Write and flush; a closed peer raises ClientGone."""
        if self.writer.is_closing():
            raise ClientGone
        self.writer.write(data)
        try:
            await self.writer.drain()
        except ConnectionError as exc:
            raise ClientGone from exc

    async def send_head(self, status: int, headers: dict[str, str]) -> None:
        """Write the status line and headers."""
        reason = "Overloaded" if status == 529 else HTTPStatus(status).phrase
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        await self.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def send_json(
        self, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        """A complete JSON response with Content-Length."""
        data = json.dumps(body).encode()
        base = {"content-type": "application/json", "content-length": str(len(data))}
        await self.send_head(status, {**base, **(headers or {})})
        await self.write(data)

    async def send_chunk(self, data: bytes) -> None:
        """One HTTP/1.1 chunk (an empty one ends the body)."""
        await self.write(b"%x\r\n%s\r\n" % (len(data), data))

    async def drop(self) -> None:
        """Flush what was written, then close without the terminating chunk."""
        # close() (unlike abort()) sends what is buffered before the FIN.
        self.writer.transport.close()


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def event(kind: str, **fields: Any) -> bytes:
    """One Messages stream event, whose data repeats its name as ``type``."""
    return sse(kind, {"type": kind, **fields})


def error_body(kind: str, message: str) -> dict[str, Any]:
    """The API's error shape."""
    return {"type": "error", "error": {"type": kind, "message": message}}


class FakeAnthropicServer:
    """A fake ``POST /v1/messages`` on 127.0.0.1 that records every request.

    ``tps``/``ttft`` set the default pace (tokens per second, seconds before the response
    headers); ``valid_key`` None accepts any non-empty key but "bad-key"; ``should_retry``
    is sent as ``x-should-retry`` on errors (None: header omitted).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tps: float = 100.0,
        ttft: float = 0.0,
        valid_key: str | None = None,
        should_retry: bool | None = False,
    ) -> None:
        self.host, self.port = host, port
        self.tps, self.ttft = tps, ttft
        self.valid_key, self.should_retry = valid_key, should_retry
        # Merged under each request's own script; tests can force failures with it.
        self.default_script: dict[str, Any] = {}
        self.requests: list[RequestRecord] = []
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The URL to give the SDK as ``base_url``."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> FakeAnthropicServer:
        """Bind and start accepting connections in the running loop."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port, limit=2**20)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop accepting, and cut every open connection."""
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeAnthropicServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self) -> FakeAnthropicServer:
        """Run the server on its own event loop in a daemon thread (survives test loops)."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.start())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.stop())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-anthropic", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Anthropic server did not start")
        return self

    def stop_thread(self) -> None:
        """Stop a server started with ``start_in_thread`` and join its thread."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> FakeAnthropicServer:
        return self.start_in_thread()

    def __exit__(self, *exc: object) -> None:
        self.stop_thread()

    # -- observability ------------------------------------------------------------------

    @property
    def last_request(self) -> RequestRecord:
        """The most recent request (raises IndexError if none yet)."""
        return self.requests[-1]

    @property
    def disconnects(self) -> int:
        """How many responses the client abandoned before they finished."""
        return sum(r.client_disconnected for r in self.requests)

    def reset(self) -> None:
        """Forget recorded requests and the default script."""
        self.requests.clear()
        self.default_script = {}

    def wait_for_disconnect_blocking(self, count: int = 1, within: float = 5.0) -> bool:
        """Block the calling thread until ``count`` client disconnects; False after ``within``."""
        with self._changed:
            return self._changed.wait_for(lambda: self.disconnects >= count, within)

    async def wait_for_disconnect(self, count: int = 1, within: float = 5.0) -> bool:
        """Await ``count`` client disconnects from any event loop; False after ``within`` s."""
        deadline = time.monotonic() + within
        # Polling works whichever loop/thread the server runs on.
        while self.disconnects < count:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # -- request handling ---------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await _Connection(self, reader, writer).serve()
        except BaseException as exc:
            # Never leave a transport open: Server.wait_closed() would wait for it forever.
            writer.transport.abort()
            if not isinstance(exc, asyncio.CancelledError):  # stop() cancels us: that's fine
                raise
        finally:
            self._connections.discard(task)

    async def _answer(self, conn: _Connection, record: RequestRecord, raw: bytes) -> bool:
        """Route one request; returns whether the connection may be reused."""
        if (record.method, record.path.split("?")[0]) != ("POST", "/v1/messages"):
            return await self._error(conn, record, 404, "not_found_error", "Not found.")
        try:
            record.body = json.loads(raw or b"null")
            script, prompt = self._script(record)
        except (ValueError, ScriptError) as exc:
            return await self._error(conn, record, 400, "invalid_request_error", str(exc))
        record.script = script
        if (auth_failure := self._auth_failure(record.headers)) is not None:
            return await self._error(conn, record, 401, "authentication_error", auth_failure)
        if (fail := script.get("fail")) in STATUS_FAILURES:
            status, kind, message = STATUS_FAILURES[fail]
            return await self._error(conn, record, status, kind, message)
        await asyncio.sleep(script.get("ttft", self.ttft))
        tokens = reply_tokens(prompt, script.get("text"), script.get("tokens"))
        if record.body.get("stream"):
            return await self._stream(conn, record, tokens)
        return await self._complete(conn, record, tokens)

    def _script(self, record: RequestRecord) -> tuple[dict[str, Any], str]:
        """The merged script for a request (default < directive < header) and the prompt."""
        body = record.body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise ScriptError("messages: field required")
        for name in ("model", "max_tokens"):
            if name not in body:
                raise ScriptError(f"{name}: field required")
        users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
        directive, prompt = parse_directive(message_text(users[-1]["content"]) if users else "")
        header = coerce_script(json.loads(record.headers.get("x-fake-script", "{}")))
        return {**coerce_script(self.default_script), **directive, **header}, prompt

    def _auth_failure(self, headers: dict[str, str]) -> str | None:
        """Why the request's credentials are refused, or None if accepted."""
        bearer = headers.get("authorization", "")
        key = headers.get("x-api-key") or (bearer[7:] if bearer[:7].lower() == "bearer " else "")
        if not key:
            return "x-api-key header is required"
        if key == "bad-key" or (self.valid_key is not None and key != self.valid_key):
            return "invalid x-api-key"
        return None

    def _headers(self, record: RequestRecord, error: bool = False) -> dict[str, str]:
        """A fresh request-id, and x-should-retry on errors."""
        headers = {"request-id": f"req_fake_{next(self._ids):06d}"}
        retry = record.script.get("should_retry", self.should_retry)
        if error and retry is not None:
            headers["x-should-retry"] = "true" if retry else "false"
        return headers

    async def _error(
        self, conn: _Connection, record: RequestRecord, status: int, kind: str, message: str
    ) -> bool:
        """An error response in the API's JSON shape (always complete, so keep-alive)."""
        record.status = status
        headers = self._headers(record, error=True)
        if status == 429:
            headers["retry-after"] = f"{record.script.get('retry_after', 1):g}"
        body = {**error_body(kind, message), "request_id": headers["request-id"]}
        await conn.send_json(status, body, headers)
        record.completed = True
        return True

    def _message(self, record: RequestRecord, tokens: list[str]) -> tuple[dict[str, Any], str]:
        """The message object (empty content, as in message_start) and its stop reason."""
        body, script = record.body, record.script
        limit = int(body.get("max_tokens") or 0)
        stop = script.get("stop_reason") or ("max_tokens" if len(tokens) > limit else "end_turn")
        texts = [message_text(m.get("content")) for m in body["messages"] if isinstance(m, dict)]
        chars = len(message_text(body.get("system", ""))) + sum(map(len, texts))
        usage = {"input_tokens": script.get("input_tokens", max(1, chars // 4)), "output_tokens": 1}
        usage |= {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        message = {
            "id": f"msg_fake_{next(self._ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return message, stop

    async def _complete(self, conn: _Connection, record: RequestRecord, tokens: list[str]) -> bool:
        """The non-streaming JSON reply."""
        message, stop = self._message(record, tokens)
        tokens = tokens[: int(record.body.get("max_tokens") or 0)]
        message.update(content=[{"type": "text", "text": "".join(tokens)}], stop_reason=stop)
        message["usage"]["output_tokens"] = len(tokens)
        record.status = 200
        await conn.send_json(200, message, self._headers(record))
        record.completed = True
        return True

    async def _stream(self, conn: _Connection, record: RequestRecord, tokens: list[str]) -> bool:
        """The SSE reply, paced at ``tps`` from the first token on."""
        message, stop = self._message(record, tokens)
        tokens = tokens[: int(record.body.get("max_tokens") or 0)]
        record.status = 200
        head = {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "transfer-encoding": "chunked",
        }
        await conn.send_head(200, {**head, **self._headers(record)})
        await conn.send_chunk(event("message_start", message=message))
        block = {"type": "text", "text": ""}
        await conn.send_chunk(event("content_block_start", index=0, content_block=block))
        await conn.send_chunk(event("ping"))
        if not await self._send_tokens(conn, record, tokens):
            return False
        await conn.send_chunk(event("content_block_stop", index=0))
        stopped = {"stop_reason": stop, "stop_sequence": None}
        usage = {"output_tokens": len(tokens)}
        await conn.send_chunk(event("message_delta", delta=stopped, usage=usage))
        await conn.send_chunk(event("message_stop"))
        await conn.send_chunk(b"")
        record.completed = True
        return True

    async def _send_tokens(
        self, conn: _Connection, record: RequestRecord, tokens: list[str]
    ) -> bool:
        """Stream the deltas, failing as scripted; False if the connection must end."""
        tps = record.script.get("tps", self.tps)
        fail, after = record.script.get("fail"), record.script.get("after", 0)
        loop = asyncio.get_running_loop()
        first = loop.time()
        for index, text in enumerate(tokens):
            if fail in STREAM_FAILURES and index == after:
                return await self._fail_midstream(conn, fail)
            if tps > 0 and (delay := first + index / tps - loop.time()) > 0:
                await asyncio.sleep(delay)
            sent_at = time.time()
            delta = {"type": "text_delta", "text": text}
            # sent_at is ours (benchmarks read it); the SDK ignores unknown fields.
            await conn.send_chunk(
                event("content_block_delta", index=0, delta=delta, sent_at=sent_at)
            )
            record.sent.append((text, sent_at))
        if fail in STREAM_FAILURES:
            return await self._fail_midstream(conn, fail)
        return True

    async def _fail_midstream(self, conn: _Connection, fail: str) -> bool:
        """Fail a started stream: an error event, a dropped connection, or silence."""
        if fail == "overloaded_midstream":
            await conn.send_chunk(sse("error", error_body("overloaded_error", "Overloaded")))
            await conn.send_chunk(b"")
            return True
        if fail == "stall":
            await asyncio.Event().wait()  # until the client gives up (or the server stops)
        await conn.drop()
        return False


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--tps", type=float, default=50.0, help="tokens per second (0: no pacing)")
    parser.add_argument("--ttft", type=float, default=0.2, help="seconds before the first token")
    parser.add_argument("--valid-key", default=None, help="the only API key accepted")
    args = parser.parse_args(argv)
    server = FakeAnthropicServer(
        host=args.host, port=args.port, tps=args.tps, ttft=args.ttft, valid_key=args.valid_key
    )

    async def serve() -> None:
        await server.start()
        print(f"Fake Anthropic API on {server.base_url} (ANTHROPIC_BASE_URL)", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
