"""The streaming endpoints under /api/ (SSE transport), mounted before the REST API.

``conversations/<id>/messages/`` is shared with the REST API: ``POST`` starts a reply
here and ``GET`` is handed to the REST message list.
"""

from django.urls import path

from chat import views

app_name = "stream"

urlpatterns = [
    path(
        "conversations/<str:conversation_id>/messages/",
        views.conversation_messages,
        name="conversation-messages",
    ),
    path("messages/<int:message_id>/stream/", views.message_stream, name="message-stream"),
    path("messages/<int:message_id>/cancel/", views.message_cancel, name="message-cancel"),
]
