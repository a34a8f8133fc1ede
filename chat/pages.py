"""Server-rendered pages (placeholder until the UI issue lands its templates)."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render

from chat.models import Conversation


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The chat page with no conversation open."""
    conversations = Conversation.objects.filter(owner=request.user)[:50]
    return render(request, "chat/home.html", {"conversations": conversations})


@login_required
def conversation(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """The chat page with one of the user's conversations open."""
    conv = get_object_or_404(Conversation, pk=conversation_id, owner=request.user)
    conversations = Conversation.objects.filter(owner=request.user)[:50]
    return render(
        request,
        "chat/home.html",
        {"conversations": conversations, "conversation": conv, "messages": conv.messages.all()},
    )


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})
