"""A response is read once (check.ResponseFacts): the proof that reading it once answers as reading it
each time did.

The pass-through decision (passthrough.stream_if), the stream test the pipeline asks after it, and
check_contract used to read the Content-Type, the operation's response for the status and the declared
media entry each on their own.  Below, that code is kept as it was (ORACLE: `old_*`, copied from the
commit before the cut) and compared with the new one over a grid of methods x statuses x Content-Type
fields x contract shapes x modes: the same pass-through vs buffered choice, the same stream test, and
from check_contract the same verdict, events, refusal, reason and `extra` — with the facts the decision
read, with none, and with the facts of another response (which must be read again, not trusted).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from egress import check, passthrough
from egress.config import settings_from_dict
from egress.contracts.body import BodyError, parse_json
from egress.contracts.items import stream_kind
from egress.contracts.media import _specificity, is_json, media_type, select
from egress.contracts.operation import MediaSpec, Operation, ResponseSpec, _judge
from egress.contracts.results import UNMATCHED, VALID, CheckResult, Violation
from egress.errors import EgressError
from egress.exchange import Exchange
from egress.send.client import UpstreamResponse, is_redirect
from tests.conftest import base_config
from tests.unit.contracts.helpers import compact, contract

JSON, OCTET, CSV, SSE = "application/json", "application/octet-stream", "text/csv", "text/event-stream"

# --- ORACLE: the code before the cut, verbatim but for names ------------------------------------

_NO_BODY = frozenset({204, 205, 304})


def old_select(declared, content_type):
    actual = media_type(content_type)
    best, best_score = None, -1
    for key, entry in declared.items():
        score = (0 if key == "*/*" else -1) if actual is None else _specificity(key, actual)
        if score > best_score:
            best, best_score = entry, score
    return best


def old_content_type_of(headers):
    values = headers.getall("Content-Type", [])
    if len({v.strip().lower() for v in values}) > 1:
        return check.AMBIGUOUS
    return values[0] if values else None


def old_sequential(status, headers):
    return 200 <= status < 300 and status not in (204, 205) and stream_kind(headers.get("Content-Type")) is not None


def old_wanted(op, up, method, status, headers, *, has_contract, keep_unmatched):
    if method == "HEAD" or status in _NO_BODY or is_redirect(status) or status == 429 \
            or status in up.retry.on_status:
        return False
    if not has_contract or ((op.mode or up.mode) if op is not None else up.mode) == "off":
        return True
    content_type = old_content_type_of(headers)
    learn = keep_unmatched and is_json(media_type(content_type))
    if op is None:
        return not learn
    spec = op.response_for(status)
    if spec is None:
        return status >= 400 and not learn
    if content_type is check.AMBIGUOUS:
        return False
    if not spec.content:
        return True
    return old_select(spec.content, content_type) is not None and not is_json(media_type(content_type))


def old_operation_check(op, status, content_type, body, *, max_depth=64, max_violations=10, drift=False,
                        max_drift=20):
    spec = op.response_for(status)
    if spec is None:
        return UNMATCHED
    if not spec.content:
        return VALID
    entry = old_select(spec.content, content_type)
    if entry is None:
        declared = ", ".join(spec.content)
        return CheckResult("violated", "unexpected_content_type",
                           detail=f"content type not among the declared ({declared})")
    if not is_json(media_type(content_type)):
        return VALID
    try:
        instance = parse_json(body, max_depth)
    except BodyError as exc:
        return CheckResult("violated", "invalid_json", detail=str(exc))
    return _judge(entry, instance, max_depth, max_violations, drift, max_drift)


def old_check_contract(op, resp, body, up, ex, *, drift=False):
    if op is None:
        ex.contract = "unmatched"
        return ex.contract
    mode = op.mode or up.mode
    if mode == "off":
        ex.contract = "unchecked"
        return ex.contract
    content_type = old_content_type_of(resp.headers)
    result = None
    if op.response_for(resp.status) is None and resp.status < 400:
        result = CheckResult("violated", "contract_violation", (Violation(
            "", "status", "/responses", f"status {resp.status} is not declared by the operation"),))
    if result is None and content_type is check.AMBIGUOUS:
        result = CheckResult("violated", "unexpected_content_type", detail="several differing Content-Type fields")
    if result is None:
        result = old_operation_check(op, resp.status, content_type, body, max_depth=up.limits.max_json_depth,
                                     max_violations=up.limits.max_violations, drift=drift)
    if result.outcome == "unmatched":
        ex.event("egress.contract_unmatched", anomaly=False, status=resp.status)
    if result.drift:
        ex.event("egress.contract_drift", anomaly=False, fields=list(result.drift))
    if result.outcome != "violated":
        ex.contract = result.outcome
        return ex.contract
    ex.contract = "violated"
    violations = [{"instance_path": v.instance_path, "schema_path": v.schema_path, "keyword": v.keyword,
                   "message": v.message} for v in result.violations]
    for v in violations:
        ex.event("egress.contract_violation", reason=result.reason, **v)
    if not violations:
        ex.event("egress.contract_violation", reason=result.reason, instance_path="", schema_path="",
                 keyword=result.reason)
    if mode == "enforce":
        error = check._ENFORCE_ERRORS[result.reason]
        raise error(f"the response of {op.template} (status {resp.status}) failed its contract",
                    extra={"violations": violations, "operation": op.template})
    return ex.contract


# --- the grid -----------------------------------------------------------------------------------

METHODS = ("GET", "HEAD", "POST")
STATUSES = (200, 201, 204, 205, 206, 299, 300, 301, 304, 399, 400, 404, 429, 500, 502, 503, 599)
CONTENT_TYPES = (
    (), (JSON,), ("application/json; charset=utf-8",), ("Application/JSON",), ("application/problem+json",),
    (OCTET,), (CSV,), ("image/png",), (SSE,), ("application/x-ndjson; charset=utf-8",), (OCTET, JSON),
    (OCTET, OCTET.upper()), (SSE, JSON), (JSON, " application/json "), ("garbage",), ("",),
)
BODIES = (b'{"f0": 1}', b'{"f0": "s"}', b'{"f0": 1, "f0": 2}', b"not json", b"")
SCHEMA = {"type": "object", "properties": {"f0": {"type": "integer"}}}


def headers(types) -> CIMultiDictProxy:
    return CIMultiDictProxy(CIMultiDict([("Content-Type", t) for t in types]))


def upstream(mode: str, on_status=None):
    entry = {"name": "u", "url": "https://api.example/v1", "callers": ["*"], "mode": mode}
    if on_status is not None:
        entry["retry"] = {"on_status": on_status}
    return settings_from_dict(base_config([entry]), base_dir=Path("."), environ={}).upstreams[0]


def shapes(tmp_path) -> dict:
    """Contract shapes: declared exactly, by range, by default, without content, with empty content,
    any type, a type range beside JSON, a stream, and the operation's own mode over the upstream's."""
    validated = contract(tmp_path, compact(SCHEMA)).match("GET", "/x").response_for(200).content[JSON]
    assert validated.schema is not None

    def spec(key, content):
        return ResponseSpec(key, None if content is None else {k: v or MediaSpec(k, None) for k, v in content.items()})

    def operation(exact=None, ranges=None, default=None, mode=None):
        return Operation("GET", "/x", mode, exact or {}, ranges or {}, default)

    json_200 = {"exact": {200: spec("200", {JSON: validated})}, "ranges": {4: spec("4XX", {JSON: None})}}
    return {
        "no-operation": None,
        "json-200-and-4xx": operation(**json_200),
        "json-by-default": operation(default=spec("default", {JSON: validated})),
        "octet-by-2xx-range": operation(ranges={2: spec("2XX", {OCTET: None})}),
        "no-content-declared": operation(exact={200: spec("200", None), 204: spec("204", None)}),
        "empty-content": operation(exact={200: spec("200", {})}),
        "any-type": operation(exact={200: spec("200", {"*/*": None})}, default=spec("default", {JSON: None})),
        "image-range-beside-json": operation(exact={200: spec("200", {"image/*": None, JSON: validated})}),
        "sse-stream": operation(exact={200: spec("200", {SSE: None}), 500: spec("500", {JSON: None})}),
        "operation-off": operation(**json_200, mode="off"),
        "operation-report": operation(**json_200, mode="report"),
        "operation-enforce": operation(**json_200, mode="enforce"),
    }


SHAPES = ("no-operation", "json-200-and-4xx", "json-by-default", "octet-by-2xx-range", "no-content-declared",
          "empty-content", "any-type", "image-range-beside-json", "sse-stream", "operation-off", "operation-report",
          "operation-enforce")
UPSTREAMS = (("enforce", None), ("report", None), ("off", None), ("enforce", [500, 502]))


@pytest.mark.parametrize("shape", SHAPES)
def test_the_decision_is_the_old_wanted_and_sequential(tmp_path, shape):
    op = shapes(tmp_path)[shape]
    ups = [upstream(mode, on_status) for mode, on_status in UPSTREAMS]
    compared = streamed = 0
    mismatches = []
    for up, method, status, types, has_contract, keep in itertools.product(
            ups, METHODS, STATUSES, CONTENT_TYPES, (True, False), (True, False)):
        h = headers(types)
        old = old_sequential(status, h) or old_wanted(op, up, method, status, h, has_contract=has_contract,
                                                      keep_unmatched=keep)
        decision = passthrough.stream_if(op, up, method, has_contract=has_contract, keep_unmatched=keep)
        new = decision(status, h)
        facts = decision.facts
        answers = (new, facts.sequential, passthrough.wanted(op, up, method, status, h, has_contract=has_contract,
                                                             keep_unmatched=keep))
        expected = (old, old_sequential(status, h),
                    old_wanted(op, up, method, status, h, has_contract=has_contract, keep_unmatched=keep))
        if answers != expected or facts.content_type != old_content_type_of(h):
            mismatches.append((up.mode, up.retry.on_status, method, status, types, has_contract, keep, answers,
                               expected))
        compared += 1
        streamed += new
    assert mismatches == []
    assert compared == len(UPSTREAMS) * len(METHODS) * len(STATUSES) * len(CONTENT_TYPES) * 4
    assert 0 < streamed < compared  # the grid holds both answers


def response(status, types, body=b"") -> UpstreamResponse:
    return UpstreamResponse(status, headers(types), body, URL("https://api.example/v1/x"))


def outcome(fn, *args, **kwargs):
    """What a check_contract call did: its verdict or refusal, and what it wrote on the exchange."""
    ex = Exchange("GET")
    try:
        answer = ("verdict", fn(*args, ex, **kwargs))
    except EgressError as err:
        answer = ("refused", type(err), err.reason, err.status, str(err), err.extra)
    return answer, ex.contract, [(e.name, e.attrs) for e in ex.events], ex.anomalous


@pytest.mark.parametrize("shape", [s for s in SHAPES if s != "no-operation"])
def test_check_contract_answers_as_before_with_and_without_the_facts(tmp_path, shape):
    op = shapes(tmp_path)[shape]
    other = response(200, (CSV,))  # another response: its facts must not be trusted for this one
    verdicts = set()
    mismatches = []
    ups = [upstream(mode, on_status) for mode, on_status in UPSTREAMS[:3]]
    for up, status, types, body, drift in itertools.product(ups, STATUSES, CONTENT_TYPES, BODIES, (False, True)):
        resp = response(status, types, body)
        decision = passthrough.stream_if(op, up, "GET", has_contract=True, keep_unmatched=False)
        decision(resp.status, resp.headers)
        stale = check.response_facts(op, other.status, other.headers)
        expected = outcome(old_check_contract, op, resp, body, up, drift=drift)
        for facts in (decision.facts_of(resp), None, stale, check.response_facts(None, status, resp.headers)):
            got = outcome(check.check_contract, op, resp, body, up, drift=drift, facts=facts)
            if got != expected:
                mismatches.append((up.mode, status, types, body, drift, facts is None, got, expected))
        verdicts.add(expected[0][0] if expected[0][0] == "refused" else expected[1])
    assert mismatches == []
    # the grid reaches the answers the shape can give: refusals wherever enforce mode applies
    if shape == "operation-off":
        assert verdicts == {"unchecked"}
    elif shape == "operation-report":
        assert "violated" in verdicts and "refused" not in verdicts
    else:
        assert {"refused", "valid"} <= verdicts


def test_facts_of_a_decided_response_are_the_ones_read_then(tmp_path):
    op = shapes(tmp_path)["json-200-and-4xx"]
    decision = passthrough.stream_if(op, upstream("enforce"), "GET", has_contract=True, keep_unmatched=False)
    resp = response(200, (JSON,))
    assert decision(resp.status, resp.headers) is False
    read = decision.facts
    assert decision.facts_of(resp) is read  # not read again
    assert (read.content_type, read.json, read.spec, read.sequential) == (JSON, True, op.response_for(200), False)
    assert read.entry is op.response_for(200).content[JSON]
    # a response it did not decide (another attempt's, or a 401 answered again) is read anew
    again = response(200, (JSON,))
    fresh = decision.facts_of(again)
    assert fresh is not read and fresh.headers is again.headers and fresh.entry is read.entry
    assert decision.facts_of(response(404, (JSON,))).spec is op.response_for(404)
    undecided = passthrough.stream_if(op, upstream("enforce"), "GET", has_contract=True, keep_unmatched=False)
    assert undecided.facts is None and undecided.facts_of(resp).content_type == JSON
    assert not read.of(None, resp) and not read.of(op, again) and read.of(op, resp)


DECLARED = [{"application/json": 1}, {"*/*": 1, "application/json": 2}, {"text/*": 1, "text/csv": 2, "*/*": 3},
            {"image/*": 1}, {"*/*": 1}, {}, {"Application/JSON": 1}]


@pytest.mark.parametrize("declared", DECLARED, ids=[",".join(d) or "none" for d in DECLARED])
def test_select_with_its_exact_fast_path_is_the_old_select(declared):
    for types in CONTENT_TYPES + (("*/*",), ("text/csv; q=1",), ("TEXT/HTML",)):
        content_type = types[0] if types else None
        assert select(declared, content_type) == old_select(declared, content_type), content_type


@pytest.mark.parametrize("types,content_type,first_is_stream", [
    ((), None, False),
    ((JSON,), JSON, False),
    ((SSE, JSON), check.AMBIGUOUS, True),  # the stream test reads the first field, as before
    ((JSON, SSE), check.AMBIGUOUS, False),
    ((SSE, SSE.upper()), SSE, True),  # the same value twice is one Content-Type
], ids=["absent", "one", "sse-first-of-two", "json-first-of-two", "same-twice"])
def test_content_type_fields_read_once(types, content_type, first_is_stream):
    facts = check.response_facts(None, 200, headers(types))
    assert facts.content_type == content_type and facts.sequential is first_is_stream
    assert facts.json is (content_type == JSON) and facts.spec is None and facts.entry is None



def test_no_operation_is_unmatched_with_or_without_facts():
    up, resp = upstream("enforce"), response(200, (JSON,), b"{}")
    for facts in (None, check.response_facts(None, 200, resp.headers)):
        assert outcome(check.check_contract, None, resp, b"{}", up, facts=facts) == \
            outcome(old_check_contract, None, resp, b"{}", up) == (("verdict", "unmatched"), "unmatched", [], False)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_memo_answers_as_a_fresh_read_and_stays_bounded(tmp_path, shape):
    """check.response_facts keeps what it read per operation (Operation.facts): a second response
    with the same status and Content-Type fields gets the same facts as a fresh read; a provider
    that sends ever new types never grows the memo past its bound; a long value is not kept."""
    op = shapes(tmp_path)[shape]
    memo = op.facts if op is not None else check._NO_OPERATION_FACTS
    memo.clear()

    def read(facts):
        return facts.content_type, facts.json, facts.spec, facts.entry, facts.sequential

    for status, types in itertools.product(STATUSES, CONTENT_TYPES):
        once, twice = (check.response_facts(op, status, headers(types)) for _ in range(2))
        first = types[0] if types else None
        fresh = check._read_facts(op, status, once.content_type, first)
        assert read(once) == read(twice) == (once.content_type, *fresh)
        assert twice.headers is not once.headers and twice.status == status and twice.op is op
    assert memo  # the memo was used, not bypassed
    for i in range(3 * check._FACTS_MEMO):
        check.response_facts(op, 200, headers((f"application/x-{i}+json",)))
        assert len(memo) <= check._FACTS_MEMO
    memo.clear()
    long_type = "application/json; x=" + "a" * check._FACTS_LONGEST
    assert check.response_facts(op, 200, headers((long_type,))).json is True
    assert memo == {}
