"""Keyset (cursor) pagination: pages stay stable while rows are added.

A cursor is the position of a row in a total order (e.g. ``created_at, id``), not an
offset, so messages arriving at the end never shift or repeat the items of a page.
``?after=<id>`` / ``?before=<id>`` start from a known row (incremental sync).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from typing import Any, cast

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Field, Model, Q, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

Position = tuple[Any, ...]


def _encode_value(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def _storable(value: Any) -> bool:
    """Whether a decoded cursor value can be compared in SQL (no overflow, no naive time)."""
    if value is None:
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, dt.datetime):
        return value.tzinfo is not None
    return True


class KeysetPagination(BasePagination):
    """Pages of ``limit`` rows in ``ordering`` order with opaque next/previous cursors."""

    ordering: tuple[str, ...] = ("created_at", "id")
    page_size = 50
    max_page_size = 200
    limit_query_param = "limit"
    cursor_query_param = "cursor"
    # Whether ?after=<pk> / ?before=<pk> may start a page at a known row.
    anchor_params = False

    def paginate_queryset(  # type: ignore[override]  # a QuerySet, never a list
        self, queryset: QuerySet[Any], request: Request, view: Any = None
    ) -> list[Any]:
        """The rows of the requested page, in ``ordering`` order."""
        self.request = request
        self.limit = self._limit(request)
        self.position, self.backwards = self._start(queryset, request)
        order = [self._flip(f) for f in self.ordering] if self.backwards else list(self.ordering)
        qs = queryset.order_by(*order)
        if self.position is not None:
            qs = qs.filter(self._beyond(self.position, backwards=self.backwards))
        rows = list(qs[: self.limit + 1])
        self.has_more = len(rows) > self.limit
        rows = rows[: self.limit]
        if self.backwards:
            rows.reverse()
        self.rows = rows
        return rows

    def get_paginated_response(self, data: Any) -> Response:
        """``{"next", "previous", "results"}``."""
        return Response(
            {"next": self.get_next_link(), "previous": self.get_previous_link(), "results": data}
        )

    def get_next_link(self) -> str | None:
        """The page after this one, if there is one (always, after a backwards page)."""
        if not self.rows or not (self.has_more or self.backwards):
            return None
        return self._link(self._position_of(self.rows[-1]), backwards=False)

    def get_previous_link(self) -> str | None:
        """The page before this one, if there is one."""
        if not self.rows:
            return None
        if self.backwards and not self.has_more:
            return None
        if not self.backwards and self.position is None:
            return None
        return self._link(self._position_of(self.rows[0]), backwards=True)

    # -- parameters -----------------------------------------------------------------

    def _limit(self, request: Request) -> int:
        raw = request.query_params.get(self.limit_query_param)
        if raw is None:
            return self.page_size
        try:
            limit = int(raw)
        except ValueError:
            limit = 0
        if limit < 1:
            raise ValidationError({self.limit_query_param: ["Must be a positive integer."]})
        return min(limit, self.max_page_size)

    def _start(self, queryset: QuerySet[Any], request: Request) -> tuple[Position | None, bool]:
        params = request.query_params
        cursor = params.get(self.cursor_query_param)
        if cursor is not None:
            return self._decode(queryset.model, cursor)
        if self.anchor_params:
            for name, backwards in (("after", False), ("before", True)):
                if params.get(name) is not None:
                    return self._anchor(queryset, name, params[name]), backwards
        return None, False

    def _anchor(self, queryset: QuerySet[Any], name: str, raw: str) -> Position:
        fields = [f.lstrip("-") for f in self.ordering]
        try:
            row = queryset.filter(pk=int(raw)).values_list(*fields).first()
        except (ValueError, OverflowError):
            row = None
        if row is None:
            raise ValidationError({name: [f"No message with id {raw!r} in this conversation."]})
        return tuple(row)

    # -- cursors --------------------------------------------------------------------

    def _position_of(self, row: Model) -> Position:
        return tuple(getattr(row, f.lstrip("-")) for f in self.ordering)

    def _link(self, position: Position, *, backwards: bool) -> str:
        payload = {"p": [_encode_value(v) for v in position], "b": backwards}
        token = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
        url = self.request.build_absolute_uri()
        for name in ("after", "before"):
            url = remove_query_param(url, name)
        return replace_query_param(url, self.cursor_query_param, token)

    def _decode(self, model: type[Model], token: str) -> tuple[Position, bool]:
        try:
            padded = token + "=" * (-len(token) % 4)
            payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
            values = payload["p"]
            if len(values) != len(self.ordering) or not isinstance(payload["b"], bool):
                raise ValueError("wrong shape")
            position = tuple(
                cast(Field, model._meta.get_field(f.lstrip("-"))).to_python(v)
                for f, v in zip(self.ordering, values, strict=True)
            )
            if not all(map(_storable, position)):
                raise ValueError("value out of range")
        except (
            ValueError,
            TypeError,
            KeyError,
            binascii.Error,
            UnicodeDecodeError,
            DjangoValidationError,
        ) as exc:
            raise ValidationError({self.cursor_query_param: ["Invalid cursor."]}) from exc
        return position, payload["b"]

    @staticmethod
    def _flip(field: str) -> str:
        return field[1:] if field.startswith("-") else f"-{field}"

    def _beyond(self, position: Position, *, backwards: bool) -> Q:
        """Rows strictly after ``position`` in the order (before it if ``backwards``)."""
        condition = Q()
        for i, field in enumerate(self.ordering):
            name = field.lstrip("-")
            descending = field.startswith("-") != backwards
            step = Q(**{f"{name}__{'lt' if descending else 'gt'}": position[i]})
            for prior, value in zip(self.ordering[:i], position[:i], strict=False):
                step &= Q(**{prior.lstrip("-"): value})
            condition |= step
        return condition

    # -- OpenAPI --------------------------------------------------------------------

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The page envelope, for drf-spectacular."""
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {"next": link, "previous": link, "results": schema},
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """The query parameters, for drf-spectacular."""
        params: list[dict[str, Any]] = [
            {
                "name": self.cursor_query_param,
                "in": "query",
                "required": False,
                "description": "Opaque cursor from a previous page's next/previous link.",
                "schema": {"type": "string"},
            },
            {
                "name": self.limit_query_param,
                "in": "query",
                "required": False,
                "description": f"Page size (default {self.page_size}, at most "
                f"{self.max_page_size}).",
                "schema": {"type": "integer", "minimum": 1},
            },
        ]
        if self.anchor_params:
            for name, where in (("after", "after"), ("before", "before")):
                params.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": False,
                        "description": f"Only messages {where} the message with this id.",
                        "schema": {"type": "integer"},
                    }
                )
        return params


class MessagePagination(KeysetPagination):
    """Messages in chronological order; ``?after=`` / ``?before=`` a message id."""

    ordering = ("created_at", "id")
    page_size = 50
    max_page_size = 200
    anchor_params = True


class ConversationPagination(KeysetPagination):
    """Conversations, most recently active first."""

    ordering = ("-updated_at", "-id")
    page_size = 50
    max_page_size = 100
