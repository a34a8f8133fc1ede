"""App configuration."""

from django.apps import AppConfig


class ChatConfig(AppConfig):
    """The chat app."""

    name = "chat"
    verbose_name = "Chat"
    default_auto_field = "django.db.models.BigAutoField"
