"""The streaming endpoints under /api/ (SSE transport)."""

from django.urls import path

urlpatterns: list = []
