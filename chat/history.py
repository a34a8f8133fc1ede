"""Build the message history sent to the model from stored messages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from chat.providers.base import ChatTurn

Role = Literal["user", "assistant"]


def build_history(messages: Iterable[tuple[str, str]], *, window: int) -> tuple[ChatTurn, ...]:
    """The last ``window`` stored turns, made valid for the Messages API.

    ``messages`` are ``(role, content)`` pairs in chronological order, ending with the new
    user message. The result starts with a user turn, alternates roles (consecutive turns
    of one role are merged, as after a failed reply with no text), and has no empty turns.
    """
    recent = [(role, content) for role, content in messages][-window:] if window > 0 else []
    turns: list[list[str]] = []  # [role, content]
    for role, content in recent:
        if role not in ("user", "assistant") or not content.strip():
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1] = f"{turns[-1][1]}\n\n{content}"
        else:
            turns.append([role, content])
    while turns and turns[0][0] != "user":
        turns.pop(0)
    # The model must answer a user turn; a trailing assistant turn would be a prefill.
    while turns and turns[-1][0] != "user":
        turns.pop()
    return tuple(ChatTurn(role=role, content=content) for role, content in turns)  # type: ignore[arg-type]
