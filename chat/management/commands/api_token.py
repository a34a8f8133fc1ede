"""Show, create, replace or revoke a user's REST API token from the command line."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = (
        "Print USERNAME's API token, creating one if needed; --reset replaces it, "
        "--revoke deletes it."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--reset", action="store_true", help="Replace the token.")
        group.add_argument("--revoke", action="store_true", help="Delete the token.")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: options["username"]}).first()
        if user is None:
            raise CommandError(f"No user named {options['username']!r}.")
        if options["revoke"]:
            deleted, _ = Token.objects.filter(user=user).delete()
            self.stdout.write("Token revoked." if deleted else "The user had no token.")
            return
        if options["reset"]:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
