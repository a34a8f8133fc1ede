"""Pages of the chat UI."""

from django.urls import path

from chat import health, pages

app_name = "chat"

urlpatterns = [
    path("", pages.home, name="home"),
    path("c/<uuid:conversation_id>/", pages.conversation, name="conversation"),
    path("healthz", health.healthz, name="healthz"),
]
