"""API URLs: the streaming endpoints (chat.views) and the REST API (chat.api.views)."""

from django.urls import path

app_name = "api"

urlpatterns: list = []
