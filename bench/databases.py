"""Fresh benchmark databases: a migrated template per engine, copied anew for every run."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bench.client import Conversation
from bench.procs import run_python

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
PG_DB, PG_TEMPLATE = "bench_chat", "bench_chat_tpl"


def pg_url(name: str) -> str:
    """A DATABASE_URL for a database on the benchmark's PostgreSQL."""
    return f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def pg_admin(sql: str, dbname: str = "postgres") -> list[tuple[object, ...]]:
    """Run one statement (autocommit) and return its rows."""
    import psycopg

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, autocommit=True,
        connect_timeout=3,
    ) as conn:  # fmt: skip
        cursor = conn.execute(sql)  # type: ignore[call-overload]
        return list(cursor.fetchall()) if cursor.description else []


def pg_available() -> bool:
    """Whether the benchmark's PostgreSQL answers."""
    try:
        pg_admin("SELECT 1")
    except Exception:
        return False
    return True


@dataclass
class BenchDatabase:
    """One engine's template (with ``users`` users) and the per-run copy the server uses."""

    engine: str  # "sqlite" or "postgres"
    workdir: Path
    users: int
    creds: list[dict[str, str]] | None = None

    @property
    def template_file(self) -> Path:
        """The SQLite template file."""
        return self.workdir / "template.sqlite3"

    @property
    def run_file(self) -> Path:
        """The SQLite file of the current run."""
        return self.workdir / "run.sqlite3"

    @property
    def url(self) -> str:
        """The DATABASE_URL of the current run's database."""
        return f"sqlite:///{self.run_file}" if self.engine == "sqlite" else pg_url(PG_DB)

    def build_template(self) -> None:
        """Migrate the template and create the users (once per benchmark)."""
        if self.engine == "sqlite":
            url = f"sqlite:///{self.template_file}"
        else:
            pg_admin(f"DROP DATABASE IF EXISTS {PG_TEMPLATE} WITH (FORCE)")
            pg_admin(f"CREATE DATABASE {PG_TEMPLATE}")
            url = pg_url(PG_TEMPLATE)
        out = self.workdir / f"creds-{self.engine}.json"
        args = ["-m", "bench.prepare", "--users", str(self.users), "--out", str(out)]
        run_python(args, env={"DATABASE_URL": url}, timeout=600)
        self.creds = json.loads(out.read_text())

    def fresh(self) -> None:
        """Replace the run database with a copy of the template."""
        if self.engine == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.run_file}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(self.template_file, self.run_file)
        else:
            pg_admin(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
            pg_admin(f"CREATE DATABASE {PG_DB} TEMPLATE {PG_TEMPLATE}")

    def conversations(self, count: int, prefix: str) -> list[Conversation]:
        """The first ``count`` users' conversations, with bench ids ``<prefix>-<i>``."""
        assert self.creds is not None and count <= len(self.creds)
        return [
            Conversation(f"{prefix}-{i}", c["conversation_id"], c["sessionid"], c["csrftoken"])
            for i, c in enumerate(self.creds[:count])
        ]

    def warmup_conversation(self, prefix: str) -> Conversation:
        """The last user's conversation, kept for the warm-up reply."""
        assert self.creds is not None
        c = self.creds[-1]
        return Conversation(f"{prefix}-warm", c["conversation_id"], c["sessionid"], c["csrftoken"])

    def writes(self) -> dict[str, int]:
        """Rows written so far to each chat table (from the triggers' log)."""
        sql = "SELECT tbl, count(*) FROM bench_write_log GROUP BY tbl"
        if self.engine == "sqlite":
            with contextlib.closing(sqlite3.connect(self.run_file, timeout=30)) as conn:
                rows = conn.execute(sql).fetchall()
        else:
            rows = pg_admin(sql, dbname=PG_DB)
        return {str(table): int(str(n)) for table, n in rows}

    def drop(self) -> None:
        """Remove the PostgreSQL databases (SQLite files go with the work directory)."""
        if self.engine == "postgres":
            with contextlib.suppress(Exception):
                pg_admin(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
                pg_admin(f"DROP DATABASE IF EXISTS {PG_TEMPLATE} WITH (FORCE)")
