"""REST views: thin adapters over ``chat.api.services`` (login required, own data only).

Another user's conversation is simply not in the queryset, so it is a 404 like an
unknown id: the API never reveals that it exists.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.api import exports, services
from chat.api.pagination import ConversationPagination, MessagePagination
from chat.api.serializers import (
    ConversationSerializer,
    ConversationWriteSerializer,
    ExportQuerySerializer,
    ExportSerializer,
    MessageSerializer,
    SearchQuerySerializer,
    UsageQuerySerializer,
    UsageSerializer,
)
from chat.models import Conversation, Message

ERRORS = {
    400: OpenApiResponse(description="Invalid request (`invalid_request`)."),
    403: OpenApiResponse(description="Not logged in (`not_authenticated`)."),
    404: OpenApiResponse(description="No such conversation of yours (`not_found`)."),
}


def owner_id(request: Request) -> int:
    """The id of the authenticated user (every view requires one)."""
    return int(request.user.pk)  # type: ignore[arg-type]


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: ERRORS[code] for code in codes}


class ConversationList(generics.ListAPIView):
    """``GET``: the user's conversations, most recent first (``?q=`` searches);
    ``POST``: create one."""

    serializer_class = ConversationSerializer
    pagination_class = ConversationPagination

    def get_queryset(self) -> QuerySet[Conversation]:
        """The user's conversations, annotated, filtered by ``?q=``."""
        query = SearchQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data.get("q", "")
        return services.conversations_for(user_id=owner_id(self.request), q=q)

    @extend_schema(
        summary="List or search conversations",
        parameters=[
            OpenApiParameter("q", str, description="Search titles and message contents."),
        ],
        responses={200: ConversationSerializer(many=True), **_errors(400, 403)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """List (paginated)."""
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Create a conversation",
        request=ConversationWriteSerializer,
        responses={201: ConversationSerializer, **_errors(400, 403)},
    )
    def post(self, request: Request) -> Response:
        """Create an empty conversation (title, system prompt and model are optional)."""
        data = ConversationWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.create_conversation(user_id=owner_id(request), **data.validated_data)
        conversation = services.conversations_for(user_id=owner_id(request)).get(pk=created.pk)
        body = ConversationSerializer(conversation).data
        location = f"/api/conversations/{created.pk}/"
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})


class ConversationDetail(APIView):
    """One of the user's conversations: read, rename (or change model/prompt), delete."""

    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_object(self, conversation_id: Any) -> Conversation:
        """The user's conversation, annotated, or 404."""
        qs = services.conversations_for(user_id=owner_id(self.request))
        return get_object_or_404(qs, pk=conversation_id)

    @extend_schema(
        summary="Get a conversation",
        responses={200: ConversationSerializer, **_errors(403, 404)},
    )
    def get(self, request: Request, conversation_id: Any) -> Response:
        """The conversation with its message count and last message."""
        return Response(ConversationSerializer(self.get_object(conversation_id)).data)

    @extend_schema(
        summary="Update a conversation",
        request=ConversationWriteSerializer,
        responses={200: ConversationSerializer, **_errors(400, 403, 404)},
    )
    def patch(self, request: Request, conversation_id: Any) -> Response:
        """Change the title, system prompt or model."""
        conversation = self.get_object(conversation_id)
        data = ConversationWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        if data.validated_data:
            services.update_conversation(conversation, changes=dict(data.validated_data))
            conversation = self.get_object(conversation_id)
        return Response(ConversationSerializer(conversation).data)

    @extend_schema(
        summary="Delete a conversation and its messages",
        responses={204: None, **_errors(403, 404)},
    )
    def delete(self, request: Request, conversation_id: Any) -> Response:
        """Delete it (a reply running in it is stopped first)."""
        conversation = get_object_or_404(
            Conversation, pk=conversation_id, owner_id=owner_id(request)
        )
        services.delete_conversation(conversation)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MessageList(generics.ListAPIView):
    """A conversation's messages in order, cursor-paginated (``?after=`` / ``?before=``)."""

    serializer_class = MessageSerializer
    pagination_class = MessagePagination

    def get_queryset(self) -> QuerySet[Message]:
        """The conversation's messages, if the conversation is the user's (else 404)."""
        conversation = get_object_or_404(
            Conversation.objects.only("pk"),
            pk=self.kwargs["conversation_id"],
            owner_id=owner_id(self.request),
        )
        return Message.objects.filter(conversation=conversation)

    @extend_schema(
        summary="List a conversation's messages",
        responses={200: MessageSerializer(many=True), **_errors(400, 403, 404)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Oldest first; a page's cursors stay valid while new messages arrive."""
        return super().get(request, *args, **kwargs)


message_list_view = MessageList.as_view()
"""The ``GET`` of ``/api/conversations/<id>/messages/`` (the streaming dispatcher calls it)."""


class ConversationExport(APIView):
    """A whole conversation as a JSON or Markdown download."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        """Always JSON: ``?format=`` names the export's format here, not a renderer."""
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(
        summary="Export a conversation",
        parameters=[ExportQuerySerializer],
        responses={
            (200, "application/json"): ExportSerializer,
            (200, "text/markdown"): OpenApiTypes.STR,
            **_errors(400, 403, 404),
        },
    )
    def get(self, request: Request, conversation_id: Any) -> HttpResponse:
        """``?format=json`` (default) or ``?format=markdown``."""
        query = ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        fmt = query.validated_data["format"]
        qs = exports.with_messages(Conversation.objects.filter(owner_id=owner_id(request)))
        conversation = get_object_or_404(qs, pk=conversation_id)
        response = HttpResponse(
            exports.render([conversation], fmt, many=False),
            content_type=exports.CONTENT_TYPES[fmt],
        )
        name = exports.filename(conversation, fmt)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class Usage(APIView):
    """The user's replies and tokens per day and per model."""

    @extend_schema(
        summary="Token usage",
        parameters=[UsageQuerySerializer],
        responses={200: UsageSerializer, **_errors(400, 403)},
    )
    def get(self, request: Request) -> Response:
        """The last ``?days=`` days (default 30), per day (UTC) and per model."""
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        usage = services.usage_for(user_id=owner_id(request), days=query.validated_data["days"])
        return Response(UsageSerializer(usage).data)
