"""The three vendor documents as published, and the real bodies each one comes with, as test cases.

    Stripe 2023-08-16 (3.0.0): its published fixture objects (`stripe_fixtures.py`)
    OpenAI 2.3.0 (3.1.0): response examples, `example`/`examples` and `x-oaiMeta` ones
    Twilio v2010 (3.0.1): response examples

`vendor_faults.json` (beside this file) lists every case that does not pass, with the reason the
vendor's own data disagrees with the vendor's own schema; a failure that is ours has no place
there (there are none).  The data lives in `<repo>/../shared/conformance/openapi`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from egress.contracts import Contract, load_contract
from egress.contracts.documents import read_document
from egress.contracts.openapi import relative_template

from .stripe_fixtures import FIXTURES, fixture_cases
from .suite import OPENAPI

FAULTS = Path(__file__).with_name("vendor_faults.json")


@dataclass(frozen=True)
class Vendor:
    file: str
    base_path: str  # the upstream url's path
    server: str  # the server path in the document
    options: SimpleNamespace  # contract_options the conformance run uses


VENDORS = {
    "stripe": Vendor("stripe.spec3.yaml", "/v1", "", SimpleNamespace(nullable="lenient", formats="assert")),
    "openai": Vendor("openai.openapi.yaml", "/v1", "/v1", SimpleNamespace(nullable="lenient", formats="assert")),
    "twilio": Vendor("twilio_api_v2010.json", "/2010-04-01", "", SimpleNamespace(nullable="lenient", formats="ignore")),
}


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str  # concrete, relative to the upstream url
    status: int
    media_type: str
    body: Any


def require_data() -> None:
    """Skip loudly without the shared data; in CI (CI=true) its absence is a failure."""
    if OPENAPI.is_dir():
        return
    message = (f"vendor conformance data not found at {OPENAPI}: these tests were SKIPPED. Put the "
               "project's shared/ folder (shared/conformance/openapi: Stripe, OpenAI, Twilio documents) "
               "beside the repository to run them")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: missing data is a failure)", pytrace=False)
    pytest.skip(message)


_LOADED: dict[tuple[str, str, str], Contract] = {}


def contract(name: str, options: Any = None) -> Contract:
    vendor = VENDORS[name]
    options = options or vendor.options
    key = (name, options.nullable, options.formats)
    if key not in _LOADED:
        _LOADED[key] = load_contract(OPENAPI / vendor.file, contracts_dir=OPENAPI, base_path=vendor.base_path,
                                     options=options)
    return _LOADED[key]


def _concrete(template: str) -> str:
    return template.replace("{", "p").replace("}", "")


def examples(doc: dict[str, Any], name: str) -> Iterator[tuple[str, str, int, str, Any, Any]]:
    """(method, relative template, status, media type, example value, response schema)."""
    vendor = VENDORS[name]
    for template, item in doc["paths"].items():
        for method, op in item.items():
            if method.upper() not in ("GET", "POST", "PUT", "DELETE", "PATCH"):
                continue
            rel = relative_template(template, vendor.server, vendor.base_path)
            for status, response in op.get("responses", {}).items():
                for mtype, media in response.get("content", {}).items():
                    values = [media["example"]] if "example" in media else []
                    values += [e["value"] for e in (media.get("examples") or {}).values() if "value" in e]
                    for value in values:
                        yield method.upper(), rel, int(status), mtype, value, media.get("schema")
            meta = op.get("x-oaiMeta") or {}
            entries = meta.get("examples")
            for entry in [entries] if isinstance(entries, dict) else entries or []:
                if not isinstance(entry.get("response"), str):
                    continue
                try:
                    value = json.loads(entry["response"])
                except ValueError:
                    continue  # prose or elided ("...") responses
                ok = sorted(k for k in op["responses"] if str(k).startswith("2"))
                schema = op["responses"][ok[0]].get("content", {}).get("application/json", {}).get("schema")
                yield method.upper(), rel, int(ok[0]), "application/json", value, schema


def cases(name: str) -> list[Case]:
    doc = read_document(OPENAPI / VENDORS[name].file)
    if name == "stripe":
        fixtures = orjson.loads((OPENAPI / FIXTURES).read_bytes())
        return [Case(c.id, c.method, c.path, 200, "application/json", c.body) for c in fixture_cases(doc, fixtures)]
    found, seen = [], Counter()
    for method, rel, status, mtype, value, _ in examples(doc, name):
        key = f"{method} {rel} {status} {mtype}"
        seen[key] += 1
        found.append(Case(f"{key} #{seen[key]}", method, _concrete(rel), status, mtype, value))
    return found


def verdicts(name: str, options: Any = None) -> dict[str, tuple[str, list[str]]]:
    """case id -> (outcome, ["instance_path keyword schema_path", ...])."""
    c = contract(name, options)
    found = {}
    for case in cases(name):
        op = c.match(case.method, case.path)
        if op is None:
            found[case.id] = ("no operation", [])
            continue
        result = op.check(case.status, case.media_type, orjson.dumps(case.body))
        found[case.id] = (result.outcome, [f"{v.instance_path or '/'} {v.keyword} {v.schema_path}"
                                           for v in result.violations])
    return found


def faults() -> dict[str, dict[str, dict[str, str]]]:
    return json.loads(FAULTS.read_text())
