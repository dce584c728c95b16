"""Compiling schemas with jsonschema-rs once, offline, and turning its errors into Violations.

Every document the walk found (`resources.py`) goes into one jsonschema-rs `Registry`; nothing
else can be resolved: the retriever refuses every URI and `offline=True`.  Formats are asserted
(`validate_formats=True`); unknown formats are ignored.  The dialect is 2020-12 unless a schema
says otherwise with `$schema`.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from egress.contracts.documents import fragment_uri
from egress.contracts.messages import instance_pointer, keyword_of, message_for, schema_pointer
from egress.contracts.results import Violation


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
    """A compiled response schema, plus where it came from (for drift) and the declared names."""

    validator: Any
    doc_uri: str  # the document holding the schema
    pointer: str  # where in it ("" for the whole document)
    declared: Collection[str]  # property names the contract declares (kept in instance paths)

    def is_valid(self, instance: Any) -> bool:
        return self.validator.is_valid(instance)

    def violations(self, instance: Any, limit: int) -> tuple[Violation, ...]:
        found = []
        for error in itertools.islice(self.validator.iter_errors(instance), max(limit, 0)):
            keyword = keyword_of(error.kind.name, error.schema_path)
            found.append(Violation(
                instance_path=instance_pointer(error.instance_path, self.declared),
                keyword=keyword,
                schema_path=schema_pointer(error.schema_path),
                message=message_for(keyword, error.kind),
            ))
        return tuple(found)


def compile_schema(docs: Mapping[str, Any], doc_uri: str, pointer: str = "", *,
                   registry: jsonschema_rs.Registry | None = None,
                   declared: Collection[str] = frozenset()) -> CompiledSchema:
    """Compile the schema at doc_uri#pointer.

    A whole document (pointer "") is compiled as the root, with `doc_uri` as its base URI and the
    other documents in a registry: its own `$id`s then work as the specification says.  A schema
    inside a document (OpenAPI) is compiled as `{"$ref": "doc_uri#pointer"}` against `registry`,
    which must hold that document.
    """
    options: dict[str, Any] = {"validate_formats": True, "retriever": _refuse}
    if pointer == "":
        target = docs[doc_uri]
        if registry is not None:  # the contract's one registry (it holds this document too)
            options["registry"] = registry
        else:
            options["registry"] = make_registry({uri: doc for uri, doc in docs.items() if uri != doc_uri})
        options["base_uri"] = doc_uri
    else:
        target = {"$ref": fragment_uri(doc_uri, pointer)}
        options["registry"] = registry if registry is not None else make_registry(docs)
    if options["registry"] is None:
        del options["registry"]
    try:
        validator = jsonschema_rs.validator_for(target, **options)
    except Exception as exc:  # noqa: BLE001 - ValidationError/ReferencingError/ValueError
        raise CompileError(str(exc).splitlines()[0]) from exc
    return CompiledSchema(validator, doc_uri, pointer, declared)
