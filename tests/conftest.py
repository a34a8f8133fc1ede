"""Shared fixtures."""

pytest_plugins = ["chat.testing.fixtures"]
