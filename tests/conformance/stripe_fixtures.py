"""Stripe's published fixture objects as response bodies of every operation that returns them.

`stripe.fixtures3.json` holds one real object per resource type (`resources.charge`, ...).  An
operation's 200 schema either names a resource (`$ref` to a component with `x-resourceId`), or is
a list / search result of one (`object: list|search_result`, `data: {items: {$ref: ...}}`), or an
`anyOf` of resources (`deleted_customer` or `customer`): each resource it can return gives a
case, lists wrapped as Stripe sends them.  Read from the raw document (before any conversion).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from egress.contracts.documents import resolve_pointer

STRIPE = "stripe.spec3.yaml"
FIXTURES = "stripe.fixtures3.json"
BASE_PATH = "/v1"  # upstream url https://api.stripe.com/v1; the document's paths start with /v1


@dataclass(frozen=True)
class FixtureCase:
    id: str  # "GET /v1/charges/{charge} <- charge"
    method: str
    path: str  # concrete request path relative to the upstream url
    resource: str
    body: Any


def _deref(doc: dict[str, Any], node: Any) -> Any:
    for _ in range(8):
        if isinstance(node, dict) and "$ref" in node:
            node = resolve_pointer(doc, node["$ref"][1:])
    return node


def _resources(doc: dict[str, Any], node: Any) -> list[str]:
    node = _deref(doc, node)
    if not isinstance(node, dict):
        return []
    if "x-resourceId" in node:
        return [node["x-resourceId"]]
    found: list[str] = []
    for branch in node.get("anyOf") or node.get("oneOf") or ():
        found += _resources(doc, branch)
    return found


def _list_of(doc: dict[str, Any], node: Any) -> tuple[str, list[str]] | None:
    node = _deref(doc, node)
    props = node.get("properties") if isinstance(node, dict) else None
    if not isinstance(props, dict) or "data" not in props or "object" not in props:
        return None
    kinds = _deref(doc, props["object"]).get("enum") or []
    if kinds not in (["list"], ["search_result"]):
        return None
    items = _deref(doc, props["data"]).get("items")
    return kinds[0], _resources(doc, items)


def _concrete(template: str) -> str:
    return "/".join("x1" if seg.startswith("{") else seg for seg in template.split("/"))


def _list_url(doc: dict[str, Any], node: Any, template: str) -> str:
    """The list's `url` as Stripe sends it: the literal its schema's pattern names (legacy paths
    such as /v1/balance/history list under /v1/balance_transactions), else the path itself."""
    url = _deref(doc, _deref(doc, node)["properties"].get("url", {}))
    pattern = url.get("pattern") if isinstance(url, dict) else None
    if isinstance(pattern, str) and pattern.startswith("^/") and not any(c in pattern[1:] for c in "^$[](){}*+?\\|"):
        return pattern[1:]
    return template


def fixture_cases(doc: dict[str, Any], fixtures: dict[str, Any]) -> Iterator[FixtureCase]:
    resources = fixtures["resources"]
    for template, item in doc["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "delete") or not isinstance(op, dict):
                continue
            schema = (op.get("responses", {}).get("200", {}).get("content", {})
                      .get("application/json", {}).get("schema"))
            if schema is None:
                continue
            rel = _concrete(template)[len(BASE_PATH):]
            listed = _list_of(doc, schema)
            if listed is not None:
                kind, names = listed
                for name in names:
                    if name in resources:
                        body = {"object": kind, "data": [resources[name]], "has_more": False,
                                "url": _list_url(doc, schema, template)}
                        if kind == "search_result":
                            body["next_page"] = None
                        yield FixtureCase(f"{method.upper()} {template} <- list of {name}", method.upper(), rel,
                                          name, body)
                continue
            for name in _resources(doc, schema):
                if name in resources:
                    yield FixtureCase(f"{method.upper()} {template} <- {name}", method.upper(), rel, name,
                                      resources[name])
