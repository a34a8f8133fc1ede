"""The chat app's settings: one namespaced object with defaults, read at use time.

Override any key in ``settings.CHAT`` (a dict); ``chat_settings.MODEL`` always reflects
the current Django settings, so ``override_settings`` works in tests.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Provider: "anthropic", "demo", or a dotted path to a BaseProvider subclass.
    # None picks "anthropic" when an API key is configured, else "demo".
    "PROVIDER": None,
    "PROVIDER_OPTIONS": {},
    "ANTHROPIC_API_KEY": None,
    "ANTHROPIC_BASE_URL": None,
    "ANTHROPIC_MAX_RETRIES": 2,
    "ANTHROPIC_TIMEOUT": 600.0,
    "MODEL": "claude-sonnet-4-5",
    "MODELS": ["claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5"],
    "MAX_TOKENS": 4096,
    "SYSTEM_PROMPT": "You are a helpful assistant.",
    "HISTORY_WINDOW": 20,
    # Seconds between writes of a growing reply to the database.
    "FLUSH_INTERVAL": 0.5,
    "MAX_MESSAGE_LENGTH": 32_000,
    "MAX_CONCURRENT_PER_USER": 3,
    # Tokens (input + output) a user may spend per UTC day; None (or 0) = unlimited.
    "DAILY_TOKEN_QUOTA": None,
    # Messages a user may send per minute, all processes together; None (or 0) = unlimited.
    "MESSAGES_PER_MINUTE": 20,
    # A streaming message whose owner stops renewing its lease for this long is
    # considered abandoned and marked interrupted.
    "LEASE_SECONDS": 15.0,
    "SSE_RETRY_MS": 3000,
    "SSE_PING_SECONDS": 15.0,
    # Default transport of the browser UI: "sse" or "websocket".
    "TRANSPORT": "sse",
    # Demo provider pace.
    "DEMO_WORDS_PER_SECOND": 30.0,
    # Seconds between channel-layer sends of one reply's chunks to other processes.
    "BRIDGE_BATCH_SECONDS": 0.02,
    # Seconds a graceful shutdown waits for running generations.
    "SHUTDOWN_GRACE_SECONDS": 10.0,
}


class ChatSettings:
    """Attribute access to ``settings.CHAT`` with defaults; nothing is cached."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown chat setting: {name}")
        overrides: dict[str, Any] = getattr(settings, "CHAT", {}) or {}
        return overrides.get(name, DEFAULTS[name])

    @property
    def provider_name(self) -> str:
        """The configured provider, resolving the automatic default."""
        configured = self.PROVIDER
        if configured:
            return str(configured)
        return "anthropic" if self.ANTHROPIC_API_KEY else "demo"


chat_settings = ChatSettings()
