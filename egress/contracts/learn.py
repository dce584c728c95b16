"""`egress contracts learn`: a draft compact contract inferred (genson) from recorded bodies.

Reads the layout written by `record.py` and returns {"operations": {op: {"responses":
{status: {"content_type": ..., "schema": ...}}}}} ready to dump as YAML.  Non-JSON bodies
contribute their content type only; unparsable JSON bodies are skipped.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from genson import SchemaBuilder

from egress.contracts.body import BodyError, parse_json
from egress.contracts.media import is_json, media_type


def learn(samples_dir: Path, upstream: str | None = None) -> dict[str, Any]:
    """A draft contract per the recorded samples (optionally of one upstream only)."""
    builders: dict[tuple[str, str], SchemaBuilder] = {}
    types: dict[tuple[str, str], set[str]] = defaultdict(set)
    for meta_path in sorted(Path(samples_dir).glob("*/*/*/*.meta.json")):
        try:
            meta = orjson.loads(meta_path.read_bytes())
            body = meta_path.with_name(meta_path.name.replace(".meta.json", ".json")).read_bytes()
        except (OSError, orjson.JSONDecodeError):
            continue
        if upstream is not None and meta.get("upstream") != upstream:
            continue
        key = (str(meta["operation"]), str(meta["status"]))
        mtype = media_type(meta.get("content_type")) or "application/octet-stream"
        types[key].add(mtype)
        if not is_json(mtype):
            continue
        try:
            value = parse_json(body)
        except BodyError:
            continue
        builder = builders.setdefault(key, SchemaBuilder(schema_uri="https://json-schema.org/draft/2020-12/schema"))
        builder.add_object(_plain(value))
    operations: dict[str, Any] = {}
    for (operation, status), mtypes in sorted(types.items()):
        response: dict[str, Any] = {"content_type": sorted(mtypes)[0] if len(mtypes) == 1 else sorted(mtypes)}
        if (operation, status) in builders:
            schema = builders[(operation, status)].to_schema()
            response["schema"] = schema
        operations.setdefault(operation, {"responses": {}})["responses"][status] = response
    return {"operations": operations}


def _plain(value: Any) -> Any:
    """Decimals (exact big numbers) become int/float for genson."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
