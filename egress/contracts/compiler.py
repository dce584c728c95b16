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
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from egress.contracts.documents import fragment_uri
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

    def _wrap(self, instance: Any) -> Any:
        return instance if self.key is None else {self.key: instance}

    def is_valid(self, instance: Any) -> bool:
        return self.validator.is_valid(self._wrap(instance))

    def violations(self, instance: Any, limit: int) -> tuple[Violation, ...]:
        """At most `limit` violations; () when the validator yields none (the caller decides)."""
        skip = 0 if self.key is None else 1
        return violations_of(self.validator.iter_errors(self._wrap(instance)), limit, self.declared, skip)


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


def compile_document(docs: Mapping[str, Any], doc_uri: str, pointers: Iterable[str], *,
                     declared: Collection[str] = frozenset(), formats: str = "assert") -> dict[str, CompiledSchema]:
    """One validator for every schema of `doc_uri` at `pointers`; {pointer: CompiledSchema}."""
    doc = docs[doc_uri]
    keys = {ptr: str(i) for i, ptr in enumerate(dict.fromkeys(pointers))}
    root = {k: v for k, v in doc.items() if k not in _ROOT_KEYWORDS and k != "properties"}
    root["properties"] = {key: {"$ref": fragment_uri("", ptr)} for ptr, key in keys.items()}
    options = _options(formats, make_registry({u: d for u, d in docs.items() if u != doc_uri}))
    options["base_uri"] = doc_uri
    validator = _validator(root, options)
    return {ptr: CompiledSchema(validator, doc_uri, ptr, declared, key) for ptr, key in keys.items()}
