"""The chat app: conversations with Claude whose replies stream token by token."""
