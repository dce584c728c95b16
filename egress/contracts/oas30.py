"""Turning one OpenAPI 3.0 Schema Object (or a 3.1 one with 3.0 leftovers) into JSON Schema 2020-12, in place.

Only the keywords of the node itself are rewritten; the schema walker (`resources.py`) visits the
subschemas.  Rules (OpenAPI 3.0.3, section 4.7.24):

- `$ref` with siblings: the siblings are ignored in 3.0, so they are dropped.
- `nullable: true` with `type`: "null" is added to `type`, and to `enum` when there is one
  (an enum without null would otherwise forbid the null the author declared; this is how the
  common converters read it).  `nullable` without `type` has no effect (3.0.3 wording).
- boolean `exclusiveMinimum`/`exclusiveMaximum` become the numeric 2020-12 forms.
- `example`, `discriminator`, `xml`, `externalDocs` and `x-*` extensions are dropped (annotations only).
- `format` is kept; unknown formats are ignored by the validator.

For 3.1 documents only the boolean exclusive bounds are repaired (they are invalid 2020-12 and
appear in published 3.1 documents); everything else is JSON Schema already.
"""

from __future__ import annotations

from typing import Any

_DROP = ("example", "discriminator", "xml", "externalDocs")


def _exclusive_bounds(node: dict[str, Any]) -> None:
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = node.get(flag)
        if isinstance(value, bool):
            del node[flag]
            if value and bound in node:
                node[flag] = node.pop(bound)


def convert_30(node: Any) -> None:
    """Rewrite one 3.0 Schema Object's own keywords as 2020-12 (in place)."""
    if not isinstance(node, dict):
        return
    if "$ref" in node:
        ref = node["$ref"]
        node.clear()
        node["$ref"] = ref
        return
    for key in [k for k in node if isinstance(k, str) and (k.startswith("x-") or k in _DROP)]:
        del node[key]
    _exclusive_bounds(node)
    if node.pop("nullable", False) is True and "type" in node:
        kind = node["type"]
        kinds = list(kind) if isinstance(kind, list) else [kind]
        if "null" not in kinds:
            node["type"] = [*kinds, "null"]
        enum = node.get("enum")
        if isinstance(enum, list) and None not in enum:
            node["enum"] = [*enum, None]


def repair_31(node: Any) -> None:
    """Fix the one 3.0 leftover seen in published 3.1 documents: boolean exclusive bounds."""
    if isinstance(node, dict):
        _exclusive_bounds(node)
