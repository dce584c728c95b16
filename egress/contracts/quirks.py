"""Vendor quirks that change verdicts, as lint warnings pointing into the vendor's own file.

    document_warnings(name, doc, contract) -> ["file#/pointer: what", ...]

- every place where the two `nullable` readings differ, and `required` lists with duplicate
  names (both found while walking the schemas: `Contract.quirks`);
- a `?query` inside a path key (`/responses?beta=true`): a request path never carries its query
  here, so no request can match that operation;
- relative URIs under `format: uri`: the document's own examples fail `format: uri` with a
  relative reference (`/2010-04-01/Accounts/AC.../Calls.json`); `contract_options.formats:
  ignore` accepts them.  Reported once per schema location, with how many examples hit it.
Warnings do not make lint fail; they say where a verdict depends on a reading.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import orjson

from egress.contracts.documents import join_pointer, resolve_pointer
from egress.contracts.openapi import _server_path

QUERY_IN_PATH = "a '?query' inside a path key: request paths never carry their query, so no request matches it"
RELATIVE_URI = ("format uri: {n} of the document's own examples put a relative URI here; "
                "contract_options.formats: ignore accepts them")


def _examples(media: Any) -> list[Any]:
    if not isinstance(media, dict):
        return []
    found = [media["example"]] if "example" in media else []
    for entry in (media.get("examples") or {}).values() if isinstance(media.get("examples"), dict) else ():
        if isinstance(entry, dict) and "value" in entry:
            found.append(entry["value"])
    return found


def _value_at(value: Any, ptr: str) -> Any:
    try:
        return resolve_pointer(value, ptr)
    except KeyError:
        return None


def _relative(value: Any) -> bool:
    return isinstance(value, str) and not urlsplit(value).scheme


def document_warnings(name: str, doc: Any, contract: Any) -> list[str]:
    """Warnings for one OpenAPI document already loaded as `contract` (base path "")."""
    warnings = list(contract.quirks)
    paths = doc.get("paths") if isinstance(doc, dict) else None
    if not isinstance(paths, dict):
        return warnings
    by_key = {(op.method, op.path): op for op in contract.operations}
    relative: Counter[str] = Counter()
    for template, item in paths.items():
        if "?" in str(template):
            warnings.append(f"{name}#{join_pointer('/paths', str(template))}: {QUERY_IN_PATH}")
        if not isinstance(item, dict):
            continue
        for method, operation in item.items():
            op = by_key.get((method.upper(), _server_path(
                operation.get("servers") if isinstance(operation, dict) else None, item.get("servers"),
                doc.get("servers")) + str(template)))
            if op is None or not isinstance(operation, dict):
                continue
            for status, response in (operation.get("responses") or {}).items():
                content = response.get("content") if isinstance(response, dict) else None
                for media_type, media in (content or {}).items() if isinstance(content, dict) else ():
                    for example in _examples(media):
                        _count_relative(op, status, media_type, example, relative)
    warnings += [f"{name}#{ptr}: {RELATIVE_URI.format(n=n)}" for ptr, n in sorted(relative.items())]
    return warnings


def _count_relative(op: Any, status: Any, media_type: str, example: Any, relative: Counter[str]) -> None:
    if not str(status).isdigit():
        return
    try:
        body = orjson.dumps(example)
    except TypeError:
        return
    result = op.check(int(status), media_type, body, max_violations=1000)
    for v in result.violations:
        if v.keyword == "format" and v.message in ("not a valid 'uri'", "not a valid 'iri'") \
                and _relative(_value_at(example, v.instance_path)):
            relative[v.schema_path] += 1
