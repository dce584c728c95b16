"""Differential: the Python `jsonschema` package and the hot path agree on verdicts, over the suite
(formats asserted on both sides) and over hypothesis-generated bodies against a few schemas."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .hotpath import body_of, operation_for
from .suite import SUITE, cases, remotes

pytestmark = pytest.mark.skipif(not SUITE.is_dir(), reason="shared/conformance not beside the repo")

#: suite files where the two libraries are known to disagree, and why (asserted still to disagree)
KNOWN_DISAGREEMENT = {
    "optional/format/": "format checkers differ in strictness (jsonschema's need optional extras)",
    "optional/ecmascript-regex.json": "Python re vs ECMA regex dialects",
    "vocabulary.json": "custom meta-schema vocabularies",
    "optional/content.json": "content assertion",
    "optional/dependencies-compatibility.json": "jsonschema-rs (like the suite) honours draft7 `dependencies` in 2020-12",
}


def _python_verdict(schema, data, registry) -> bool | None:
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER).is_valid(data)
    except Exception:  # noqa: BLE001 - treated as no verdict
        return None


def test_suite_verdicts_agree() -> None:
    registry = Registry().with_resources(
        (uri, Resource.from_contents(doc, default_specification=DRAFT202012)) for uri, doc in remotes().items())
    ops: dict[int, object] = {}
    disagreements, compared = [], 0
    for case in cases("draft2020-12") + cases("draft7"):
        if "/format.json::" in case.id:
            continue  # both assert formats here; covered by the suite test
        if id(case.schema) not in ops:
            try:
                ops[id(case.schema)] = operation_for(case.schema, remotes())
            except Exception:  # noqa: BLE001
                ops[id(case.schema)] = None
        op = ops[id(case.schema)]
        python = _python_verdict(case.schema, case.data, registry)
        if op is None or python is None:
            continue
        ours = op.check(200, "application/json", body_of(case.data)).outcome == "valid"
        compared += 1
        if ours != python:
            disagreements.append(case.id)
    unexplained = [d for d in disagreements if not any(k in d for k in KNOWN_DISAGREEMENT)]
    print(f"\ncompared {compared} suite verdicts; {len(disagreements)} disagreements, all in known files")
    assert compared > 3000
    assert unexplained == [], "\n".join(unexplained)
    stale = [k for k in KNOWN_DISAGREEMENT if not any(k in d for d in disagreements)]
    assert stale == [], f"no longer disagreeing, remove: {stale}"


SCHEMAS = {
    "charge": {"type": "object", "required": ["id", "amount"],
                   "properties": {"id": {"type": "string", "pattern": "^ch_"}, "amount": {"type": "integer", "minimum": 0},
                                  "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                                  "meta": {"type": ["object", "null"], "additionalProperties": {"type": "integer"}}}},
    "union": {"oneOf": [{"type": "integer", "multipleOf": 3}, {"type": "string", "maxLength": 2},
                        {"type": "array", "uniqueItems": True}]},
    "nested": {"type": "array", "items": {"type": "object", "properties": {"a": {"$ref": "#"}},
                                          "additionalProperties": False}},
}

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**20) | st.floats(-1e6, 1e6)
    | st.text(max_size=5) | st.sampled_from(["ch_1", "ch_", "x"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["id", "amount", "tags", "meta", "a", "k"]), children, max_size=5),
    max_leaves=20,
)


# floats stay well inside 2**53: beyond it `multipleOf` on binary floats differs between the two
# libraries (jsonschema-rs accepts 4.704672774936603e16 as a multiple of 3, Python does not).
@pytest.mark.parametrize("name", list(SCHEMAS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_json)
def test_generated_bodies_agree(name, data) -> None:
    schema = SCHEMAS[name]
    op = _OPS.setdefault(name, operation_for(schema))
    ours = op.check(200, "application/json", json.dumps(data).encode()).outcome == "valid"
    assert ours == jsonschema.Draft202012Validator(schema).is_valid(data)


_OPS: dict[str, object] = {}
