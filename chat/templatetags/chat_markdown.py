"""The ``markdown`` template filter: ``{% load chat_markdown %}{{ message.content|markdown }}``."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from chat.markdown import render_markdown

register = template.Library()


@register.filter(name="markdown", is_safe=True)
def markdown(text: str) -> SafeString:
    """Render markdown to sanitised HTML (nh3 has already made it safe to mark so)."""
    return mark_safe(render_markdown(str(text)))  # sanitised by nh3 in render_markdown
