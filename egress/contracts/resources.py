"""The schema documents a contract may use: local files under the contracts dir, walked and checked once.

A walk starts at one schema (a document URI + pointer), visits every subschema reachable through
the JSON Schema keywords and `$ref`, normalizes OpenAPI 3.0 nodes on the way (`oas30.py`), loads
referenced local files (never anything else), and records a problem for every remote, escaping,
missing or dangling reference, each named by file and pointer.  The validator is then compiled
from these documents with retrieval disabled, so nothing is ever fetched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from egress.contracts.documents import (
    DocumentError,
    escape_token,
    file_uri,
    inside,
    path_of_uri,
    read_document,
    resolve_pointer,
    resolve_uri,
    split_ref,
)
from egress.contracts.oas30 import convert_30, repair_31

_ONE = ("additionalProperties", "additionalItems", "contains", "propertyNames", "not", "if", "then",
        "else", "unevaluatedItems", "unevaluatedProperties", "contentSchema")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")

#: dialects: "jsonschema" (as written, `$schema` decides), "oas30", "oas31"
#: meta-schemas built into the validator: referencing them fetches nothing
BUILTIN = frozenset({
    "https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema", "http://json-schema.org/draft-06/schema",
    "http://json-schema.org/draft-04/schema",
    *(f"https://json-schema.org/draft/2020-12/meta/{v}" for v in (
        "core", "applicator", "unevaluated", "validation", "meta-data", "format-annotation",
        "format-assertion", "content")),
})

_NORMALIZE: dict[str, Callable[[Any, bool], str | None]] = {"oas30": convert_30, "oas31": repair_31}
DUPLICATE_REQUIRED = "duplicate names in required (deduplicated: the validator reports such a schema invalid with no error)"


_KIND = {**{k: "one" for k in _ONE}, **{k: "map" for k in _MAP}, **{k: "list" for k in _LIST},
         "items": "items", "dependencies": "deps"}


def _token(name: object) -> str:
    text = str(name)
    return escape_token(text) if "~" in text or "/" in text else text


def subschemas(node: Any) -> Iterator[tuple[str, Any]]:
    """(relative pointer such as "/properties/id", subschema) for every subschema position of a node.

    Walks the node's own keys (few) rather than every keyword (many): this runs once per schema
    node of the largest vendor documents."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        kind = _KIND.get(key)
        if kind is None:
            continue
        if kind == "one":
            yield "/" + key, value
        elif kind == "map" or kind == "deps":
            if isinstance(value, dict):
                for name, sub in value.items():
                    if kind == "map" or isinstance(sub, (dict, bool)):
                        yield f"/{key}/{_token(name)}", sub
        elif isinstance(value, list):  # allOf/anyOf/oneOf/prefixItems, or items as an array
            for i, sub in enumerate(value):
                yield f"/{key}/{i}", sub
        elif kind == "items" and value is not None:
            yield "/items", value


