"""Check: what came back from the provider — redirects, encoding, size, JSON, contract.

Reads the upstream response and the matched contract operation; writes the contract
result, violations and drift onto the exchange; raises RedirectBlocked, ResponseTooLarge,
UnexpectedContentEncoding, and in enforce mode ContractViolation / InvalidJson /
UnexpectedContentType.  Messages and events carry pointers and keywords, never values.
"""

from __future__ import annotations

from dataclasses import dataclass

from yarl import URL

from egress.config import Upstream
from egress.errors import ContractViolation, InvalidJson, RedirectBlocked, ResponseTooLarge, UnexpectedContentType
from egress.exchange import Exchange
from egress.routes import Router
from egress.send import bodies
from egress.send.client import REDIRECT_STATUSES, UpstreamResponse

_ENFORCE_ERRORS = {
    "contract_violation": ContractViolation,
    "invalid_json": InvalidJson,
    "unexpected_content_type": UnexpectedContentType,
}


@dataclass(frozen=True, slots=True)
class Checked:
    body: bytes  # decoded body
    encoded: bool  # resp.body is still content-encoded (decoded differs)


def check_redirect(resp: UpstreamResponse, router: Router, ex: Exchange) -> None:
    """A 3xx may go back to the caller only if its Location is an allowlisted upstream."""
    if resp.status not in REDIRECT_STATUSES:
        return
    location = resp.headers.get("Location")
    if location is None:
        return
    try:
        target = resp.url.join(URL(location.strip(), encoded=True))
    except (ValueError, TypeError):
        target = None
    if target is None or router.upstream_for_url(target) is None:
        scheme = target.scheme if target is not None else "?"
        ex.event("egress.redirect_blocked", status=resp.status, scheme=scheme[:16])
        raise RedirectBlocked("the provider redirected outside the allowlisted upstreams")


def decode_body(resp: UpstreamResponse, up: Upstream, ex: Exchange) -> Checked:
    encoding = resp.headers.get("Content-Encoding")
    try:
        decoded = bodies.decode(resp.body, encoding, up.limits.max_decompressed_bytes)
    except ResponseTooLarge:
        ex.event("egress.limit_exceeded", limit="max_decompressed_bytes", value=up.limits.max_decompressed_bytes)
        raise
    ex.response_bytes = len(decoded)
    return Checked(decoded, decoded is not resp.body)


def check_contract(op, resp: UpstreamResponse, body: bytes, up: Upstream, ex: Exchange,
                   *, drift: bool = False) -> str:
    """Validate against the operation; returns the effective mode's verdict for the exchange.

    `op` is a contracts.Operation or None (no contract operation matched)."""
    if op is None:
        ex.contract = "unmatched"
        return ex.contract
    mode = op.mode or up.mode
    if mode == "off":
        ex.contract = "unchecked"
        return ex.contract
    result = op.check(resp.status, resp.headers.get("Content-Type"), body,
                      max_depth=up.limits.max_json_depth, max_violations=up.limits.max_violations,
                      drift=drift)
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
                 schema_path="", keyword=result.reason or "")
    if mode == "enforce":
        error = _ENFORCE_ERRORS.get(result.reason or "contract_violation", ContractViolation)
        raise error(f"the response of {op.template} (status {resp.status}) failed its contract",
                    extra={"violations": violations, "operation": op.template})
    return ex.contract
