"""Turning one OpenAPI 3.0 Schema Object (or a 3.1 one with 3.0 leftovers) into JSON Schema 2020-12, in place.

Only the keywords of the node itself are rewritten; the schema walker (`resources.py`) visits the
subschemas.  Rules (OpenAPI 3.0.3, section 4.7.24):

- `$ref` with siblings: the siblings are ignored in 3.0, so they are dropped (but see nullable).
- boolean `exclusiveMinimum`/`exclusiveMaximum` become the numeric 2020-12 forms.
- `example`, `discriminator`, `xml`, `externalDocs` and `x-*` extensions are dropped (annotations only).
- `format` is kept; unknown formats are ignored by the validator.
- `nullable: true`, read per `contract_options.nullable`:
  - with `type`: "null" is added to `type` (both readings);
  - `strict` reads the 3.0.3 text literally: nothing else changes (an `enum` without null still
    forbids null; `nullable` beside `anyOf`/`oneOf`/`allOf`/`$ref` with no `type` has no effect);
  - `lenient` (default) allows null wherever `nullable: true` stands, as real documents mean it
    (Stripe's expandable fields, its mock server, the common converters): null is added to an
    `enum`; beside `anyOf` a `{"type": "null"}` branch is appended (pointers unchanged); beside
    `oneOf`/`allOf`/`$ref`/`not` those keywords move into `anyOf: [{...}, {"type": "null"}]`.
  Every node where the two readings differ is returned as a quirk (lint reports it).

For 3.1 documents the boolean exclusive bounds are repaired (they are invalid 2020-12 and appear
in published 3.1 documents), and a leftover `nullable: true` (OpenAI's document has 111) is read
as above in `lenient` and ignored, as 3.1 says, in `strict`.
"""

from __future__ import annotations

from typing import Any

_DROP = ("example", "discriminator", "xml", "externalDocs")
#: keywords that can refuse null when there is no `type`; they move under anyOf in lenient mode
_REFUSING = ("$ref", "allOf", "oneOf", "not", "if", "then", "else", "const")

NULLABLE_WITHOUT_TYPE = "nullable without type: strict allows no null here, lenient allows null"
NULLABLE_ENUM = "nullable enum without null: strict refuses null, lenient allows it"
NULLABLE_IN_31 = "nullable in a 3.1 document (not a 3.1 keyword): strict ignores it, lenient allows null"


def _exclusive_bounds(node: dict[str, Any]) -> None:
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = node.get(flag)
        if isinstance(value, bool):
            del node[flag]
            if value and bound in node:
                node[flag] = node.pop(bound)


def _allow_null(node: dict[str, Any], lenient: bool) -> str | None:
    """Make a `nullable: true` node accept null (lenient); the quirk when the readings differ."""
    quirk = None
    if "type" in node:
        kind = node["type"]
        kinds = list(kind) if isinstance(kind, list) else [kind]
        if "null" not in kinds:
            node["type"] = [*kinds, "null"]
    else:
        moved = {k: node.pop(k) for k in _REFUSING if k in node} if lenient else {}
        if any(k in node for k in _REFUSING) or "anyOf" in node or moved:
            quirk = NULLABLE_WITHOUT_TYPE
        if lenient and isinstance(node.get("anyOf"), list):
            if moved:
                node["anyOf"] = [{"anyOf": node.pop("anyOf"), **moved}, {"type": "null"}]
            else:
                node["anyOf"] = [*node["anyOf"], {"type": "null"}]
        elif moved:
            node["anyOf"] = [moved, {"type": "null"}]
    enum = node.get("enum")
    if isinstance(enum, list) and None not in enum:
        quirk = quirk or NULLABLE_ENUM
        if lenient:
            node["enum"] = [*enum, None]
    return quirk


def convert_30(node: Any, lenient: bool = True) -> str | None:
    """Rewrite one 3.0 Schema Object's own keywords as 2020-12 (in place); the nullable quirk, if any."""
    if not isinstance(node, dict):
        return None
    if "$ref" in node:
        ref, nullable = node["$ref"], node.get("nullable") is True
        node.clear()
        node["$ref"] = ref
        if nullable:
            if lenient:
                node.pop("$ref")
                node["anyOf"] = [{"$ref": ref}, {"type": "null"}]
            return NULLABLE_WITHOUT_TYPE
        return None
    for key in [k for k in node if isinstance(k, str) and (k.startswith("x-") or k in _DROP)]:
        del node[key]
    _exclusive_bounds(node)
    if node.pop("nullable", False) is True:
        return _allow_null(node, lenient)
    return None


def repair_31(node: Any, lenient: bool = True) -> str | None:
    """Fix the 3.0 leftovers seen in published 3.1 documents: boolean bounds, `nullable`."""
    if not isinstance(node, dict):
        return None
    _exclusive_bounds(node)
    if node.get("nullable") is True:
        if lenient:
            del node["nullable"]
            _allow_null(node, True)
        return NULLABLE_IN_31
    return None
