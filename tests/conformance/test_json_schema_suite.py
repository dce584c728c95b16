"""Every case of the official JSON Schema Test Suite (draft2020-12, draft7, optional/ included)
through the contracts' own compile-and-check path, with known divergences listed and re-checked."""

from __future__ import annotations

import pytest

from .hotpath import body_of, operation_for
from .suite import SUITE, cases, remotes

pytestmark = pytest.mark.skipif(not SUITE.is_dir(), reason="shared/conformance not beside the repo")

#: case id -> why our verdict differs from the suite's.  Asserted to still differ.
_FORMATS = ("email", "idn-email", "regex", "ipv4", "ipv6", "idn-hostname", "hostname", "date", "date-time",
            "time", "json-pointer", "relative-json-pointer", "iri", "iri-reference", "uri", "uri-reference",
            "uri-template", "uuid", "duration")
KNOWN_DIVERGENT: dict[str, str] = {
    f"draft2020-12/format.json::{name} format::invalid {name} string is only an annotation by default":
        "contracts assert formats (validate_formats=True by design); the suite's default treats "
        "2020-12 format as an annotation"
    for name in _FORMATS
}

_REMOTES = remotes() if SUITE.is_dir() else {}
_CASES = cases("draft2020-12") + cases("draft7") if SUITE.is_dir() else []
_OPS: dict[int, object] = {}


def _verdict(case) -> bool | str:
    key = id(case.schema)
    if key not in _OPS:
        try:
            _OPS[key] = operation_for(case.schema, _REMOTES)
        except Exception as exc:  # noqa: BLE001 - recorded as a verdict
            _OPS[key] = exc
    op = _OPS[key]
    if isinstance(op, Exception):
        return f"compile error: {op}"
    result = op.check(200, "application/json", body_of(case.data))
    return result.outcome == "valid"


@pytest.mark.parametrize("case", _CASES, ids=[c.id for c in _CASES])
def test_suite_case(case) -> None:
    verdict = _verdict(case)
    if case.id in KNOWN_DIVERGENT:
        assert verdict != case.valid, f"no longer divergent, remove from KNOWN_DIVERGENT: {case.id}"
    else:
        assert verdict == case.valid


def test_known_divergent_ids_exist() -> None:
    ids = {c.id for c in _CASES}
    assert set(KNOWN_DIVERGENT) <= ids
