"""Test-only access to the shared conformance material (JSON Schema Test Suite, vendor OpenAPI docs).

The material lives beside the repository: `<repo>/../shared/conformance` (CI clones the repo
with `shared/` next to it).  The suite's `remotes/` are served as a local registry under
`http://localhost:1234/` - for tests only; the proxy itself never fetches anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CONFORMANCE = REPO.parent / "shared" / "conformance"
SUITE = CONFORMANCE / "json-schema-test-suite"
OPENAPI = CONFORMANCE / "openapi"


@dataclass(frozen=True)
class SuiteCase:
    id: str  # "draft2020-12/optional/format/date.json::group description::test description"
    schema: Any
    data: Any
    valid: bool


def remotes() -> dict[str, Any]:
    """The suite's remotes by URI; draft7 ones get the `$schema` the suite's harness assumes."""
    root = SUITE / "remotes"
    found = {}
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root).as_posix()
        doc = json.loads(path.read_text())
        found["http://localhost:1234/" + rel] = with_dialect(doc, "draft7") if rel.startswith("draft7/") else doc
    return found


DIALECTS = {"draft2020-12": "https://json-schema.org/draft/2020-12/schema",
            "draft7": "http://json-schema.org/draft-07/schema#"}


def with_dialect(schema: Any, draft: str) -> Any:
    """The suite's schemas rely on the harness's default draft; contracts say it with `$schema`."""
    if isinstance(schema, dict) and "$schema" not in schema and draft != "draft2020-12":
        return {"$schema": DIALECTS[draft], **schema}
    return schema


def cases(draft: str) -> list[SuiteCase]:
    root = SUITE / "tests"
    found = []
    for path in sorted((root / draft).rglob("*.json")):
        rel = path.relative_to(root).as_posix()
        for group in json.loads(path.read_text()):
            schema = with_dialect(group["schema"], draft)
            for test in group["tests"]:
                found.append(SuiteCase(f"{rel}::{group['description']}::{test['description']}",
                                       schema, test["data"], test["valid"]))
    return found
