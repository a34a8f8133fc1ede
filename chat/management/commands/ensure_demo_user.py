"""Create the demo user (demo / demo) when the database has no users, and say how to log in."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from chat.conf import chat_settings


class Command(BaseCommand):
    help = "Create a demo user (demo/demo) if the database has no users."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        if not User.objects.exists():
            User.objects.create_user("demo", password="demo")
            self.stdout.write("Created the demo user.")
        if User.objects.filter(username="demo").exists():
            self.stdout.write(f"Log in at {options['url']} as demo / demo.")
        provider = chat_settings.provider_name
        note = " (set ANTHROPIC_API_KEY to talk to Claude)" if provider == "demo" else ""
        self.stdout.write(f"Provider: {provider}{note}.")
