"""Which responses stream through unchecked (passthrough.wanted / stream_if) and which are read whole.

A wrong "stream" skips a contract check (a violating body would reach the caller); a wrong "read whole"
buffers a download.  Each named case states the outcome and why."""

from __future__ import annotations

from pathlib import Path

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from egress.config import settings_from_dict
from egress.contracts.operation import MediaSpec, Operation, ResponseSpec
from egress.passthrough import stream_if, wanted
from tests.conftest import base_config

JSON, OCTET, CSV = "application/json", "application/octet-stream", "text/csv"


def upstream(mode: str = "enforce"):
    doc = base_config([{"name": "u", "url": "https://api.example/v1", "callers": ["*"], "mode": mode}])
    return settings_from_dict(doc, base_dir=Path("."), environ={}).upstreams[0]


def op(content, *, status: int = 200, mode: str | None = None) -> Operation:
    """GET /x answering `status` with `content` (media range -> schema or None; None: no content)."""
    spec = ResponseSpec(str(status), None if content is None else {k: MediaSpec(k, None) for k in content})
    return Operation("GET", "/x", mode, {status: spec}, {}, None)


def headers(*content_types: str) -> CIMultiDictProxy:
    return CIMultiDictProxy(CIMultiDict([("Content-Type", c) for c in content_types]))


JSON_OP = op([JSON])
CASES = [
    # id, operation, upstream mode, method, status, content types, has contract, keep unmatched, streamed
    ("no-contract", None, "enforce", "GET", 200, [JSON], False, False, True),
    ("no-contract-4xx-not-retried", None, "enforce", "GET", 404, [JSON], False, False, True),
    ("head-has-no-body", None, "off", "HEAD", 200, [OCTET], False, False, False),
    ("204-has-no-body", None, "off", "GET", 204, [], False, False, False),
    ("205-has-no-body", None, "off", "GET", 205, [], False, False, False),
    ("304-has-no-body", None, "off", "GET", 304, [], False, False, False),
    ("301-redirect-policy-reads-it", None, "off", "GET", 301, [OCTET], False, False, False),
    ("300-redirect-policy-reads-it", None, "off", "GET", 300, [OCTET], False, False, False),
    ("399-redirect-policy-reads-it", None, "off", "GET", 399, [OCTET], False, False, False),
    ("429-may-be-retried", None, "off", "GET", 429, [OCTET], False, False, False),
    ("503-may-be-retried", None, "off", "GET", 503, [OCTET], False, False, False),
    ("500-is-not-retried", None, "off", "GET", 500, [OCTET], False, False, True),
    ("upstream-mode-off", JSON_OP, "off", "GET", 200, [JSON], True, False, True),
    ("operation-mode-off", op([JSON], mode="off"), "enforce", "GET", 200, [JSON], True, False, True),
    ("operation-enforce-over-upstream-off", op([JSON], mode="enforce"), "off", "GET", 200, [JSON], True, False,
     False),
    ("operation-report-json-validated", op([JSON], mode="report"), "enforce", "GET", 200, [JSON], True, False,
     False),
    ("unmatched-allow", None, "enforce", "GET", 200, [JSON], True, False, True),
    ("unmatched-upstream-off-recorder-json", None, "off", "GET", 200, [JSON], True, True, True),
    ("unmatched-recorder-wants-json-whole", None, "enforce", "GET", 200, [JSON], True, True, False),
    ("unmatched-recorder-problem-json-whole", None, "report", "GET", 200, ["application/problem+json"], True, True,
     False),
    ("unmatched-recorder-binary-streams", None, "enforce", "GET", 200, [OCTET], True, True, True),
    ("undeclared-2xx-is-a-violation", JSON_OP, "enforce", "GET", 201, [OCTET], True, False, False),
    ("undeclared-3xx-304-is-read-whole", JSON_OP, "enforce", "GET", 304, [], True, False, False),
    ("undeclared-404-passes-unmatched", JSON_OP, "enforce", "GET", 404, [JSON], True, False, True),
    ("undeclared-400-passes-unmatched", JSON_OP, "enforce", "GET", 400, [CSV], True, False, True),
    ("undeclared-404-recorder-wants-json", JSON_OP, "enforce", "GET", 404, [JSON], True, True, False),
    ("undeclared-404-recorder-binary", JSON_OP, "enforce", "GET", 404, [OCTET], True, True, True),
    ("declared-json-validated", JSON_OP, "enforce", "GET", 200, [JSON + "; charset=utf-8"], True, False, False),
    ("declared-json-report-validated", JSON_OP, "report", "GET", 200, [JSON], True, False, False),
    ("declared-binary", op([OCTET]), "enforce", "GET", 200, [OCTET], True, False, True),
    ("declared-image-range", op(["image/*"]), "enforce", "GET", 200, ["image/png"], True, False, True),
    ("declared-any-got-binary", op(["*/*"]), "enforce", "GET", 200, [CSV], True, False, True),
    ("declared-any-got-json-validated", op(["*/*"]), "enforce", "GET", 200, ["application/vnd.x+json"], True,
     False, False),
    ("undeclared-type-refused-whole", JSON_OP, "enforce", "GET", 200, [CSV], True, False, False),
    ("undeclared-type-on-binary-route", op([OCTET]), "enforce", "GET", 200, [JSON], True, False, False),
    ("no-type-on-binary-route", op([OCTET]), "enforce", "GET", 200, [], True, False, False),
    ("several-types-refused-whole", op([OCTET, JSON]), "enforce", "GET", 200, [OCTET, JSON], True, False, False),
    ("several-types-same-value", op([OCTET]), "enforce", "GET", 200, [OCTET, OCTET.upper()], True, False, True),
    ("declared-without-content", op(None), "enforce", "GET", 200, [JSON], True, False, True),
    ("declared-with-empty-content", op([]), "enforce", "GET", 200, [JSON], True, False, True),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_which_bodies_stream(case):
    name, operation, mode, method, status, types, has_contract, keep, streamed = case
    up = upstream(mode)
    assert wanted(operation, up, method, status, headers(*types), has_contract=has_contract,
                  keep_unmatched=keep) is streamed
    # the send stage's hook says the same (these are not sequential media types)
    decide = stream_if(operation, up, method, has_contract=has_contract, keep_unmatched=keep)
    assert decide(status, headers(*types)) is streamed


SEQUENTIAL = [
    # id, status, content type, streamed (a 2xx by stream_respond, which refuses an undeclared type itself)
    ("sse-2xx", 200, "text/event-stream", True),
    ("ndjson-2xx", 206, "application/x-ndjson", True),
    ("sse-204-no-body", 204, "text/event-stream", False),
    ("sse-4xx-undeclared-type-read-whole", 400, "text/event-stream", False),
]


@pytest.mark.parametrize("case", SEQUENTIAL, ids=[c[0] for c in SEQUENTIAL])
def test_sequential_streams_go_to_stream_respond(case):
    name, status, ctype, streamed = case
    json_everywhere = Operation("GET", "/x", None, {}, {}, ResponseSpec("default", {JSON: MediaSpec(JSON, None)}))
    decide = stream_if(json_everywhere, upstream(), "GET", has_contract=True, keep_unmatched=False)
    assert decide(status, headers(ctype)) is streamed
