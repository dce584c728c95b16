"""Check: what came back from the provider — redirects, encoding, size, JSON, status, contract.

Reads the upstream response and the matched contract operation; writes the contract
result, violations and drift onto the exchange; raises RedirectBlocked, ResponseTooLarge,
UnexpectedContentEncoding, ProxyOverloaded, and in enforce mode ContractViolation /
InvalidJson / UnexpectedContentType.  Messages and events carry pointers and keywords,
never values.

- Every 3xx but 304 is a redirect (300, 305, 306 and unknown codes included).
- The body is decoded as the caller's client would decode it (bodies.StreamDecoder: every
  Content-Encoding field, every gzip member) and bounded, in every mode; the decoded bytes
  count against the process-wide in-flight budget (send/inflight.py).
- In enforce mode a 2xx/3xx the operation does not declare (no code, range or default) is a
  violation (keyword `status`); an undeclared 4xx/5xx passes as `unmatched`.
- Several differing Content-Type fields are refused in enforce mode (`unexpected_content_type`).
"""

from __future__ import annotations

from typing import NamedTuple, NoReturn

from yarl import URL

from egress.config import Upstream
from egress.contracts.items import streamed
from egress.contracts.media import is_json, media_type, select_media
from egress.contracts.operation import check_read
from egress.contracts.results import CheckResult, Violation
from egress.errors import (
    ContractViolation,
    InvalidJson,
    ProxyOverloaded,
    RedirectBlocked,
    ResponseTooLarge,
    UnexpectedContentType,
)
from egress.exchange import Exchange
from egress.routes import Router
from egress.send import bodies
from egress.send.client import UpstreamResponse, is_redirect
from egress.send.inflight import Hold

_ENFORCE_ERRORS = {
    "contract_violation": ContractViolation,
    "invalid_json": InvalidJson,
    "unexpected_content_type": UnexpectedContentType,
}


class Checked(NamedTuple):
    """A decoded body (a value: immutable; a NamedTuple, built at a third of a frozen
    dataclass's cost, once per buffered answer)."""

    body: bytes  # decoded body
    encoded: bool  # resp.body is still content-encoded (decoded differs)
    hold: Hold | None = None  # this body's share of the in-flight budget (respond gives it back)

    def release(self) -> None:
        """Give the budget back now (the exchange ends without forwarding this body)."""
        if self.hold is not None:
            self.hold.release()


def check_redirect(resp: UpstreamResponse, router: Router, ex: Exchange) -> None:
    """A 3xx may go back to the caller only if its Location is an allowlisted upstream, read
    both as sent and as a client that decodes and normalizes it would follow it (`/v1/%2e%2e/x`)."""
    if not is_redirect(resp.status):
        return
    location = resp.headers.get("Location")
    if location is None:
        return
    try:
        targets = [resp.url.join(URL(location.strip(), encoded=raw)) for raw in (True, False)]
    except (ValueError, TypeError):  # not a URL at all
        _redirect_blocked(resp, ex, "?")
    if any(router.upstream_for_url(target) is None for target in targets):
        _redirect_blocked(resp, ex, targets[0].scheme)


def _redirect_blocked(resp: UpstreamResponse, ex: Exchange, scheme: str) -> NoReturn:
    ex.event("egress.redirect_blocked", status=resp.status, scheme=scheme[:16])
    raise RedirectBlocked("the provider redirected outside the allowlisted upstreams")


def decode_body(resp: UpstreamResponse, up: Upstream, ex: Exchange, hold: Hold | None = None) -> Checked:
    """Decode every coding of every Content-Encoding field under max_decompressed_bytes;
    the decoded bytes (or the body itself) are taken from `hold` as they appear."""
    cap = up.limits.max_decompressed_bytes
    fields = resp.headers.getall("Content-Encoding", [])
    codings = bodies.parse_encodings(fields) if fields else None
    # no field, or only `identity` / empty ones: the body itself, no decoder set up
    decoder = bodies.StreamDecoder(codings, cap) if codings else None
    try:
        if decoder is None:
            decoded = resp.body
            if hold is not None:
                hold.grow(len(decoded))
        else:
            parts = []
            for start in range(0, len(resp.body), bodies.CHUNK):
                parts.append(decoder.feed(resp.body[start:start + bodies.CHUNK]))
                if hold is not None:
                    hold.grow(len(parts[-1]))
            parts.append(decoder.finish())
            if hold is not None:
                hold.grow(len(parts[-1]))
            decoded = b"".join(parts)
            del parts
    except BaseException as exc:
        if hold is not None:
            hold.release()
        if isinstance(exc, ResponseTooLarge):
            ex.event("egress.limit_exceeded", limit="max_decompressed_bytes", value=cap)
        elif isinstance(exc, ProxyOverloaded):
            ex.event("egress.limit_exceeded", limit="max_inflight_bytes", value=hold.limit)  # only a hold raises it
        raise
    ex.response_bytes = len(decoded)
    return Checked(decoded, decoded is not resp.body, hold)


def content_type_of(headers) -> str | None:
    """The one Content-Type of these headers; None when absent.  Several differing: `_AMBIGUOUS`."""
    values = headers.getall("Content-Type", [])
    if len({v.strip().lower() for v in values}) > 1:
        return _AMBIGUOUS
    return values[0] if values else None


