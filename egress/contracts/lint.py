"""`egress contracts lint`: every problem in a contracts directory, each with file and pointer.

Checks, for every .yaml/.yml/.json file under the directory:
- contract files (top-level `operations` or `openapi`) load as `load_contract` would (refs,
  remote refs, escaping refs, structure, compile errors);
- OpenAPI documents pass openapi-spec-validator (with no URL handler at all: nothing is fetched);
- every schema (schema files, inline compact schemas) passes its dialect's meta-schema with the
  Python `jsonschema` package, and its `$ref`s resolve locally.
An empty list means clean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator

from egress.contracts.documents import DocumentError, file_uri, join_pointer, read_document
from egress.contracts.loader import load_contract
from egress.contracts.quirks import document_warnings
from egress.contracts.resources import ResourceStore
from egress.errors import ConfigError

_MAX_PER_FILE = 50


class _Offline30(OpenAPIV30SpecValidator):
    resolver_handlers: dict[str, Any] = {}


class _Offline31(OpenAPIV31SpecValidator):
    resolver_handlers: dict[str, Any] = {}


def _name(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve().parent))
    except ValueError:
        return str(path)


def meta_problems(schema: Any, where: str) -> list[str]:
    """Meta-schema problems of one schema (its `$schema` dialect, 2020-12 by default)."""
    if not isinstance(schema, (dict, bool)):
        return [f"{where}: a schema must be an object or a boolean"]
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    meta = cls(cls.META_SCHEMA)
    return [f"{where}{join_pointer('', *err.absolute_path)}: {err.message}"
            for err in list(meta.iter_errors(schema))[:_MAX_PER_FILE]]


def _openapi_problems(doc: dict[str, Any], name: str) -> list[str]:
    version = str(doc.get("openapi", ""))
    cls = _Offline31 if version.startswith("3.1") else _Offline30
    try:
        errors = list(cls(doc).iter_errors())[:_MAX_PER_FILE]
    except Exception as exc:  # noqa: BLE001 - the validator raises on refs it may not follow
        return [f"{name}: OpenAPI validation failed ({type(exc).__name__}: {str(exc)[:200]})"]
    return [f"{name}#{join_pointer('', *getattr(err, 'path', []))}: {err.message}" for err in errors]


def lint_dir(directory: Path, warnings: list[str] | None = None) -> list[str]:
    """Every problem found under `directory` (file#pointer: message); [] when clean.

    `warnings`, when given, receives the vendor quirks that change verdicts (`quirks.py`)."""
    problems: list[str] = []
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in (".yaml", ".yml", ".json") and p.is_file())
    for path in files:
        name = _name(path, directory)
        try:
            doc = read_document(path)
        except DocumentError as exc:
            problems.append(f"{name}: {exc}")
            continue
        if isinstance(doc, dict) and ("operations" in doc or "openapi" in doc):
            try:
                loaded = load_contract(path, contracts_dir=directory)
            except ConfigError as exc:
                problems.extend(exc.problems)
            else:
                if warnings is not None and "openapi" in doc:
                    warnings.extend(document_warnings(name, read_document(path), loaded))
            if "openapi" in doc:
                problems.extend(_openapi_problems(doc, name))
            else:
                problems.extend(_inline_meta_problems(doc, name))
            continue
        problems.extend(meta_problems(doc, f"{name}#"))
        store = ResourceStore(directory)
        uri = file_uri(path)
        store.add(uri, doc)
        store.walk(uri, "")
        problems.extend(store.finish())
    return list(dict.fromkeys(problems))


def _inline_meta_problems(doc: dict[str, Any], name: str) -> list[str]:
    found = []
    operations = doc.get("operations")
    for key, op in (operations.items() if isinstance(operations, dict) else ()):
        responses = op.get("responses") if isinstance(op, dict) else None
        for status, response in (responses.items() if isinstance(responses, dict) else ()):
            if isinstance(response, dict) and "schema" in response:
                at = join_pointer("", "operations", str(key), "responses", str(status), "schema")
                found.extend(meta_problems(response["schema"], f"{name}#{at}"))
    return found
