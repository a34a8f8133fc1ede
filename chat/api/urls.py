"""REST API URLs under /api/ (mounted after chat.stream_urls, which answers first).

``conversations/<id>/messages/`` also appears here so the schema lists its ``GET``; at
run time the streaming dispatcher matches it first and delegates ``GET`` to the same view.
"""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from chat.api import token_views, views

app_name = "api"

urlpatterns = [
    path("conversations/", views.ConversationList.as_view(), name="conversation-list"),
    path(
        "conversations/<uuid:conversation_id>/",
        views.ConversationDetail.as_view(),
        name="conversation-detail",
    ),
    path(
        "conversations/<uuid:conversation_id>/messages/",
        views.message_list_view,
        name="message-list",
    ),
    path(
        "conversations/<uuid:conversation_id>/export/",
        views.ConversationExport.as_view(),
        name="conversation-export",
    ),
    path("usage/", views.Usage.as_view(), name="usage"),
    path("token/", token_views.token_page, name="token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view loads its init script from a URL: no inline script under the CSP.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api:schema", template_name="api/swagger_ui.html"
        ),
        name="docs",
    ),
]
