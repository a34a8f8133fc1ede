"""Build a benchmark database: migrate, then N logged-in users with one empty conversation each.

Run in its own process with the server's environment (``DATABASE_URL``):
``python -m bench.prepare --users N --out creds.json``. Also installs triggers that log
every row written to the chat tables into ``bench_write_log`` (append-only, so concurrent
writers never contend on it), which is how writes per reply are counted on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import timedelta

TABLES = ("chat_message", "chat_conversation")

SQLITE_TRIGGERS = [
    "CREATE TABLE bench_write_log (tbl TEXT NOT NULL, op TEXT NOT NULL)",
    *(
        f"CREATE TRIGGER bench_{table}_{op.lower()} AFTER {op} ON {table} "
        f"BEGIN INSERT INTO bench_write_log VALUES ('{table}', '{op}'); END"
        for table in TABLES
        for op in ("INSERT", "UPDATE")
    ),
]
PG_TRIGGERS = [
    "CREATE TABLE bench_write_log (tbl TEXT NOT NULL, op TEXT NOT NULL)",
    """CREATE FUNCTION bench_log_write() RETURNS trigger AS $$
    BEGIN INSERT INTO bench_write_log VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END;
    $$ LANGUAGE plpgsql""",
    *(
        f"CREATE TRIGGER bench_{table}_write AFTER INSERT OR UPDATE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION bench_log_write()"
        for table in TABLES
    ),
]


def build(users: int) -> list[dict[str, str]]:
    """Migrate and create the users, sessions and conversations; their credentials."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    django.setup()
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    from chat.models import Conversation

    call_command("migrate", verbosity=0, interactive=False)
    user_model = get_user_model()
    password = make_password(None)  # unusable: these users only ever log in by cookie
    created = user_model.objects.bulk_create(
        [user_model(username=f"bench{i}", password=password) for i in range(users)]
    )
    people = list(user_model.objects.filter(username__startswith="bench").order_by("pk"))
    assert len(people) == len(created)
    store = SessionStore()
    expires = timezone.now() + timedelta(days=1)
    sessions, convs, creds = [], [], []
    for user in people:
        key = get_random_string(32)
        data = {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
        sessions.append(
            Session(session_key=key, session_data=store.encode(data), expire_date=expires)
        )
        conv = Conversation(owner=user, title="bench", model="")
        convs.append(conv)
        creds.append(
            {
                "sessionid": key,
                "csrftoken": get_random_string(32),
                "conversation_id": str(conv.pk),
            }
        )
    Session.objects.bulk_create(sessions)
    Conversation.objects.bulk_create(convs)
    triggers = PG_TRIGGERS if connection.vendor == "postgresql" else SQLITE_TRIGGERS
    with connection.cursor() as cursor:
        for statement in triggers:
            cursor.execute(statement)
    connection.close()
    return creds


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.out, "w") as out:
        json.dump(build(args.users), out)


if __name__ == "__main__":
    main()
