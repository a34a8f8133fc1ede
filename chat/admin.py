"""Admin registration (the full review admin is in the API/admin work)."""

from django.contrib import admin

from chat.models import Conversation, Message

admin.site.register(Conversation)
admin.site.register(Message)
