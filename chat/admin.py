"""The Django admin for reviewing conversations: read-only, fast lists, exports, usage.

Staff review what was said; nobody edits it (no change or add permission for anyone),
and only superusers delete. Lists annotate their counts in one query
(``chat.api.services.annotate_review``), so a page costs the same whatever its size.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import linebreaksbr
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from chat.api import exports, services
from chat.models import Conversation, Message

USAGE_WINDOWS = (7, 30, 90)
USAGE_PAGE_SIZE = 100


class ReadOnlyAdmin(admin.ModelAdmin):
    """View-only for staff with the view permission; deletion for superusers only."""

    show_full_result_count = False  # skips a COUNT(*) over the whole table per page

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)


def _tokens(message: Message) -> str:
    if message.input_tokens is None and message.output_tokens is None:
        return "—"
    estimated = " (est.)" if message.output_tokens_estimated else ""
    return f"{message.input_tokens or 0} in / {message.output_tokens or 0} out{estimated}"


def _timing(message: Message) -> str:
    if message.duration_ms is None:
        return "—"
    first = message.time_to_first_token_ms
    return (
        f"first token {first} ms, total {message.duration_ms} ms"
        if first is not None
        else (f"total {message.duration_ms} ms")
    )


def _conversation_link(conversation: Conversation) -> SafeString:
    url = reverse("admin:chat_conversation_change", args=[conversation.pk])
    return format_html('<a href="{}">{}</a>', url, str(conversation))


class MessageColumns:
    """Display columns shared by the message inline and the message admin."""

    @admin.display(description="content")
    def text(self, message: Message) -> SafeString:
        """The full text, escaped, with its line breaks."""
        return format_html('<div class="chat-admin-text">{}</div>', linebreaksbr(message.content))

    @admin.display(description="tokens")
    def tokens(self, message: Message) -> str:
        """Input / output tokens."""
        return _tokens(message)

    @admin.display(description="timing")
    def timing(self, message: Message) -> str:
        """Time to first token and total duration."""
        return _timing(message)

    @admin.display(description="error")
    def error(self, message: Message) -> str:
        """The error type and text of a failed reply."""
        if not message.error_type:
            return ""
        return f"{message.error_type}: {message.error_message}"


class MessageInline(MessageColumns, admin.TabularInline):
    """The conversation's messages, in order, read-only."""

    model = Message
    fields = ("created_at", "role", "status", "text", "tokens", "timing", "error")
    readonly_fields = fields
    ordering = ("created_at", "id")
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LastReplyStatusFilter(admin.SimpleListFilter):
    """Conversations by the status of their last assistant reply."""

    title = "status of the last reply"
    parameter_name = "last_reply"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [*Message.Status.choices, ("none", "No reply yet")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "none":
            return queryset.filter(last_reply_status__isnull=True)
        if value in Message.Status.values:
            return queryset.filter(last_reply_status=value)
        return queryset


def _export(queryset: QuerySet[Conversation], fmt: str) -> HttpResponse:
    items = exports.with_messages(queryset.order_by("-updated_at"))
    response = HttpResponse(exports.render(items, fmt), content_type=exports.CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{exports.filename(None, fmt)}"'
    return response


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    """Conversations with counts, tokens and the last reply's status; exports; usage."""

    list_display = (
        "__str__",
        "owner",
        "model",
        "message_count",
        "total_tokens",
        "last_reply",
        "updated_at",
    )
    list_select_related = ("owner",)
    list_filter = (
        ("owner", admin.RelatedOnlyFieldListFilter),
        "model",
        LastReplyStatusFilter,
        "updated_at",
        "created_at",
    )
    search_fields = ("title", "owner__username", "owner__email", "messages__content")
    date_hierarchy = "created_at"
    fields = (
        "id",
        "owner",
        "title",
        "model",
        "system_prompt",
        "created_at",
        "updated_at",
        "message_count",
        "total_tokens",
    )
    readonly_fields = fields
    inlines = (MessageInline,)
    actions = ("export_json", "export_markdown")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        """Annotated with the list's computed columns (no per-row queries)."""
        return services.annotate_review(super().get_queryset(request))

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, conversation: Conversation) -> int:
        """How many messages it has."""
        return conversation.message_count  # type: ignore[attr-defined]

    @admin.display(description="tokens", ordering="total_tokens")
    def total_tokens(self, conversation: Conversation) -> int:
        """Input plus output tokens of all its replies."""
        return conversation.total_tokens  # type: ignore[attr-defined]

    @admin.display(description="last reply", ordering="last_reply_status")
    def last_reply(self, conversation: Conversation) -> str:
        """The status of its last assistant reply."""
        return conversation.last_reply_status or "—"  # type: ignore[attr-defined]

    @admin.action(description="Export selected conversations as JSON", permissions=["view"])
    def export_json(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> HttpResponse:
        """One JSON file: a list of conversations with their messages."""
        return _export(queryset, "json")

    @admin.action(description="Export selected conversations as Markdown", permissions=["view"])
    def export_markdown(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> HttpResponse:
        """One Markdown file with every selected transcript."""
        return _export(queryset, "markdown")

    def get_urls(self) -> list[URLPattern]:
        """Adds ``usage/``: tokens per user per day."""
        usage = path(
            "usage/", self.admin_site.admin_view(self.usage_view), name="chat_conversation_usage"
        )
        return [usage, *super().get_urls()]

    def usage_view(self, request: HttpRequest) -> TemplateResponse:
        """Replies and tokens per user per day over the last 7, 30 or 90 days."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            days = int(request.GET.get("days", 30))
        except ValueError:
            days = 30
        days = days if days in USAGE_WINDOWS else 30
        rows = services.usage_per_user_per_day(days=days)
        page = Paginator(rows, USAGE_PAGE_SIZE).get_page(request.GET.get("page"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Usage per user per day (last {days} days)",
            "opts": self.model._meta,
            "days": days,
            "windows": USAGE_WINDOWS,
            "page": page,
        }
        return TemplateResponse(request, "admin/chat/usage.html", context)


@admin.register(Message)
class MessageAdmin(MessageColumns, ReadOnlyAdmin):
    """Messages, filterable by status and role to find failed and stopped replies."""

    list_display = (
        "id",
        "conversation_link",
        "owner",
        "role",
        "status",
        "excerpt",
        "tokens",
        "model",
        "created_at",
    )
    list_filter = ("status", "role", "model", "created_at")
    list_select_related = ("conversation__owner",)
    search_fields = (
        "content",
        "error_message",
        "conversation__title",
        "conversation__owner__username",
    )
    fields = (
        "conversation_link",
        "role",
        "status",
        "text",
        "model",
        "stop_reason",
        "error_type",
        "error_message",
        "input_tokens",
        "output_tokens",
        "output_tokens_estimated",
        "time_to_first_token_ms",
        "duration_ms",
        "worker",
        "lease_expires_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="conversation", ordering="conversation__title")
    def conversation_link(self, message: Message) -> SafeString:
        """A link to the message's conversation."""
        return _conversation_link(message.conversation)

    @admin.display(description="owner", ordering="conversation__owner__username")
    def owner(self, message: Message) -> str:
        """Who wrote (or was answered)."""
        return str(message.conversation.owner)

    @admin.display(description="content")
    def excerpt(self, message: Message) -> str:
        """The first 80 characters."""
        text = " ".join(message.content.split())
        return text if len(text) <= 80 else text[:79] + "…"
