"""Compiling schemas with jsonschema-rs once, offline; one shared validator per OpenAPI document.

Every document the walk found (`resources.py`) goes into one jsonschema-rs `Registry`; nothing
else can be resolved: the retriever refuses every URI and `offline=True`.  Formats are asserted
(`validate_formats=True`) unless the upstream's `contract_options.formats` is `ignore`; unknown
formats are ignored.  The dialect is 2020-12 unless a schema says otherwise with `$schema`.

An OpenAPI document is compiled ONCE for all its operations (`compile_document`): the root is
the document itself plus `properties: {"<n>": {"$ref": "#<response schema pointer>"}}`, so every
schema reached through `$ref` is compiled one time and shared by every response that reaches it
(compiling one validator per response copies each reachable schema into each: 7 GB for Stripe).
A body is checked as `{"<n>": body}`; error locations are already pointers into the document.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

import jsonschema_rs
import orjson

from egress.contracts.documents import fragment_uri, resolve_pointer, split_pointer
from egress.contracts.explain import violations_of
from egress.contracts.results import Violation

#: JSON Schema keywords that must not stand at the root of a document compiled as a schema
_ROOT_KEYWORDS = ("$ref", "$dynamicRef", "$schema", "$id", "type", "allOf", "anyOf", "oneOf", "not", "if",
                  "then", "else", "enum", "const", "required", "additionalProperties", "patternProperties",
                  "propertyNames", "unevaluatedProperties", "dependentSchemas", "dependentRequired",
                  "minProperties", "maxProperties", "items", "prefixItems", "contains")


class CompileError(ValueError):
    """A schema the validator cannot compile; the message is jsonschema-rs's first line."""


def _refuse(uri: str) -> Any:
    raise LookupError(f"{uri} is not a local contract document; contracts never fetch anything")


def make_registry(docs: Mapping[str, Any]) -> jsonschema_rs.Registry | None:
    if not docs:
        return None
    try:
        return jsonschema_rs.Registry(list(docs.items()), retriever=_refuse)
    except Exception as exc:  # noqa: BLE001 - jsonschema-rs raises several kinds here
        raise CompileError(str(exc).splitlines()[0]) from exc


@dataclass(frozen=True, slots=True)
class CompiledSchema:
    """A compiled response schema, plus where it came from (for drift) and the declared names.

    `key` set: `validator` is the document's shared validator and the body is checked under it."""

    validator: Any
    doc_uri: str  # the document holding the schema
    pointer: str  # where in it ("" for the whole document)
    declared: Collection[str]  # property names the contract declares (kept in instance paths)
    key: str | None = None
    #: where the shared validator compiled this schema, when another identical one stood first
    origin: str | None = None

    def _wrap(self, instance: Any) -> Any:
        return instance if self.key is None else {self.key: instance}

    def is_valid(self, instance: Any) -> bool:
        return self.validator.is_valid(self._wrap(instance))

    def violations(self, instance: Any, limit: int) -> tuple[Violation, ...]:
        """At most `limit` violations; () when the validator yields none (the caller decides)."""
        skip = 0 if self.key is None else 1
        found = violations_of(self.validator.iter_errors(self._wrap(instance)), limit, self.declared, skip)
        origin = self.origin
        if origin is None or origin == self.pointer:
            return found
        return tuple(replace(v, schema_path=self.pointer + v.schema_path[len(origin):])
                     if v.schema_path == origin or v.schema_path.startswith(origin + "/") else v for v in found)


def _options(formats: str, registry: jsonschema_rs.Registry | None) -> dict[str, Any]:
    options: dict[str, Any] = {"validate_formats": formats != "ignore", "retriever": _refuse}
    if registry is not None:
        options["registry"] = registry
    return options


def _validator(target: Any, options: dict[str, Any]) -> Any:
    try:
        return jsonschema_rs.validator_for(target, **options)
    except Exception as exc:  # noqa: BLE001 - ValidationError/ReferencingError/ValueError
        raise CompileError(str(exc).splitlines()[0]) from exc


