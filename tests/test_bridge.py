"""Coalescing of the events a process publishes to other processes."""

from chat.bridge import coalesce
from chat.events import Chunk, Done, MessageAdded, Start


def test_interleaved_replies_merge_per_reply_in_order():
    items = [
        ("a", Start(1, "a", "m")),
        ("a", Chunk(1, "He", 2)),
        ("b", Chunk(2, "Wo", 2)),
        ("a", Chunk(1, "llo", 5)),
        ("b", Chunk(2, "rld", 5)),
        ("a", Chunk(1, "!", 6)),
    ]
    assert coalesce(items) == [
        ("a", Start(1, "a", "m")),
        ("a", Chunk(1, "Hello!", 6)),
        ("b", Chunk(2, "World", 5)),
    ]


def test_a_conversations_other_events_are_not_jumped():
    items = [
        ("a", Chunk(1, "x", 1)),
        ("a", Done(1, "complete", "end_turn", 1, 1)),
        ("a", MessageAdded("a", {"id": 3})),
        ("a", Chunk(4, "y", 1)),
        ("a", Chunk(4, "z", 2)),
    ]
    assert coalesce(items) == [
        ("a", Chunk(1, "x", 1)),
        ("a", Done(1, "complete", "end_turn", 1, 1)),
        ("a", MessageAdded("a", {"id": 3})),
        ("a", Chunk(4, "yz", 2)),
    ]
