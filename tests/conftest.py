"""Shared fixtures."""

pytest_plugins = [
    "chat.testing.fixtures",
    "chat.testing.services",
    "api_support",
    "chat.testing.live_server",
]
