"""Top-level URLs: admin, auth pages, the API (with the streaming endpoints), the chat UI."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    # The streaming endpoints come first: they share a URL with the REST message list.
    path("api/", include("chat.stream_urls")),
    path("api/", include("chat.api.urls")),
    path("", include("chat.urls")),
]

# JSON 404/500 under /api/, Django's pages elsewhere.
handler404 = "chat.api.exceptions.not_found"
handler500 = "chat.api.exceptions.server_error"
