"""Drift: response fields the schema does not declare, as template pointers (`/data/*/new_field`).

Computed only on request.  At each object the schemas that apply there are merged (through
`$ref`, allOf/anyOf/oneOf, if/then/else, dependentSchemas); a member is drift when that merged
schema declares `properties` or `patternProperties` and the member is neither declared nor
matched by a pattern, whatever `additionalProperties` says.  Objects whose schema declares no
shape (`{type: object}`, a map through `additionalProperties: {...}`) are free-form, not drift;
map keys and array indices are written `*`.  Names are truncated to 64 characters, at most
`limit` pointers are returned, and the walk is bounded in depth and in nodes visited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from egress.contracts.documents import escape_token, resolve_pointer, resolve_uri, split_ref

Located = tuple[str, Any]  # (base uri, schema node)
_MERGE = ("allOf", "anyOf", "oneOf")
_MAX_NAME = 64
_MAX_NODES = 20_000


@dataclass
class _Shape:
    declared: dict[str, list[Located]] = field(default_factory=dict)
    patterns: list[tuple[re.Pattern[str] | None, list[Located]]] = field(default_factory=list)
    extra: list[Located] = field(default_factory=list)
    items: list[Located] = field(default_factory=list)

    @property
    def has_shape(self) -> bool:
        return bool(self.declared or self.patterns)


class DriftFinder:
    """Finds undeclared fields for one response schema; caches merged shapes between calls."""

    def __init__(self, docs: dict[str, Any], root: Located) -> None:
        self._docs = docs if root[0] in docs else {**docs, root[0]: root[1]}  # inline schema: `#` is itself
        self._root = root
        self._shapes: dict[tuple[int, ...], _Shape] = {}

    def find(self, instance: Any, *, max_depth: int = 64, limit: int = 20) -> tuple[str, ...]:
        found: dict[str, None] = {}
        budget = [_MAX_NODES]
        self._walk(instance, [self._root], "", 0, max_depth, limit, found, budget)
        return tuple(found)

    def _walk(self, value: Any, schemas: list[Located], ptr: str, depth: int, max_depth: int,
              limit: int, found: dict[str, None], budget: list[int]) -> None:
        if depth > max_depth or len(found) >= limit or budget[0] <= 0 or not schemas:
            return
        budget[0] -= 1
        if not isinstance(value, (dict, list)):
            return
        shape = self._shape(schemas)
        if isinstance(value, list):
            for item in value:
                self._walk(item, shape.items, ptr + "/*", depth + 1, max_depth, limit, found, budget)
            return
        for key, member in value.items():
            if len(found) >= limit:
                return
            if key in shape.declared:
                self._walk(member, shape.declared[key], ptr + "/" + escape_token(key), depth + 1,
                           max_depth, limit, found, budget)
                continue
            matched = [s for rx, subs in shape.patterns if rx is None or rx.search(key) for s in subs]
            if matched or (not shape.has_shape and shape.extra):
                self._walk(member, matched or shape.extra, ptr + "/*", depth + 1, max_depth, limit,
                           found, budget)
            elif shape.has_shape:
                found.setdefault(ptr + "/" + escape_token(key[:_MAX_NAME]), None)

    def _shape(self, schemas: list[Located]) -> _Shape:
        key = tuple(id(node) for _, node in schemas)
        shape = self._shapes.get(key)
        if shape is None:
            shape = _Shape()
            seen: set[int] = set()
            for base, node in schemas:
                self._merge(shape, base, node, seen, 0)
            self._shapes[key] = shape
        return shape

    def _merge(self, shape: _Shape, base: str, node: Any, seen: set[int], depth: int) -> None:
        if not isinstance(node, dict) or id(node) in seen or depth > 32:
            return
        seen.add(id(node))
        ident = node.get("$id")
        if isinstance(ident, str) and not ident.startswith("#"):
            base = resolve_uri(base, ident)
        ref = node.get("$ref")
        if isinstance(ref, str) and (target := self._resolve(base, ref)) is not None:
            self._merge(shape, target[0], target[1], seen, depth + 1)
        for name, sub in (node.get("properties") or {}).items():
            shape.declared.setdefault(name, []).append((base, sub))
        for pattern, sub in (node.get("patternProperties") or {}).items():
            try:
                rx = re.compile(pattern)
            except re.error:
                rx = None  # an ECMA-only pattern: treat as matching (never report false drift)
            shape.patterns.append((rx, [(base, sub)]))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            shape.extra.append((base, extra))
        for key in ("items", "additionalItems", "unevaluatedItems"):
            if isinstance(node.get(key), dict):
                shape.items.append((base, node[key]))
        for key in ("prefixItems", "items"):
            if isinstance(node.get(key), list):
                shape.items.extend((base, sub) for sub in node[key])
        for key in _MERGE:
            for sub in node.get(key) or ():
                self._merge(shape, base, sub, seen, depth + 1)
        for key in ("if", "then", "else"):
            self._merge(shape, base, node.get(key), seen, depth + 1)
        for sub in (node.get("dependentSchemas") or {}).values():
            self._merge(shape, base, sub, seen, depth + 1)

    def _resolve(self, base: str, ref: str) -> Located | None:
        doc_uri, frag = split_ref(resolve_uri(base, ref))
        doc = self._docs.get(doc_uri)
        if doc is None or (frag and not frag.startswith("/")):
            return None
        try:
            return doc_uri, resolve_pointer(doc, frag)
        except KeyError:
            return None