class ResourceStore:
    """Documents by URI, their dialects, the `$id`s they declare, and every problem found walking them."""

    def __init__(self, contracts_dir: Path, *, extra: dict[str, Any] | None = None,
                 nullable: str = "lenient") -> None:
        self.root = contracts_dir.resolve()
        self.lenient = nullable != "strict"
        #: (document uri, pointer, message): vendor quirks that change verdicts, for lint
        self.quirks: list[tuple[str, str, str]] = []
        #: documents that may be referenced (tests serve a suite's remotes here); added when reached
        self._available: dict[str, Any] = dict(extra or {})
        self.docs: dict[str, Any] = {}
        self.dialects: dict[str, str] = {}
        self.ids: set[str] = set(BUILTIN)
        self.problems: list[str] = []
        self.property_names: set[str] = set()
        #: synthetic document URI -> (file URI, pointer prefix): inline schemas of compact contracts
        self.aliases: dict[str, tuple[str, str]] = {}
        #: canonical JSON of an inline schema -> its synthetic URI: identical inline schemas (a
        #: `$ref` to the same file in every operation) are one document, compiled once
        self.inline_by_content: dict[bytes, str] = {}
        self._visited: set[tuple[str, str]] = set()
        self._names: dict[str, str] = {}
        #: OpenAPI documents some `$ref` reaches outside `components` (compiled whole, not slimmed)
        self.refs_outside_components: set[str] = set()
        self._followed: dict[tuple[str, str], tuple[str, str, str, Any]] = {}
        self._deferred: list[tuple[str, str, str]] = []

    # -- naming -----------------------------------------------------------------------------
    def display(self, uri: str) -> str:
        """A document's name in problems: relative to the contracts dir's parent when inside it."""
        name = self._names.get(uri)
        if name is None:
            name = self._names[uri] = self._display(uri)
        return name

    def _display(self, uri: str) -> str:
        path = path_of_uri(uri)
        if path is None:
            return uri
        try:
            return str(path.resolve().relative_to(self.root.parent))
        except ValueError:
            return str(path)

    def where(self, uri: str, ptr: str) -> str:
        if uri in self.aliases:
            uri, prefix = self.aliases[uri]
            ptr = prefix + ptr
        return f"{self.display(uri)}#{ptr}"

    # -- documents --------------------------------------------------------------------------
    def add(self, uri: str, doc: Any, dialect: str = "jsonschema") -> None:
        self.docs[uri] = doc
        self.dialects[uri] = dialect
        self.ids.add(uri)

    def load_file(self, path: Path, dialect: str = "jsonschema") -> str | None:
        """Load a local file into the store; its URI, or None (with a problem recorded)."""
        uri = file_uri(path)
        if uri in self.docs:
            return uri
        try:
            self.add(uri, read_document(path), dialect)
        except DocumentError as exc:
            self.problems.append(f"{self.display(uri)}: {exc}")
            return None
        return uri

    # -- walking ----------------------------------------------------------------------------
    def walk(self, uri: str, ptr: str, node: Any | None = None) -> None:
        """Visit the schema at uri#ptr and everything it reaches."""
        if node is None:
            node = resolve_pointer(self.docs[uri], ptr)
        stack = [(uri, uri, ptr, node)]
        while stack:
            doc_uri, base, at, node = stack.pop()
            if (doc_uri, at) in self._visited or not isinstance(node, dict):
                continue
            self._visited.add((doc_uri, at))
            normalize = _NORMALIZE.get(self.dialects.get(doc_uri, "jsonschema"))
            if normalize is not None and (quirk := normalize(node, self.lenient)) is not None:
                self.quirks.append((doc_uri, at, quirk))
            ident = node.get("$id")
            if isinstance(ident, str) and not ident.startswith("#"):
                base = resolve_uri(base, ident)
                self.ids.add(split_ref(base)[0])
            meta = node.get("$schema")
            if isinstance(meta, str) and (meta_doc := split_ref(meta)[0]) in self._available \
                    and meta_doc not in self.docs:
                self.add(meta_doc, self._available[meta_doc])
                stack.append((meta_doc, meta_doc, "", self.docs[meta_doc]))
            props = node.get("properties")
            if isinstance(props, dict):
                self.property_names.update(k for k in props if isinstance(k, str))
            required = node.get("required")
            if isinstance(required, list):
                names = [k for k in required if isinstance(k, str)]
                self.property_names.update(names)
                if len(names) == len(required) and len(set(names)) < len(names):
                    node["required"] = list(dict.fromkeys(names))
                    self.quirks.append((doc_uri, at + "/required", DUPLICATE_REQUIRED))
            ref = node.get("$ref")
            if isinstance(ref, str):
                target = self._follow(doc_uri, base, at + "/$ref", ref)
                if target is not None:
                    stack.append(target)
            for rel, sub in subschemas(node):
                if isinstance(sub, dict):
                    stack.append((doc_uri, base, at + rel, sub))

    def _follow(self, doc_uri: str, base: str, at: str, ref: str) -> tuple[str, str, str, Any] | None:
        found = self._followed.get((base, ref))
        if found is None:
            found = self._resolve(doc_uri, base, at, ref)
            if found is not None:  # failures are not kept: each place gets its own problem
                self._followed[(base, ref)] = found
        return found

    def _resolve(self, doc_uri: str, base: str, at: str, ref: str) -> tuple[str, str, str, Any] | None:
        target = resolve_uri(base, ref)
        target_doc, frag = split_ref(target)
        where = self.where(doc_uri, at)
        if target_doc not in self.docs and target_doc in self._available:
            self.add(target_doc, self._available[target_doc])
        if target_doc not in self.docs and target_doc in self.ids:
            return None  # an embedded resource ($id) or a built-in meta-schema
        if target_doc not in self.docs:
            scheme = urlsplit(target_doc).scheme
            path = path_of_uri(target_doc)
            if path is not None:
                if not inside(path, self.root):
                    self.problems.append(f"{where}: $ref {ref!r} escapes the contracts directory")
                    return None
                if not path.is_file():
                    self.problems.append(f"{where}: $ref {ref!r}: file not found")
                    return None
                dialect = "oas30" if self.dialects.get(doc_uri) == "oas30" else "jsonschema"
                if self.load_file(path, dialect) is None:
                    return None
            else:
                kind = "is remote; contracts never fetch anything" if scheme in ("http", "https") \
                    else "cannot be resolved"
                self._deferred.append((where, ref, target_doc + f" {kind}"))
                return None
        if self.dialects.get(target_doc) in ("oas30", "oas31") and not frag.startswith("/components/"):
            self.refs_outside_components.add(target_doc)
        if frag == "" or not frag.startswith("/"):
            return (target_doc, target_doc, "", self.docs[target_doc]) if frag == "" else None
        try:
            node = resolve_pointer(self.docs[target_doc], frag)
        except KeyError:
            self.problems.append(f"{where}: $ref {ref!r}: pointer {frag!r} does not exist")
            return None
        return (target_doc, target_doc, frag, node)

    def finish(self) -> list[str]:
        """Problems, including references that matched no document nor any `$id` seen."""
        for where, ref, detail in self._deferred:
            target_doc, kind = detail.split(" ", 1)
            if target_doc not in self.ids:
                self.problems.append(f"{where}: $ref {ref!r} {kind}")
        self._deferred.clear()
        return self.problems
