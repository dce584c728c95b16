"""Running a bare schema through the contracts' own compile-and-check path (test helper)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from egress.contracts.compiler import compile_schema
from egress.contracts.drift import DriftFinder
from egress.contracts.operation import MediaSpec, Operation, ResponseSpec
from egress.contracts.resources import ResourceStore

SCHEMA_URI = "file:///contracts-under-test/schema.json"


def operation_for(schema: Any, resources: dict[str, Any] | None = None,
                  contracts_dir: Path = Path("/contracts-under-test")) -> Operation:
    """An operation whose 200 application/json response has `schema`, compiled like a contract's."""
    store = ResourceStore(contracts_dir, extra=resources)
    store.add(SCHEMA_URI, schema)
    store.walk(SCHEMA_URI, "")
    problems = store.finish()
    if problems:
        raise ValueError("; ".join(problems))
    compiled = compile_schema(store.docs, SCHEMA_URI, declared=frozenset(store.property_names))
    media = MediaSpec("application/json", compiled, DriftFinder(store.docs, (SCHEMA_URI, schema)))
    return Operation("GET", "/x", None, {200: ResponseSpec("200", {"application/json": media})}, {}, None)


def body_of(data: Any) -> bytes:
    return json.dumps(data).encode()
