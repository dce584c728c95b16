"""Path templates (`/charges/{id}`, `/Calls/{Sid}.json`) and matching a raw request path against them.

A template is split into segments; a segment is literal, a whole parameter (`{id}`: exactly one
non-empty segment) or mixed (`{Sid}.json`).  Matching walks a tree segment by segment and tries,
at each level, the literal child first, then mixed ones (longest literal text first), then the
parameter: a literal segment always beats a parameter at the same position (OpenAPI's rule).
Request segments are compared percent-decoded; `%2F` stays inside its segment.  A trailing slash
is a segment of its own (empty), which no parameter matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import unquote

T = TypeVar("T")
_PARAM = re.compile(r"\{[^{}/]+\}")


class TemplateError(ValueError):
    pass


def _segment_kind(segment: str) -> tuple[str, re.Pattern[str] | None]:
    if not _PARAM.search(segment):
        if "{" in segment or "}" in segment:
            raise TemplateError(f"unbalanced braces in segment {segment!r}")
        return "literal", None
    if _PARAM.fullmatch(segment):
        return "param", None
    parts = _PARAM.split(segment)
    if any("{" in p or "}" in p for p in parts):
        raise TemplateError(f"unbalanced braces in segment {segment!r}")
    return "mixed", re.compile("(?:.+?)".join(re.escape(p) for p in parts) + r"\Z", re.DOTALL)


def split_template(template: str) -> list[str]:
    if not template.startswith("/"):
        raise TemplateError("path must start with '/'")
    return template[1:].split("/")


@dataclass
class _Node(Generic[T]):
    literal: dict[str, _Node[T]] = field(default_factory=dict)
    mixed: list[tuple[int, str, re.Pattern[str], _Node[T]]] = field(default_factory=list)
    param: _Node[T] | None = None
    value: T | None = None


class PathTable(Generic[T]):
    """Templates -> values; `match(path)` returns the most literal template's value."""

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()

    def add(self, template: str, value: T) -> None:
        """Register a template; TemplateError for a malformed one or a duplicate."""
        node = self._root
        for segment in split_template(template):
            kind, rx = _segment_kind(segment)
            if kind == "literal":
                node = node.literal.setdefault(unquote(segment), _Node())
            elif kind == "param":
                node.param = node.param or _Node()
                node = node.param
            else:
                shape = _PARAM.sub("{}", segment)
                found = next((n for _, s, _, n in node.mixed if s == shape), None)
                if found is None:
                    found = _Node()
                    node.mixed.append((len(shape), shape, rx, found))  # type: ignore[arg-type]
                    node.mixed.sort(key=lambda m: -m[0])
                node = found
        if node.value is not None:
            raise TemplateError("duplicate template (same shape as another path)")
        node.value = value

    def match(self, path: str) -> T | None:
        if not path.startswith("/"):
            return None
        segments = [unquote(s) for s in path[1:].split("/")]
        return self._walk(self._root, segments, 0)

    def _walk(self, node: _Node[T], segments: list[str], i: int) -> T | None:
        if i == len(segments):
            return node.value
        segment = segments[i]
        child = node.literal.get(segment)
        if child is not None and (found := self._walk(child, segments, i + 1)) is not None:
            return found
        if not segment:
            return None
        for _, _, rx, child in node.mixed:
            if rx.match(segment) and (found := self._walk(child, segments, i + 1)) is not None:
                return found
        if node.param is not None:
            return self._walk(node.param, segments, i + 1)
        return None
