"""Reading an OpenAPI 3.0.x / 3.1.x document (as published) into operation drafts.

Servers and the upstream's base path line up like this: the provider serves an operation at
`server_path + template`, and a request to the upstream reaches `base_path + request_path`.  So

1. when `server_path + template` starts with `base_path` (at a segment boundary), the operation's
   template relative to the upstream url is the rest (Twilio: server `https://api.twilio.com`,
   base path `/2010-04-01`, `/2010-04-01/Accounts.json` -> `/Accounts.json`);
2. otherwise, when `base_path` ends with `server_path` (a gateway adding a prefix, or simply
   equal: OpenAI `https://api.openai.com/v1` with base path `/v1`), templates are used as written;
3. otherwise the operation is not reachable through this upstream and is skipped (listed in
   `Contract.skipped`); a document where nothing lines up is a load error.

The server is the operation's first `servers` entry, else the path item's, else the document's.
Response `$ref`s (`#/components/responses/...`) and path-item `$ref`s inside the document are
followed; `x-egress-mode` on an operation overrides the upstream's mode.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from egress.contracts.documents import join_pointer, resolve_pointer
from egress.contracts.drafts import METHODS, MediaDraft, OperationDraft, ResponseDraft, SchemaAt, status_key
from egress.contracts.items import stream_kind
from egress.contracts.operation import MODES
from egress.contracts.resources import ResourceStore


def dialect_of(doc: dict[str, Any]) -> str | None:
    version = str(doc.get("openapi", ""))
    if version.startswith("3.0"):
        return "oas30"
    if version.startswith(("3.1", "3.2")):  # 3.2 (itemSchema for streams) is 3.1's JSON Schema
        return "oas31"
    return None


def _server_path(*candidates: Any) -> str:
    for servers in candidates:
        if isinstance(servers, list) and servers and isinstance(servers[0], dict):
            url = str(servers[0].get("url", ""))
            return urlsplit(url).path.rstrip("/") if "://" in url else url.split("?")[0].rstrip("/")
    return ""


def relative_template(template: str, server_path: str, base_path: str) -> str | None:
    """The template relative to the upstream url, or None when it does not line up."""
    base = base_path.rstrip("/")
    full = server_path + template
    if not base or full == base or full.startswith(base + "/"):
        rest = full[len(base):]
        return rest if rest.startswith("/") else "/" + rest
    if server_path and base.endswith(server_path):
        return template
    return None


def _deref(doc: Any, node: Any, at: str, store: ResourceStore, uri: str) -> tuple[Any, str] | None:
    for _ in range(16):
        if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
            return node, at
        ref = node["$ref"]
        if not ref.startswith("#/"):
            store.problems.append(f"{store.where(uri, at)}: $ref {ref!r}: only references inside the document are supported here")
            return None
        try:
            node, at = resolve_pointer(doc, ref[1:]), ref[1:]
        except KeyError:
            store.problems.append(f"{store.where(uri, at)}: $ref {ref!r} does not exist")
            return None
    store.problems.append(f"{store.where(uri, at)}: $ref chain too long")
    return None


def read_openapi(doc: dict[str, Any], uri: str, store: ResourceStore, base_path: str,
                 skipped: list[str]) -> list[OperationDraft]:
    """Operation drafts for every operation that lines up with `base_path`."""
    paths = doc.get("paths") or {}
    if not isinstance(paths, dict):
        store.problems.append(f"{store.where(uri, '/paths')}: must be a mapping")
        return []
    drafts = []
    for template, item in paths.items():
        at = join_pointer("/paths", str(template))
        found = _deref(doc, item, at, store, uri)
        if found is None or not isinstance(found[0], dict):
            continue
        item, item_at = found
        for method in METHODS:
            operation = item.get(method.lower())
            if not isinstance(operation, dict):
                continue
            op_at = join_pointer(item_at, method.lower())
            server = _server_path(operation.get("servers"), item.get("servers"), doc.get("servers"))
            rel = relative_template(str(template), server, base_path)
            if rel is None:
                skipped.append(f"{method} {server}{template}")
                continue
            draft = _operation(doc, uri, store, method, rel, operation, op_at)
            if draft is not None:
                drafts.append(draft)
    return drafts


def _operation(doc: Any, uri: str, store: ResourceStore, method: str, path: str,
               operation: dict[str, Any], at: str) -> OperationDraft | None:
    mode = operation.get("x-egress-mode")
    if mode is not None and mode not in MODES:
        store.problems.append(f"{store.where(uri, at + '/x-egress-mode')}: must be one of {', '.join(MODES)}")
        return None
    responses = operation.get("responses")
    if not isinstance(responses, dict):
        store.problems.append(f"{store.where(uri, at + '/responses')}: must be a mapping")
        return None
    drafts = []
    for key, response in responses.items():
        r_at = join_pointer(at + "/responses", str(key))
        status = status_key(key)
        if status is None:
            if not str(key).startswith("x-"):
                store.problems.append(f"{store.where(uri, r_at)}: not a status code, range or default")
            continue
        found = _deref(doc, response, r_at, store, uri)
        if found is None or not isinstance(found[0], dict):
            continue
        response, r_at = found
        content = response.get("content")
        if not isinstance(content, dict):
            drafts.append(ResponseDraft(status, store.where(uri, r_at), None))
            continue
        media = []
        for media_range, media_obj in content.items():
            m_at = join_pointer(r_at + "/content", str(media_range))
            media.append(MediaDraft(str(media_range), _media_schema(uri, media_range, media_obj, m_at)))
        drafts.append(ResponseDraft(status, store.where(uri, r_at), tuple(media)))
    return OperationDraft(method, path, mode, store.where(uri, at), tuple(drafts))


def _media_schema(uri: str, media_range: Any, media_obj: Any, at: str) -> SchemaAt | None:
    """The media type's schema; for a stream, the schema of each item: OpenAPI 3.2 `itemSchema`, or
    in 3.0/3.1 `schema` read as the schema of each event's data (OpenAI's published convention)."""
    if not isinstance(media_obj, dict):
        return None
    if "itemSchema" in media_obj and stream_kind(str(media_range)):
        return SchemaAt(uri, at + "/itemSchema")
    return SchemaAt(uri, at + "/schema") if "schema" in media_obj else None
