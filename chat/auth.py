"""Authentication for the async streaming views, mirroring the REST API's DRF classes.

The order and answers are those of ``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]``
(session first, then token): a logged-in session is used first and must pass the CSRF
check on unsafe methods; otherwise ``Authorization: Token <key>`` is tried, with no CSRF
check (a cross-site page cannot set that header). Because session authentication comes
first, DRF answers ``403`` to anonymous requests, and so do these views.
"""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddleware
from channels.auth import get_user as channels_get_user
from channels.sessions import SessionMiddlewareStack
from django.conf import settings
from django.contrib import auth
from django.http import HttpRequest
from rest_framework.authentication import CSRFCheck

from chat.db import read_db
from chat.errors import ChatError

TOKEN_KEYWORD = "token"


class NotAuthenticated(ChatError):
    """No credentials were sent."""

    type = "not_authenticated"
    status = 403
    default_message = "Authentication credentials were not provided."


class AuthenticationFailed(ChatError):
    """Credentials were sent but are not valid (the REST API reports the same type)."""

    type = "not_authenticated"
    status = 403
    default_message = "Incorrect authentication credentials."


class PermissionDenied(ChatError):
    """Authenticated, but the request is refused (a failed CSRF check)."""

    type = "permission_denied"
    status = 403
    default_message = "You do not have permission to perform this action."


async def authenticate(request: HttpRequest) -> Any:
    """The request's user (session with CSRF, or token), else raise a 403 ``ChatError``."""
    user = await session_user(request)
    if user is not None and user.is_authenticated and user.is_active:
        enforce_csrf(request)
        return user
    token_user = await token_user_of(request)
    if token_user is not None:
        return token_user
    raise NotAuthenticated()


async def session_user(request: HttpRequest) -> Any | None:
    """The user of the request's session cookie, if any.

    Session and user are read in one call on the engine's reading thread (``chat.db``):
    one thread hop on a connection kept open, instead of the async ORM's two hops on a
    per-request thread that opens its own connection. No cookie, no database work.
    """
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return None
    user = await read_db(auth.get_user, request=request)
    # What request.user / request.auser() would have loaded, for later code.
    request._cached_user = request._acached_user = user  # type: ignore[attr-defined]
    return user


async def token_user_of(request: HttpRequest) -> Any | None:
    """The user of an ``Authorization: Token <key>`` header; None when there is no such header."""
    return await token_user(request.headers.get("Authorization", ""))


async def token_user(authorization: str) -> Any | None:
    """The user of an ``Authorization`` header value; None unless it uses the Token scheme.

    Raises ``AuthenticationFailed`` for a malformed header, an unknown key or an inactive user.
    """
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != TOKEN_KEYWORD:
        return None
    parts = rest.split()
    if not parts:
        raise AuthenticationFailed("Invalid token header. No credentials provided.")
    if len(parts) > 1:
        raise AuthenticationFailed("Invalid token header. Token string should not contain spaces.")
    from rest_framework.authtoken.models import Token  # needs the app registry ready

    token = await read_db(_token, key=parts[0], model=Token)
    if token is None:
        raise AuthenticationFailed("Invalid token.")
    if not token.user.is_active:
        raise AuthenticationFailed("User inactive or deleted.")
    return token.user


def _token(*, key: str, model: Any) -> Any:
    return model.objects.select_related("user").filter(key=key).first()


def enforce_csrf(request: HttpRequest) -> None:
    """Django's CSRF check, as DRF's ``SessionAuthentication`` runs it (safe methods pass)."""
    check = CSRFCheck(lambda _request: None)  # type: ignore[arg-type]
    # process_request populates request.META["CSRF_COOKIE"], which process_view reads.
    check.process_request(request)
    reason = check.process_view(request, None, (), {})  # type: ignore[arg-type]
    if reason:
        raise PermissionDenied(f"CSRF Failed: {reason}")


class SocketAuthMiddleware(AuthMiddleware):
    """Channels' ``AuthMiddleware``, reading the session's user on the engine's reading thread.

    Channels reads it through ``database_sync_to_async``, which (with ``CONN_MAX_AGE = 0``)
    opens and closes a database connection for every socket.
    """

    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        """Load ``scope["user"]`` as Channels does, on a connection kept open."""
        scope["user"]._wrapped = await read_db(channels_get_user.func, scope=scope)


def socket_auth_stack(inner: Any) -> Any:
    """Channels' ``AuthMiddlewareStack`` (cookies, session, user) with ``SocketAuthMiddleware``."""
    return SessionMiddlewareStack(SocketAuthMiddleware(inner))
