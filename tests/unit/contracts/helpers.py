"""Writing small contract trees into tmp_path for the unit tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from egress.contracts import Contract, load_contract


def write(root: Path, files: dict[str, Any]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        elif name.endswith(".json"):
            path.write_text(json.dumps(content))
        else:
            path.write_text(yaml.safe_dump(content, sort_keys=False))


def contract(tmp_path: Path, doc: Any, files: dict[str, Any] | None = None, name: str = "c.yaml",
             base_path: str = "", options: Any = None) -> Contract:
    root = tmp_path / "contracts"
    write(root, {name: doc, **(files or {})})
    return load_contract(root / name, contracts_dir=root, base_path=base_path, options=options)


def compact(schema: Any, status: str = "200", content_type: Any = "application/json") -> dict[str, Any]:
    return {"operations": {"GET /x": {"responses": {status: {"content_type": content_type, "schema": schema}}}}}