def compile_schema(docs: Mapping[str, Any], doc_uri: str, pointer: str = "", *,
                   registry: jsonschema_rs.Registry | None = None,
                   declared: Collection[str] = frozenset(), formats: str = "assert") -> CompiledSchema:
    """Compile the schema at doc_uri#pointer.

    A whole document (pointer "") is compiled as the root, with `doc_uri` as its base URI and the
    other documents in a registry: its own `$id`s then work as the specification says.  A schema
    inside a document is compiled as `{"$ref": "doc_uri#pointer"}` against `registry`, which must
    hold that document (OpenAPI documents use `compile_document` instead).
    """
    if pointer == "":
        if registry is None:
            registry = make_registry({uri: doc for uri, doc in docs.items() if uri != doc_uri})
        options = _options(formats, registry)
        options["base_uri"] = doc_uri
        return CompiledSchema(_validator(docs[doc_uri], options), doc_uri, pointer, declared)
    target = {"$ref": fragment_uri(doc_uri, pointer)}
    options = _options(formats, registry if registry is not None else make_registry(docs))
    return CompiledSchema(_validator(target, options), doc_uri, pointer, declared)


def _slim(doc: dict[str, Any], pointers: Iterable[str]) -> dict[str, Any]:
    """The document with `paths` cut down to the branches that lead to `pointers` (same pointers).

    jsonschema-rs's cost grows with the whole root document (Stripe's request bodies and
    parameters, a synthetic document's 10,000 paths), not only with what is referenced."""
    root = {k: v for k, v in doc.items() if k not in ("paths", "webhooks")}
    for ptr in pointers:
        tokens = split_pointer(ptr)
        if not tokens or tokens[0] not in ("paths", "webhooks"):
            continue
        src, dst = doc, root
        for token in tokens[:-1]:
            src = src[token]
            dst = dst.setdefault(token, {})
        dst[tokens[-1]] = src[tokens[-1]]
    return root


def compile_document(docs: Mapping[str, Any], doc_uri: str, pointers: Iterable[str], *,
                     declared: Collection[str] = frozenset(), formats: str = "assert",
                     whole: bool = False) -> dict[str, CompiledSchema]:
    """One validator for every schema of `doc_uri` at `pointers`; {pointer: CompiledSchema}.

    `whole`: some `$ref` points into `paths` (not only into components): keep every path."""
    doc = docs[doc_uri]
    origins = _origins(doc, dict.fromkeys(pointers))
    keys = {origin: str(i) for i, (origin, _) in enumerate(dict.fromkeys(origins.values()))}
    source = doc if whole else _slim(doc, keys)
    root = {k: v for k, v in source.items() if k not in _ROOT_KEYWORDS and k != "properties"}
    root["properties"] = {key: {"$ref": fragment_uri("", ptr)} for ptr, key in keys.items()}
    options = _options(formats, make_registry({u: d for u, d in docs.items() if u != doc_uri}))
    options["base_uri"] = doc_uri
    validator = _validator(root, options)
    return {ptr: CompiledSchema(validator, doc_uri, ptr, declared, keys[origin], origin if copy else None)
            for ptr, (origin, copy) in origins.items()}


def _origins(doc: Any, pointers: Iterable[str]) -> dict[str, tuple[str, bool]]:
    """pointer -> (the pointer compiled for it, whether that is an identical copy elsewhere): a bare
    local `$ref` is followed to its target, identical inline schemas share the first one's location.  jsonschema-rs compiles each root's
    target afresh (about 15 KB each): 20,000 responses of a 10,000-operation document sharing one
    error schema and 2,000 resources would otherwise cost 300 MB."""
    origins, by_content = {}, {}
    for ptr in pointers:
        at, node = ptr, resolve_pointer(doc, ptr)
        for _ in range(16):
            ref = node.get("$ref") if isinstance(node, dict) and len(node) == 1 else None
            if not (isinstance(ref, str) and ref.startswith("#/")):
                break
            try:
                at, node = unquote(ref[1:]), resolve_pointer(doc, unquote(ref[1:]))
            except KeyError:
                break
        copy = False
        if at == ptr and isinstance(node, dict):
            try:
                at = by_content.setdefault(orjson.dumps(node, option=orjson.OPT_SORT_KEYS), ptr)
                copy = at != ptr
            except TypeError:  # a value JSON cannot express: compiled where it stands
                pass
        origins[ptr] = (at, copy)
    return origins
