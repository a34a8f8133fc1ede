"""Model providers, chosen from ``CHAT["PROVIDER"]`` by short name or dotted path."""

from __future__ import annotations

import asyncio
import weakref

from django.utils.module_loading import import_string

from chat.conf import chat_settings
from chat.providers.base import BaseProvider

SHORT_NAMES = {
    "anthropic": "chat.providers.anthropic.AnthropicProvider",
    "demo": "chat.providers.demo.DemoProvider",
    "locmem": "chat.providers.locmem.ScriptedProvider",
}

# One provider instance per (event loop, configuration): an SDK client bound to one
# loop breaks on another, and building one costs ~22 ms of CPU.
_instances: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str], BaseProvider]
]
_instances = weakref.WeakKeyDictionary()


def provider_class(name: str | None = None) -> type[BaseProvider]:
    """Resolve a short name or dotted path to a provider class."""
    name = name or chat_settings.provider_name
    cls = import_string(SHORT_NAMES.get(name, name))
    if not (isinstance(cls, type) and issubclass(cls, BaseProvider)):
        raise TypeError(f"{name!r} is not a BaseProvider subclass")
    return cls


def get_provider(name: str | None = None) -> BaseProvider:
    """The provider for the running event loop, built once per loop and configuration."""
    name = name or chat_settings.provider_name
    options = dict(chat_settings.PROVIDER_OPTIONS or {})
    key = (name, repr(sorted(options.items())) + repr(_config_fingerprint()))
    loop = asyncio.get_running_loop()
    per_loop = _instances.setdefault(loop, {})
    provider = per_loop.get(key)
    if provider is None:
        provider = per_loop[key] = provider_class(name)(**options)
    return provider


def _config_fingerprint() -> tuple[object, ...]:
    """Settings that change how a provider is built (so overrides get a fresh one)."""
    return (
        chat_settings.ANTHROPIC_API_KEY,
        chat_settings.ANTHROPIC_BASE_URL,
        chat_settings.ANTHROPIC_MAX_RETRIES,
        chat_settings.ANTHROPIC_TIMEOUT,
        chat_settings.DEMO_WORDS_PER_SECOND,
    )


__all__ = ["BaseProvider", "get_provider", "provider_class"]
