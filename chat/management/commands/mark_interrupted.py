"""Mark replies left streaming by a dead server process as interrupted."""

from typing import Any

from django.core.management.base import BaseCommand

from chat.services import mark_interrupted


class Command(BaseCommand):
    help = "Mark replies whose server process died (lease lapsed) as interrupted."

    def handle(self, *args: Any, **options: Any) -> None:
        count = mark_interrupted()
        self.stdout.write(
            f"Marked {count} abandoned repl{'y' if count == 1 else 'ies'} interrupted."
        )