_AMBIGUOUS = "\x00ambiguous"
AMBIGUOUS = _AMBIGUOUS  # what content_type_of says for several differing Content-Type fields


class ResponseFacts:
    """What one response is, read once from its status and headers: the pass-through decision
    (passthrough.py), the stream test (contracts.items.streamed) and check_contract all use it.

    A value: set at construction, never changed.  `op` and `headers` are what it was read from
    (check_contract reads again for any other response)."""

    __slots__ = ("content_type", "entry", "headers", "json", "op", "sequential", "spec", "status")

    def __init__(self, op, status: int, headers, content_type: str | None, json: bool, spec, entry,
                 sequential: bool) -> None:
        self.op, self.status, self.headers = op, status, headers
        self.content_type = content_type  # content_type_of(headers): None, one value, or AMBIGUOUS
        self.json = json  # is_json(media_type(content_type))
        self.spec = spec  # op.response_for(status); None without an operation or undeclared
        self.entry = entry  # select(spec.content, content_type) when content is declared, else None
        self.sequential = sequential  # contracts.items.streamed(status, media of the first field)

    def of(self, op, resp: UpstreamResponse) -> bool:
        """Whether these are the facts of this operation's response (else they are read again)."""
        return self.op is op and self.headers is resp.headers and self.status == resp.status


def response_facts(op, status: int, headers) -> ResponseFacts:
    """Read a response's facts once (see ResponseFacts); `op` is a contracts.Operation or None.
    What they depend on (the operation, the status and the Content-Type fields) is read once per
    operation and kept (`Operation.facts`, bounded; a value too long to be a real media type is
    never kept)."""
    values = headers.getall("Content-Type", ())
    first = values[0] if values else None
    content_type = first if len(values) < 2 else content_type_of(headers)
    memo = op.facts if op is not None else _NO_OPERATION_FACTS
    key = (status, content_type, first)
    read = memo.get(key)
    if read is None:
        read = _read_facts(op, status, content_type, first)
        if len(memo) >= _FACTS_MEMO:
            memo.clear()
        if len(first or "") <= _FACTS_LONGEST and len(content_type or "") <= _FACTS_LONGEST:
            memo[key] = read
    return ResponseFacts(op, status, headers, content_type, *read)


_FACTS_MEMO, _FACTS_LONGEST = 256, 256
_NO_OPERATION_FACTS: dict = {}


def _read_facts(op, status: int, content_type: str | None, first: str | None) -> tuple:
    """(json, spec, entry, sequential) of ResponseFacts, read from what they depend on."""
    media = media_type(content_type)
    spec = op.response_for(status) if op is not None else None
    return (is_json(media), spec,
            select_media(spec.content, media) if spec is not None and spec.content else None,
            # the stream test reads the first field, as stream_kind(headers.get("Content-Type")) does
            streamed(status, media if first is content_type else media_type(first)))


def check_contract(op, resp: UpstreamResponse, body: bytes, up: Upstream, ex: Exchange,
                   *, drift: bool = False, facts: ResponseFacts | None = None) -> str:
    """Validate against the operation; returns the effective mode's verdict for the exchange.

    `op` is a contracts.Operation or None (no contract operation matched); `facts` what the
    pass-through decision already read of this response (read here when absent or another's)."""
    if op is None:
        ex.contract = "unmatched"
        return ex.contract
    mode = op.mode or up.mode
    if mode == "off":
        ex.contract = "unchecked"
        return ex.contract
    if facts is None or not facts.of(op, resp):
        facts = response_facts(op, resp.status, resp.headers)
    if facts.spec is None and resp.status < 400:  # a 2xx/3xx the operation does not declare
        result = CheckResult("violated", "contract_violation", (Violation(
            "", "status", "/responses", f"status {resp.status} is not declared by the operation"),))
    elif facts.content_type is _AMBIGUOUS:
        result = CheckResult("violated", "unexpected_content_type", detail="several differing Content-Type fields")
    else:
        result = check_read(facts.spec, facts.entry, facts.json, body,
                            max_depth=up.limits.max_json_depth, max_violations=up.limits.max_violations,
                            drift=drift)
    if result.outcome == "unmatched":
        ex.event("egress.contract_unmatched", anomaly=False, status=resp.status)
    if result.drift:
        ex.event("egress.contract_drift", anomaly=False, fields=list(result.drift))
    if result.outcome != "violated":
        ex.contract = result.outcome
        return ex.contract
    ex.contract = "violated"
    violations = [
        {"instance_path": v.instance_path, "schema_path": v.schema_path, "keyword": v.keyword,
         "message": v.message}
        for v in result.violations
    ]
    for v in violations:
        ex.event("egress.contract_violation", reason=result.reason, **v)
    if not violations:
        ex.event("egress.contract_violation", reason=result.reason, instance_path="",
                 schema_path="", keyword=result.reason)
    if mode == "enforce":
        error = _ENFORCE_ERRORS[result.reason]  # a violated result always has a reason, each one mapped
        raise error(f"the response of {op.template} (status {resp.status}) failed its contract",
                    extra={"violations": violations, "operation": op.template})
    return ex.contract
