"""Reading the project's compact contract format into operation drafts, with every structural problem.

    operations:
      GET /charges/{id}:
        mode: report                      # optional: enforce | report | off
        responses:
          "200": {content_type: application/json, schema: {$ref: "schemas/charge.json"}}
          "4XX": {schema: {$ref: "schemas/error.json"}}
          default: {schema: {type: object}}

`content_type` defaults to application/json and may be a list; a response without `schema`
accepts any body of its content types.  A stream (`text/event-stream`, `application/x-ndjson`,
`application/jsonl`, `application/json-seq`) takes `item_schema:`, the schema of each item.  An inline schema is a document of its own (`#` is the
schema itself); relative `$ref`s resolve against the contract file's directory.
"""

from __future__ import annotations

from typing import Any

import orjson

from egress.contracts.documents import join_pointer
from egress.contracts.drafts import METHODS, MediaDraft, OperationDraft, ResponseDraft, SchemaAt, status_key
from egress.contracts.items import SEQUENTIAL, stream_kind
from egress.contracts.operation import MODES
from egress.contracts.paths import TemplateError, split_template
from egress.contracts.resources import ResourceStore

_TOP = {"operations", "description", "version", "info"}
_OPERATION = {"responses", "mode", "description", "summary"}
_RESPONSE = {"content_type", "schema", "description", "item_schema"}


def read_compact(doc: Any, uri: str, store: ResourceStore) -> list[OperationDraft]:
    """Operation drafts; problems go to `store.problems`.  Inline schemas are added to the store."""
    problems = store.problems
    if not isinstance(doc, dict):
        problems.append(f"{store.where(uri, '')}: a contract must be a mapping with 'operations'")
        return []
    for key in doc:
        if key not in _TOP:
            problems.append(f"{store.where(uri, join_pointer('', str(key)))}: unknown key")
    operations = doc.get("operations")
    if not isinstance(operations, dict) or not operations:
        problems.append(f"{store.where(uri, '/operations')}: must be a non-empty mapping")
        return []
    drafts = []
    for key, body in operations.items():
        at = join_pointer("/operations", str(key))
        draft = _operation(str(key), body, uri, at, store)
        if draft is not None:
            drafts.append(draft)
    return drafts


def _operation(key: str, body: Any, uri: str, at: str, store: ResourceStore) -> OperationDraft | None:
    where = store.where(uri, at)
    method, _, path = key.partition(" ")
    ok = True
    if method.upper() not in METHODS:
        store.problems.append(f"{where}: method must be one of {', '.join(METHODS)}")
        ok = False
    try:
        split_template(path.strip())
    except TemplateError as exc:
        store.problems.append(f"{where}: {exc}")
        ok = False
    if not isinstance(body, dict):
        store.problems.append(f"{where}: must be a mapping with 'responses'")
        return None
    for extra in body.keys() - _OPERATION:
        store.problems.append(f"{store.where(uri, join_pointer(at, str(extra)))}: unknown key")
    mode = body.get("mode")
    if mode is not None and mode not in MODES:
        store.problems.append(f"{store.where(uri, at + '/mode')}: must be one of {', '.join(MODES)}")
        ok = False
    responses = body.get("responses")
    if not isinstance(responses, dict) or not responses:
        store.problems.append(f"{store.where(uri, at + '/responses')}: must be a non-empty mapping")
        return None
    drafts = [_response(k, v, uri, join_pointer(at + "/responses", str(k)), store) for k, v in responses.items()]
    if not ok or any(d is None for d in drafts):
        return None
    return OperationDraft(method.upper(), path.strip(), mode, where, tuple(d for d in drafts if d))


def _response(key: Any, body: Any, uri: str, at: str, store: ResourceStore) -> ResponseDraft | None:
    where = store.where(uri, at)
    status = status_key(key)
    if status is None:
        store.problems.append(f"{where}: status must be a code (200), a range (2XX) or default")
    if not isinstance(body, dict):
        store.problems.append(f"{where}: must be a mapping (content_type, schema)")
        return None
    for extra in body.keys() - _RESPONSE:
        store.problems.append(f"{store.where(uri, join_pointer(at, str(extra)))}: unknown key")
    types = body.get("content_type", "application/json")
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, list) or not types or not all(isinstance(t, str) and "/" in t for t in types):
        store.problems.append(f"{store.where(uri, at + '/content_type')}: must be a media type or a list of them")
        return None
    schema = None
    if "schema" in body:
        if not isinstance(body["schema"], (dict, bool)):
            store.problems.append(f"{store.where(uri, at + '/schema')}: a schema must be a mapping or a boolean")
            return None
        schema = SchemaAt(_inline(body["schema"], uri, at, store), "")
    if "item_schema" in body:
        schema = _item_schema(body, types, uri, at, store)
        if schema is None:
            return None
    if status is None:
        return None
    return ResponseDraft(status, where, tuple(MediaDraft(t, schema) for t in types))


def _item_schema(body: dict, types: list[str], uri: str, at: str, store: ResourceStore) -> SchemaAt | None:
    """`item_schema:` (each event / line / record of a stream) beside sequential content types only."""
    where = store.where(uri, at + "/item_schema")
    if "schema" in body:
        store.problems.append(f"{where}: give either schema (the whole body) or item_schema (each item of a stream)")
        return None
    if not all(stream_kind(t) for t in types):
        store.problems.append(f"{where}: item_schema needs sequential content types ({', '.join(SEQUENTIAL)})")
        return None
    if not isinstance(body["item_schema"], (dict, bool)):
        store.problems.append(f"{where}: a schema must be a mapping or a boolean")
        return None
    return SchemaAt(_inline(body["item_schema"], uri, at, store, member="item_schema"), "")


def _inline(schema: Any, uri: str, at: str, store: ResourceStore, member: str = "schema") -> str:
    """The synthetic document URI of an inline schema; identical ones share one document (they
    sit in the same file, so their relative `$ref`s resolve alike) and so one compiled validator."""
    try:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # a YAML value JSON cannot express: let the walk report it
        key = None
    if key is not None and key in store.inline_by_content:
        return store.inline_by_content[key]
    inline_uri = f"{uri}~inline~{len(store.docs)}"
    store.add(inline_uri, schema)
    store.aliases[inline_uri] = (uri, f"{at}/{member}")
    if key is not None:
        store.inline_by_content[key] = inline_uri
    return inline_uri
