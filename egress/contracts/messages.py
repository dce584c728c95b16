"""Violation messages and instance pointers built from the schema only, never from the response."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from egress.contracts.documents import escape_token

_MAX_SHOWN = 80


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _options(options: list[Any]) -> str:
    shown = ", ".join(_short(o) for o in options[:5])
    return shown + (f", ... ({len(options)} in all)" if len(options) > 5 else "")


_FIXED = {
    "falseSchema": "no value is allowed here",
    "additionalProperties": "additional properties are not allowed",
    "additionalItems": "additional items are not allowed",
    "unevaluatedProperties": "unevaluated properties are not allowed",
    "unevaluatedItems": "unevaluated items are not allowed",
    "anyOf": "does not match any of the anyOf alternatives",
    "oneOf": "does not match exactly one of the oneOf alternatives",
    "not": "matches the schema in 'not'",
    "uniqueItems": "array items are not unique",
    "contains": "array does not contain enough matching items",
    "minContains": "array does not contain enough matching items",
    "maxContains": "array contains too many matching items",
    "propertyNames": "a property name does not satisfy propertyNames",
    "const": "does not equal the constant in the schema",
    "items": "array item not allowed here",
    "backtrackLimitExceeded": "pattern evaluation exceeded its backtracking limit",
}

_LIMITS = {
    "minimum": "expected a number >= {}", "maximum": "expected a number <= {}",
    "exclusiveMinimum": "expected a number > {}", "exclusiveMaximum": "expected a number < {}",
    "minLength": "expected at least {} characters", "maxLength": "expected at most {} characters",
    "minItems": "expected at least {} items", "maxItems": "expected at most {} items",
    "minProperties": "expected at least {} properties", "maxProperties": "expected at most {} properties",
}


def keyword_of(kind_name: str, schema_path: list[str | int]) -> str:
    last = next((t for t in reversed(schema_path) if isinstance(t, str)), None)
    if kind_name in ("falseSchema", "required", "contains") and last is not None:
        return last
    return kind_name


def message_for(keyword: str, kind: Any) -> str:
    """A message from the error kind's schema-side data (limits, types, names from the schema)."""
    try:
        data = kind.as_dict()
    except Exception:  # noqa: BLE001 - some kinds carry nested errors; their data is not used
        data = {}
    if keyword in ("required", "dependentRequired"):
        return f"missing required property {_short(data.get('property', '?'))}"
    if keyword == "type":
        return "expected type " + " or ".join(str(t) for t in data.get("types", []))
    if keyword == "enum":
        return "expected one of: " + _options(list(data.get("options", [])))
    if keyword in _LIMITS and "limit" in data:
        return _LIMITS[keyword].format(data["limit"])
    if keyword == "pattern":
        return f"does not match pattern {_short(data.get('pattern', '?'))}"
    if keyword == "format":
        return f"not a valid {_short(data.get('format', '?'))}"
    if keyword == "multipleOf":
        return f"expected a multiple of {data.get('multiple_of', '?')}"
    if keyword == "contentMediaType":
        return f"content is not {_short(data.get('content_media_type', '?'))}"
    if keyword == "contentEncoding":
        return f"content is not {_short(data.get('content_encoding', '?'))} encoded"
    if keyword in _FIXED:
        return _FIXED[keyword]
    return f"fails the {_short(keyword)} keyword"


def instance_pointer(tokens: list[str | int], declared: Collection[str]) -> str:
    """RFC 6901 pointer; indices kept, names kept only if the contract declares them, else `*`."""
    out = []
    for token in tokens:
        if isinstance(token, int):
            out.append(str(token))
        elif token in declared:
            out.append(escape_token(token))
        else:
            out.append("*")
    return "".join("/" + t for t in out)


def schema_pointer(tokens: list[str | int]) -> str:
    return "".join("/" + escape_token(t) for t in tokens)
