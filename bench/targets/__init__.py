"""Peer relays the project is measured against (no framework, and Starlette)."""
