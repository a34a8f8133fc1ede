"""The API token page: a logged-in user creates, replaces or revokes their DRF token.

The key is shown once, in the answer to the POST that created it; afterwards the page
only says that a token exists (a key is a password for the API).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def token_page(request: HttpRequest) -> HttpResponse:
    """``GET``: whether a token exists; ``POST action=create|revoke`` (CSRF-protected)."""
    user = request.user
    assert user.is_authenticated  # login_required
    token = Token.objects.filter(user=user).first()
    new_key = None
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "revoke":
            Token.objects.filter(user=user).delete()
            return redirect("api:token")
        if action != "create":
            return HttpResponse("Unknown action.", status=400, content_type="text/plain")
        # Creating replaces any existing token, so a leaked key can be rotated.
        Token.objects.filter(user=user).delete()
        token = Token.objects.create(user=user)
        new_key = token.key
    context = {
        "token": token,
        "new_key": new_key,
        "example_url": request.build_absolute_uri("/api/conversations/"),
    }
    return render(request, "chat/token.html", context)
