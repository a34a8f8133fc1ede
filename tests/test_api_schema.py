"""The OpenAPI schema: valid, complete (streaming endpoints included), and true to the API.

The schemathesis run drives the Django app in-process (WSGI) with a token, against a
real conversation and reply, and fails on any server error.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from api_support import add_message, add_reply, make_conversation, make_user, token_client
from django.core.wsgi import get_wsgi_application
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from chat.models import Conversation

pytestmark = pytest.mark.usefixtures("clear_cache")

STREAMING = {
    ("post", "/api/conversations/{conversation_id}/messages/"),
    ("get", "/api/messages/{message_id}/stream/"),
    ("post", "/api/messages/{message_id}/cancel/"),
}
# Pages that are not part of the REST API (HTML, or the schema itself).
NOT_IN_SCHEMA = {"/api/token/", "/api/schema/", "/api/docs/"}


def fetch_schema(client: Any) -> dict[str, Any]:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def api_routes() -> set[str]:
    """Every URL under /api/ the project routes, as OpenAPI path templates."""
    found: set[str] = set()

    def visit(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                visit(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("api/"):
                template = route
                for converter in ("uuid:", "int:", "str:"):
                    template = template.replace(f"<{converter}", "{")
                found.add("/" + template.replace(">", "}"))

    visit(get_resolver().url_patterns, "")
    return found


@pytest.mark.django_db
def test_schema_is_valid_openapi(api: Any) -> None:
    validate(fetch_schema(api))


@pytest.mark.django_db
def test_schema_covers_every_endpoint(api: Any) -> None:
    paths = fetch_schema(api)["paths"]

    assert api_routes() - NOT_IN_SCHEMA == set(paths)
    operations = {(method, path) for path, item in paths.items() for method in item}
    assert operations >= STREAMING
    assert {
        ("get", "/api/conversations/"),
        ("post", "/api/conversations/"),
        ("get", "/api/conversations/{conversation_id}/"),
        ("patch", "/api/conversations/{conversation_id}/"),
        ("delete", "/api/conversations/{conversation_id}/"),
        ("get", "/api/conversations/{conversation_id}/messages/"),
        ("get", "/api/conversations/{conversation_id}/export/"),
        ("get", "/api/usage/"),
    } <= operations


@pytest.mark.django_db
def test_streaming_operations_follow_the_wire_contract(api: Any) -> None:
    schema = fetch_schema(api)
    paths = schema["paths"]

    send = paths["/api/conversations/{conversation_id}/messages/"]["post"]
    assert set(send["responses"]["201"]["content"]) == {"application/json"}
    assert "text/event-stream" in send["responses"]["200"]["content"]
    assert {"400", "404", "409", "429"} <= set(send["responses"])
    sent = schema["components"]["schemas"]["SendMessageResponse"]["properties"]
    assert set(sent) == {"user_message", "assistant_message", "stream_url"}

    stream = paths["/api/messages/{message_id}/stream/"]["get"]
    params = {(p["in"], p["name"]) for p in stream["parameters"]}
    assert {("header", "Last-Event-ID"), ("query", "offset")} <= params
    assert "text/event-stream" in stream["responses"]["200"]["content"]

    cancel = paths["/api/messages/{message_id}/cancel/"]["post"]
    assert "202" in cancel["responses"]


@pytest.mark.django_db
def test_every_error_response_has_the_error_body(api: Any) -> None:
    paths = fetch_schema(api)["paths"]

    for item in paths.values():
        for operation in item.values():
            for code, response in operation["responses"].items():
                if code.startswith("4"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}


@pytest.mark.django_db
def test_docs_page_serves_its_assets_locally(api: Any) -> None:
    page = Client().get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()
    assert "<script>" not in html  # the CSP forbids inline scripts
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    init = Client().get("/api/docs/", {"script": ""})
    assert init.status_code == 200
    assert "/api/schema/" in init.content.decode()


# -- schemathesis ------------------------------------------------------------------------

# Starting a reply runs a generation: covered by the transport tests, not fuzzed here.
NOT_FUZZED = {("POST", "/api/conversations/{conversation_id}/messages/")}
EXAMPLES = 8


def real_conversation(user: Any) -> Conversation:
    """A conversation of ``user`` with a finished exchange (made again after a DELETE)."""
    conversation = Conversation.objects.filter(owner=user, messages__isnull=False).first()
    if conversation is None:
        conversation = make_conversation(user, "Fuzzed")
        add_message(conversation, "question")
        add_reply(conversation, "answer")
    return conversation


def use_real_ids(case: Any, user: Any) -> None:
    """Point the case's path at the user's real conversation and reply (the happy paths)."""
    conversation = real_conversation(user)
    params = case.path_parameters
    if "conversation_id" in params:
        params["conversation_id"] = str(conversation.pk)
    if "message_id" in params:
        params["message_id"] = conversation.messages.order_by("id").last().pk


def fuzz(operation: Any, mode: Any, *, user: Any, headers: Any, calls: list[int]) -> None:
    """Run a few generated cases of one operation; with ``user``, at that user's real ids."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        if user is not None:
            use_real_ids(case, user)
        response = case.call(headers=headers)
        calls.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])

    run()


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume")
@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_errors() -> None:
    # transaction=True: the reply stream is read on the engine's own database thread.
    user = make_user("fuzz")
    make_conversation(make_user("other"), "Not yours")
    headers = {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed = [op for op in operations if (op.method.upper(), op.path) not in NOT_FUZZED]
    assert len(fuzzed) == len(operations) - 1
    calls: list[int] = []

    for operation in fuzzed:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for real in (False, True):
                fuzz(operation, mode, user=user if real else None, headers=headers, calls=calls)

    assert len(calls) > 100
    assert 200 in calls  # the happy paths were reached, not only refusals
    assert 404 in calls


@pytest.mark.django_db
def test_schema_statuses_for_real_requests(alice: Any) -> None:
    """The statuses the schema promises are the ones the API answers."""
    api = token_client(alice)
    paths = fetch_schema(api)["paths"]
    conversation = make_conversation(alice)

    created = api.post("/api/conversations/", {}, format="json")
    missing = api.get("/api/conversations/00000000-0000-0000-0000-000000000000/")
    listed = api.get(f"/api/conversations/{conversation.pk}/messages/")

    assert str(created.status_code) in paths["/api/conversations/"]["post"]["responses"]
    assert (
        str(missing.status_code)
        in paths["/api/conversations/{conversation_id}/"]["get"]["responses"]
    )
    assert (
        str(listed.status_code)
        in paths["/api/conversations/{conversation_id}/messages/"]["get"]["responses"]
    )
