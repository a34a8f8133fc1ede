"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

from chat.middleware import get_asgi_application

# Django must be set up before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from chat.auth import socket_auth_stack  # noqa: E402
from chat.lifecycle import LifespanApp  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "lifespan": LifespanApp(),
        "websocket": AllowedHostsOriginValidator(
            socket_auth_stack(URLRouter(websocket_urlpatterns))
        ),
    }
)
