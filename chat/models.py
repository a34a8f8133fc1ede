"""Conversations and their messages."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    """A thread between one user and the model."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    system_prompt = models.TextField(blank=True)
    model = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="conv_owner_updated")]

    def __str__(self) -> str:
        return self.title or "Untitled conversation"


class Message(models.Model):
    """One turn: a user's message or the assistant's reply (possibly still streaming)."""

    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Status(models.TextChoices):
        COMPLETE = "complete", "Complete"
        STREAMING = "streaming", "Streaming"
        CANCELLED = "cancelled", "Cancelled"
        ERROR = "error", "Error"
        INTERRUPTED = "interrupted", "Interrupted"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    error_type = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    model = models.CharField(max_length=100, blank=True)
    stop_reason = models.CharField(max_length=64, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens_estimated = models.BooleanField(default=False)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # Which server process generates a streaming reply, and until when its lease holds;
    # a reply whose lease lapsed belongs to a dead process and is marked interrupted.
    worker = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["conversation", "created_at", "id"], name="msg_conv_order"),
            models.Index(fields=["status"], name="msg_status"),
        ]

    def __str__(self) -> str:
        return f"{self.role} message {self.pk}"

    @property
    def is_final(self) -> bool:
        """Whether the message will not change any more."""
        return self.status != self.Status.STREAMING
