"""The one error body everywhere, throttling, and JSON 404/500 under /api/."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from chat.api.exceptions import api_exception_handler, server_error
from chat.errors import Conflict

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clear_cache")]


def test_throttled_requests_get_429_with_retry_after(api: APIClient, settings: Any) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "3/minute"},
    }

    statuses = [api.get("/api/conversations/").status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    response = api.get("/api/usage/")
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert 0 < int(response["Retry-After"]) <= 60


def test_throttle_is_per_user(api: APIClient, bob: Any, settings: Any) -> None:
    from api_support import token_client

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "1/minute"},
    }
    assert api.get("/api/conversations/").status_code == 200
    assert api.get("/api/conversations/").status_code == 429

    assert token_client(bob).get("/api/conversations/").status_code == 200


def test_unknown_api_path_is_a_json_404() -> None:
    response = Client().get("/api/no-such-endpoint/")

    assert response.status_code == 404
    assert response.json() == {"error": {"type": "not_found", "message": "Not found."}}


def test_unknown_page_outside_the_api_is_html() -> None:
    response = Client().get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_server_error_is_json_under_the_api_only() -> None:
    api_response = server_error(RequestFactory().get("/api/conversations/"))
    page_response = server_error(RequestFactory().get("/"))

    assert api_response.status_code == 500
    assert api_response["Content-Type"] == "application/json"
    assert b'"api_error"' in api_response.content
    assert page_response["Content-Type"].startswith("text/html")


def test_unsupported_media_type(api: APIClient) -> None:
    response = api.post("/api/conversations/", "title=x", content_type="text/plain")

    assert response.status_code == 415
    assert response.json()["error"]["type"] == "unsupported_media_type"


def test_chat_errors_keep_their_type_and_status() -> None:
    response = api_exception_handler(Conflict(), {})

    assert response is not None
    assert response.status_code == 409
    assert response.data == {"error": Conflict().as_dict()}


def test_validation_error_names_each_field(api: APIClient) -> None:
    response = api.post("/api/conversations/", {"title": "t" * 201, "model": "nope"}, format="json")

    error = response.json()["error"]
    assert response.status_code == 400
    assert error["message"].startswith("title: ")
    assert "model: " in error["message"]
    assert set(error["fields"]) == {"title", "model"}
