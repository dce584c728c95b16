"""One operation of a contract and the check of a response against it (the hot path).

Status: exact code, then `2XX`-style range, then `default`.  Content: a response declared
without content accepts any body; otherwise the media type must be covered by a declared one
(exact, then `type/*`, then `*/*`).  JSON media types (application/json, `+json`) are parsed
(`body.py`) and validated against the entry's schema if it has one; other types are only
checked for their media type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from egress.contracts.body import BodyError, parse_json
from egress.contracts.compiler import CompiledSchema
from egress.contracts.drift import DriftFinder
from egress.contracts.explain import empty_verdict
from egress.contracts.media import is_json, media_type, select
from egress.contracts.results import UNMATCHED, VALID, CheckResult

MODES = ("enforce", "report", "off")


@dataclass(frozen=True, slots=True)
class MediaSpec:
    """A declared media range and its compiled schema (None: any body of that type)."""

    media_range: str
    schema: CompiledSchema | None
    drift: DriftFinder | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ResponseSpec:
    """What a status (or range, or default) may carry; `content` None means no content declared."""

    status_key: str
    content: dict[str, MediaSpec] | None


@dataclass(frozen=True, slots=True)
class Operation:
    """`GET /charges/{id}`: its responses by exact status, by range (`2`), and default."""

    method: str
    path: str
    mode: str | None
    exact: dict[int, ResponseSpec]
    ranges: dict[int, ResponseSpec]
    default: ResponseSpec | None
    # check.response_facts' memo: (status, content type, first Content-Type) -> what it read
    facts: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def template(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def responses(self) -> tuple[ResponseSpec, ...]:
        return (*self.exact.values(), *self.ranges.values(), *((self.default,) if self.default else ()))

    def response_for(self, status: int) -> ResponseSpec | None:
        return self.exact.get(status) or self.ranges.get(status // 100) or self.default

    def check(self, status: int, content_type: str | None, body: bytes, *, max_depth: int = 64,
              max_violations: int = 10, drift: bool = False, max_drift: int = 20) -> CheckResult:
        """Judge one response.  The result never contains a value taken from the body."""
        spec = self.response_for(status)
        entry = select(spec.content, content_type) if spec is not None and spec.content else None
        return check_read(spec, entry, is_json(media_type(content_type)), body, max_depth=max_depth,
                          max_violations=max_violations, drift=drift, max_drift=max_drift)


def check_read(spec: ResponseSpec | None, entry: MediaSpec | None, json: bool, body: bytes, *,
               max_depth: int = 64, max_violations: int = 10, drift: bool = False,
               max_drift: int = 20) -> CheckResult:
    """Operation.check of a response whose facts are already read (check.ResponseFacts): `spec`
    its status's response_for, `entry` the declared media entry select() chose for its content
    type (None: none covers it, or no content declared), `json` whether that type is JSON."""
    if spec is None:
        return UNMATCHED
    if not spec.content:  # None: no content declared; {}: declared empty
        return VALID
    if entry is None:
        declared = ", ".join(spec.content)
        return CheckResult("violated", "unexpected_content_type",
                           detail=f"content type not among the declared ({declared})")
    if not json:
        return VALID
    try:
        instance = parse_json(body, max_depth)
    except BodyError as exc:
        return CheckResult("violated", "invalid_json", detail=str(exc))
    return _judge(entry, instance, max_depth, max_violations, drift, max_drift)


def _judge(entry: MediaSpec, instance: Any, max_depth: int, max_violations: int, drift: bool,
           max_drift: int) -> CheckResult:
    schema = entry.schema
    if schema is None:  # any body of the type (the loader gives a drift finder only with a schema)
        return VALID
    drifted: tuple[str, ...] = ()
    if drift and entry.drift is not None:
        drifted = entry.drift.find(instance, max_depth=max_depth, limit=max_drift)
    try:
        if schema.is_valid(instance):
            return CheckResult("valid", drift=drifted) if drifted else VALID
        violations = schema.violations(instance, max_violations)
    except (ValueError, TypeError, OverflowError) as exc:  # a value the validator cannot represent
        return CheckResult("violated", "invalid_json", detail=f"unsupported JSON value ({type(exc).__name__})")
    if not violations:  # "invalid" with no error: never a refusal that lists nothing
        return empty_verdict(schema.doc_uri, schema.pointer, drifted)
    return CheckResult("violated", "contract_violation", violations, drifted)
