"""The values a contract check produces: CheckResult and Violation (no instance value ever inside)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: "unchecked": the validator could not give a verdict (our internal error, logged and counted)
Outcome = Literal["valid", "violated", "unmatched", "unchecked"]
Reason = Literal["contract_violation", "unexpected_content_type", "invalid_json"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a response broke its schema.

    instance_path: RFC 6901 pointer into the response body; array indices kept, property names
        kept only when the contract declares them somewhere, any other name replaced by `*`.
    keyword: the failing JSON Schema keyword ("required", "type", ...).
    schema_path: RFC 6901 pointer to the keyword, inside the document that holds it (the OpenAPI
        document, the schema file, or the inline schema of a compact contract).
    message: written from the schema only.
    """

    instance_path: str
    keyword: str
    schema_path: str
    message: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict on one response: outcome, the refusal reason if any, violations and drift pointers."""

    outcome: Outcome
    reason: Reason | None = None
    violations: tuple[Violation, ...] = ()
    drift: tuple[str, ...] = ()
    #: a short description of a non-schema failure (invalid_json, unexpected_content_type); no body content
    detail: str | None = None


VALID = CheckResult("valid")
UNMATCHED = CheckResult("unmatched")
