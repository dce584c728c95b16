"""Loading a contract file into a compiled `Contract`: read, walk every schema, compile once, index paths.

    load_contract(path, contracts_dir=..., base_path="") -> Contract      (raises ConfigError)

Every problem is collected (file + JSON pointer) before raising, so one run shows them all.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from egress.contracts.compact import read_compact
from egress.contracts.compiler import CompiledSchema, CompileError, compile_document, compile_schema, make_registry
from egress.contracts.documents import DocumentError, file_uri, read_document, resolve_pointer
from egress.contracts.drafts import OperationDraft, SchemaAt
from egress.contracts.drift import DriftFinder
from egress.contracts.media import normalize_declared
from egress.contracts.openapi import dialect_of, read_openapi
from egress.contracts.operation import MediaSpec, Operation, ResponseSpec
from egress.contracts.paths import PathTable, TemplateError
from egress.contracts.resources import ResourceStore
from egress.errors import ConfigError


class Contract:
    """The compiled operations of one upstream's contract, indexed for `match(method, path)`."""

    def __init__(self, source: Path, operations: list[Operation], compile_seconds: float,
                 skipped: tuple[str, ...] = (), quirks: tuple[str, ...] = ()) -> None:
        self.source = source
        #: vendor quirks that change verdicts ("file#pointer: what"), reported by lint
        self.quirks = quirks
        self.operations: tuple[Operation, ...] = tuple(operations)
        self.compile_seconds = compile_seconds
        #: OpenAPI operations that do not line up with the upstream's base path
        self.skipped = skipped
        self._tables: dict[str, PathTable[Operation]] = {}
        for op in self.operations:
            self._tables.setdefault(op.method, PathTable()).add(op.path, op)

    def match(self, method: str, path: str) -> Operation | None:
        """The operation for a request path relative to the upstream url (raw, no query)."""
        table = self._tables.get(method.upper())
        return table.match(path) if table is not None else None

    def __iter__(self) -> Iterator[Operation]:
        return iter(self.operations)

    def __repr__(self) -> str:
        return f"<Contract {self.source.name}: {len(self.operations)} operations>"


def load_contract(path: Path, *, contracts_dir: Path, base_path: str = "", options: Any = None) -> Contract:
    """Read, check and compile a contract; ConfigError listing every problem.

    `options`: the upstream's `contract_options` (`nullable`: lenient|strict, `formats`: assert|ignore)."""
    started = time.perf_counter()
    formats = getattr(options, "formats", "assert")
    store = ResourceStore(contracts_dir, nullable=getattr(options, "nullable", "lenient"))
    uri = file_uri(path)
    try:
        doc = read_document(path)
    except DocumentError as exc:
        raise ConfigError([f"{store.display(uri)}: {exc}"]) from exc
    skipped: list[str] = []
    if isinstance(doc, dict) and "openapi" in doc:
        dialect = dialect_of(doc)
        if dialect is None:
            raise ConfigError([f"{store.display(uri)}#/openapi: only OpenAPI 3.0.x and 3.1.x are supported"])
        store.add(uri, doc, dialect)
        drafts = read_openapi(doc, uri, store, base_path, skipped)
        if not drafts and skipped and not store.problems:
            store.problems.append(f"{store.display(uri)}#/paths: no operation lines up with base path {base_path!r}")
    else:
        drafts = read_compact(doc, uri, store)
    for draft in drafts:
        for schema in _schemas(draft):
            if schema.doc_uri in store.docs:
                store.walk(schema.doc_uri, schema.pointer)
    problems = store.finish()
    operations = [] if problems else _compile(drafts, store, problems, formats)
    if problems:
        raise ConfigError(problems)
    quirks = tuple(f"{store.where(u, p)}: {m}" for u, p, m in dict.fromkeys(store.quirks))
    return Contract(path, operations, time.perf_counter() - started, tuple(skipped), quirks)


def _schemas(draft: OperationDraft) -> Iterator[SchemaAt]:
    for response in draft.responses:
        for media in response.content or ():
            if media.schema is not None:
                yield media.schema


def _shared(drafts: list[OperationDraft], store: ResourceStore, declared: frozenset[str],
            formats: str) -> dict[SchemaAt, CompiledSchema]:
    """The response schemas inside OpenAPI documents, compiled once per document."""
    by_doc: dict[str, list[str]] = {}
    for draft in drafts:
        for schema in _schemas(draft):
            if store.dialects.get(schema.doc_uri) in ("oas30", "oas31"):
                by_doc.setdefault(schema.doc_uri, []).append(schema.pointer)
    docs = {u: d for u, d in store.docs.items() if u not in store.aliases}
    shared: dict[SchemaAt, CompiledSchema] = {}
    for uri, pointers in by_doc.items():
        try:
            compiled = compile_document(docs, uri, pointers, declared=declared, formats=formats,
                                        whole=uri in store.refs_outside_components)
        except CompileError:
            continue  # compiled one by one below, so that the problem names the schema
        shared.update((SchemaAt(uri, ptr), c) for ptr, c in compiled.items())
    return shared


def _compile(drafts: list[OperationDraft], store: ResourceStore, problems: list[str],
             formats: str = "assert") -> list[Operation]:
    declared = frozenset(store.property_names)
    shared = _shared(drafts, store, declared, formats)
    try:
        registry = None
        if any(s not in shared for d in drafts for s in _schemas(d)):
            registry = make_registry({u: d for u, d in store.docs.items() if u not in store.aliases})
    except CompileError as exc:
        problems.append(f"contract documents: {exc}")
        return []
    compiled: dict[SchemaAt, MediaSpec | None] = {}
    operations, seen = [], PathTable[str]()
    for draft in drafts:
        try:
            seen.add(f"/{draft.method}{draft.path}", draft.where)
        except TemplateError as exc:
            problems.append(f"{draft.where}: {exc}")
            continue
        exact, ranges, default = {}, {}, None
        for response in draft.responses:
            content = None
            if response.content is not None:
                content = {}
                for media in response.content:
                    spec = _media(media.media_range, media.schema, store, (registry, shared, formats), declared,
                                  compiled, problems)
                    content[normalize_declared([media.media_range])[0]] = spec
            spec = ResponseSpec(response.status_key, content)
            if response.status_key == "default":
                default = spec
            elif response.status_key.endswith("XX"):
                ranges[int(response.status_key[0])] = spec
            else:
                exact[int(response.status_key)] = spec
        operations.append(Operation(draft.method, draft.path, draft.mode, exact, ranges, default))
    return operations


def _media(media_range: str, schema: SchemaAt | None, store: ResourceStore, how: tuple[Any, Any, str],
           declared: frozenset[str], cache: dict[SchemaAt, MediaSpec | None], problems: list[str]) -> MediaSpec:
    if schema is None:
        return MediaSpec(media_range, None)
    registry, shared, formats = how
    if schema not in cache:
        try:
            compiled = shared.get(schema) or compile_schema(
                store.docs, schema.doc_uri, schema.pointer, registry=registry, declared=declared, formats=formats)
            root = (schema.doc_uri, resolve_pointer(store.docs[schema.doc_uri], schema.pointer))
            cache[schema] = MediaSpec(media_range, compiled, DriftFinder(store.docs, root))
        except CompileError as exc:
            problems.append(f"{store.where(schema.doc_uri, schema.pointer)}: {exc}")
            cache[schema] = None
    cached = cache[schema]
    return MediaSpec(media_range, cached.schema, cached.drift) if cached else MediaSpec(media_range, None)
