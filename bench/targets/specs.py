"""The targets under benchmark: how to start each server and which client path it needs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TargetSpec:
    """One server configuration: ``kind`` picks the client path, ``db`` the database."""

    name: str
    kind: str  # "relay", "django-sse" or "django-ws"
    server: str  # "uvicorn" or "daphne"
    app: str
    db: str | None = None  # None, "sqlite" or "postgres"
    label: str = ""

    def command(self, port: int) -> list[str]:
        """The server's command line (after the interpreter)."""
        if self.server == "daphne":
            # -v 0: no access log (Uvicorn runs with --no-access-log too).
            return ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", self.app]
        return [
            "-m", "uvicorn", self.app, "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip

    @property
    def is_project(self) -> bool:
        """Whether this is the project's own server (needs a database and users)."""
        return self.kind != "relay"


DJANGO = "chatsite.asgi:application"
TARGETS: dict[str, TargetSpec] = {
    spec.name: spec
    for spec in (
        TargetSpec("raw", "relay", "uvicorn", "bench.targets.raw_asgi:app",
                   label="raw ASGI relay (Uvicorn): the limit"),
        TargetSpec("starlette", "relay", "uvicorn", "bench.targets.starlette_app:app",
                   label="Starlette + sse-starlette (Uvicorn)"),
        TargetSpec("sse-daphne", "django-sse", "daphne", DJANGO, "sqlite",
                   label="project SSE on Daphne (SQLite)"),
        TargetSpec("sse-uvicorn", "django-sse", "uvicorn", DJANGO, "sqlite",
                   label="project SSE on Uvicorn (SQLite)"),
        TargetSpec("ws-daphne", "django-ws", "daphne", DJANGO, "sqlite",
                   label="project WebSocket on Daphne (SQLite)"),
        TargetSpec("sse-daphne-pg", "django-sse", "daphne", DJANGO, "postgres",
                   label="project SSE on Daphne (PostgreSQL)"),
    )
}  # fmt: skip
