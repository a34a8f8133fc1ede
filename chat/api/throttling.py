"""API throttles whose rates are read from settings at request time.

DRF's own classes copy ``DEFAULT_THROTTLE_RATES`` once at import, so a changed setting
(tests, or a settings override) would be ignored.
"""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle


class UserThrottle(UserRateThrottle):
    """Requests per authenticated user (``DEFAULT_THROTTLE_RATES["user"]``)."""

    def get_rate(self) -> str | None:
        """The current rate of this scope, or ``None`` for no limit."""
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        rate = rates.get(self.scope or "")
        return str(rate) if rate else None
