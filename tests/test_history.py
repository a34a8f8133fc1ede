"""History sent to the model is always valid for the Messages API."""

from chat.history import build_history


def roles(turns):
    return [t.role for t in turns]


def test_keeps_last_window_and_starts_with_user():
    msgs = [
        ("user", "u1"),
        ("assistant", "a1"),
        ("user", "u2"),
        ("assistant", "a2"),
        ("user", "u3"),
    ]
    turns = build_history(msgs, window=4)
    # The window begins on an assistant turn, which is dropped.
    assert [t.content for t in turns] == ["u2", "a2", "u3"]


def test_merges_consecutive_roles_and_drops_empty_turns():
    msgs = [("user", "a"), ("assistant", ""), ("user", "b"), ("assistant", "  "), ("user", "c")]
    turns = build_history(msgs, window=20)
    assert roles(turns) == ["user"]
    assert turns[0].content == "a\n\nb\n\nc"


def test_trailing_assistant_turn_is_dropped():
    turns = build_history([("user", "q"), ("assistant", "partial")], window=20)
    assert roles(turns) == ["user"]


def test_alternation_after_failed_reply():
    msgs = [("user", "q1"), ("assistant", "r1"), ("user", "q2"), ("user", "q3")]
    turns = build_history(msgs, window=20)
    assert roles(turns) == ["user", "assistant", "user"]
    assert turns[-1].content == "q2\n\nq3"


def test_empty_window():
    assert build_history([("user", "x")], window=0) == ()
