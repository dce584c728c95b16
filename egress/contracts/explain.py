"""jsonschema-rs errors -> Violations that explain themselves, also under `anyOf`/`oneOf`.

"X or null" and "id or expanded object" (`anyOf`) are the most common shapes in vendor documents,
and "not valid under any of the schemas" at the parent says nothing.  For an `anyOf` or `oneOf`
that no branch matched, the branch that came closest is reported with its own errors (recursively):
the branch whose errors sit deepest in the instance, preferring one that got past its `type`
check, then the one with fewer errors.  The message names the branch and says that no branch
matched; a `oneOf` that several branches matched says so at the parent.  Messages come from the
schema only (`messages.py`), never from the instance.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from typing import Any

from egress.contracts.messages import instance_pointer, keyword_of, message_for, schema_pointer
from egress.contracts.results import CheckResult, Violation

log = logging.getLogger("egress.contracts")
#: how many times the validator said "invalid" and gave no error, in this process (see empty_verdict)
EMPTY_VERDICTS = {"count": 0}

_BRANCHING = {"AnyOf": "anyOf", "OneOfNotValid": "oneOf"}  # error kind class -> keyword
_MAX_NESTING = 16


def _score(errors: list[Any]) -> tuple[int, int, int]:
    if not errors:
        return (-1, 0, 0)
    depth = max(len(e.instance_path) for e in errors)
    past_type = int(any(e.kind.name != "type" for e in errors))
    return (depth, past_type, -len(errors))


def _closest(error: Any) -> tuple[int, list[Any]] | None:
    try:
        branches = [list(b) for b in (error.kind.context or ())]
    except Exception:  # noqa: BLE001 - a kind without branch errors
        return None
    if not branches:
        return None
    index = max(range(len(branches)), key=lambda i: _score(branches[i]))
    return (index, branches[index]) if branches[index] else None


def _flatten(error: Any, note: str, nesting: int) -> Iterable[tuple[Any, str]]:
    name = type(error.kind).__name__
    found = _closest(error) if name in _BRANCHING and nesting < _MAX_NESTING else None
    if found is None:
        yield error, note
        return
    index, errors = found
    total = len(error.kind.context)
    where = f"{_BRANCHING[name]} branch {index}, the closest of {total}; no branch matched"
    for sub in errors:
        yield from _flatten(sub, f"{note}; {where}" if note else where, nesting + 1)


def violations_of(errors: Iterable[Any], limit: int, declared: Collection[str], skip: int = 0) -> tuple[Violation, ...]:
    """At most `limit` Violations; `skip` leading instance tokens are a wrapper of ours."""
    found: list[Violation] = []
    if limit <= 0:
        return ()
    for top in errors:
        for error, note in _flatten(top, "", 0):
            keyword = keyword_of(error.kind.name, error.schema_path)
            message = message_for(keyword, error.kind)
            if type(error.kind).__name__ == "OneOfMultipleValid":
                keyword, message = "oneOf", "matches more than one oneOf branch; exactly one must match"
            found.append(Violation(
                instance_path=instance_pointer(list(error.instance_path)[skip:], declared),
                keyword=keyword,
                schema_path=schema_pointer(error.schema_path),
                message=f"{message} ({note})" if note else message,
            ))
            if len(found) >= limit:
                return tuple(found)
    return tuple(found)


def empty_verdict(doc_uri: str, pointer: str, drift: tuple[str, ...] = ()) -> CheckResult:
    """The validator found the body invalid but gave no error: our bug, not the provider's.

    Logged (schema location only) and counted; the response is passed as `unchecked`, never
    refused with an empty violation list."""
    EMPTY_VERDICTS["count"] += 1
    log.error("contract validator reported invalid with no errors", extra={
        "event": "contract_empty_verdict", "schema": f"{doc_uri.rsplit('/', 1)[-1]}#{pointer}",
        "count": EMPTY_VERDICTS["count"]})
    return CheckResult("unchecked", drift=drift,
                       detail="the validator reported the body invalid without any error (an egress bug; logged)")
