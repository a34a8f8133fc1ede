"""One error body everywhere: ``{"error": {"type", "message"}}`` with the right status.

``api_exception_handler`` is DRF's ``EXCEPTION_HANDLER``; ``not_found`` / ``server_error``
are Django's ``handler404`` / ``handler500``, answering JSON under ``/api/``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from chat.errors import ChatError

# The error "type" of each DRF exception (checked in order: subclasses first).
ERROR_TYPES: list[tuple[type[exceptions.APIException], str]] = [
    (exceptions.ValidationError, "invalid_request"),
    (exceptions.ParseError, "invalid_request"),
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "not_authenticated"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "rate_limit_error"),
]


def error_body(type_: str, message: str, **extra: Any) -> dict[str, Any]:
    """The error body shared by every transport."""
    return {"error": {"type": type_, "message": message, **extra}}


def error_type(exc: exceptions.APIException) -> str:
    """The ``type`` reported for a DRF exception."""
    for cls, name in ERROR_TYPES:
        if isinstance(exc, cls):
            return name
    return str(exc.default_code)


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    """Human-readable lines from a validation error's (nested) detail."""
    if isinstance(detail, dict):
        lines: list[str] = []
        for key, value in detail.items():
            label = "" if key == "non_field_errors" else f"{prefix}{key}"
            lines += _flatten(value, f"{label}." if label else "")
        return lines
    if isinstance(detail, list):
        return [line for item in detail for line in _flatten(item, prefix)]
    label = prefix.rstrip(".")
    return [f"{label}: {detail}" if label else str(detail)]


def _message(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.ValidationError):
        return " ".join(_flatten(exc.detail)) or "The request was not valid."
    if isinstance(exc, exceptions.ParseError):
        return f"Invalid request body: {exc.detail}"
    return str(exc.detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler (statuses, ``WWW-Authenticate``, ``Retry-After``) with our body."""
    if isinstance(exc, ChatError):
        set_rollback()
        return Response(error_body(exc.type, exc.message), status=exc.status)
    response = exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 (JSON under /api/)
    api_exc = _as_api_exception(exc)
    extra: dict[str, Any] = {}
    if isinstance(api_exc, exceptions.ValidationError) and isinstance(api_exc.detail, dict):
        extra["fields"] = response.data
    response.data = error_body(error_type(api_exc), _message(api_exc), **extra)
    return response


def _as_api_exception(exc: Exception) -> exceptions.APIException:
    # DRF's handler maps Django's Http404 / PermissionDenied the same way.
    if isinstance(exc, exceptions.APIException):
        return exc
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied()
    return exceptions.APIException()


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 404: JSON for the API, the HTML page elsewhere."""
    if _is_api(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500: JSON for the API, the HTML page elsewhere."""
    if _is_api(request):
        body = error_body("api_error", "Something went wrong on our side.")
        return JsonResponse(body, status=500)
    return defaults.server_error(request)
