"""`egress contracts check UPSTREAM METHOD PATH STATUS FILE`: judge a saved body offline.

Exit codes: 0 valid, 1 violated (one line per problem), 2 usage: no such operation, no response
declared for the status, or an unreadable file.  A stream (`.sse`, `.ndjson`, `.jsonl`, or a
sequential `--content-type`) is framed and each item checked, as the proxy does.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from egress.contracts.items import ItemTooLarge, check_item, framer_for, plan_stream
from egress.contracts.loader import Contract

_STREAM_SUFFIXES = {".sse": "text/event-stream", ".ndjson": "application/x-ndjson", ".jsonl": "application/jsonl"}


def check_file(contract: Contract, method: str, path: str, status: int, file: Path,
               content_type: str | None = None) -> tuple[int, list[str]]:
    """(exit code, lines) for one body file; content type from the argument or the file suffix."""
    op = contract.match(method, path)
    if op is None:
        return 2, [f"no operation matches {method.upper()} {path}"]
    try:
        body = file.read_bytes()
    except OSError as exc:
        return 2, [f"cannot read {file}: {exc.strerror}"]
    if content_type is None:
        suffix = file.suffix.lower()
        content_type = _STREAM_SUFFIXES.get(suffix) or (
            "application/json" if suffix == ".json" else mimetypes.guess_type(file.name)[0])
    plan = plan_stream(op, "enforce", status, content_type, has_contract=True)
    if plan is not None:
        return _check_stream(op.template, status, plan, body)
    result = op.check(status, content_type, body, drift=True)
    if result.outcome == "unmatched":
        return 2, [f"{op.template}: no response declared for status {status}"]
    lines = [f"{op.template} {status}: {result.outcome}" + (f" ({result.reason})" if result.reason else "")]
    if result.detail:
        lines.append(f"  {result.detail}")
    lines += [f"  {v.instance_path or '/'}: {v.message} [{v.keyword} at {v.schema_path}]" for v in result.violations]
    lines += [f"  drift: {d}" for d in result.drift]
    return (0 if result.outcome == "valid" else 1), lines


def _check_stream(template: str, status: int, plan, body: bytes) -> tuple[int, list[str]]:
    if plan.outcome == "unmatched":
        return 2, [f"{template}: no response declared for status {status}"]
    if plan.reason is not None:
        return 1, [f"{template} {status}: violated ({plan.reason})"]
    framer = framer_for(plan.kind, len(body) + 1)
    try:
        items = framer.feed(body) + framer.finish()
    except ItemTooLarge:  # pragma: no cover - the cap is the whole file
        items = []
    lines, bad = [], 0
    for index, item in enumerate(items):
        result = check_item(item, plan.schema) if plan.checked else None
        if result is None or result.outcome == "valid":
            continue
        bad += 1
        lines.append(f"  item {index}: {result.reason}" + (f" ({result.detail})" if result.detail else ""))
        lines += [f"    {v.instance_path or '/'}: {v.message} [{v.keyword} at {v.schema_path}]"
                  for v in result.violations]
    verdict = "violated" if bad else "valid"
    return (1 if bad else 0), [f"{template} {status}: {verdict} ({len(items)} items, {bad} in breach)", *lines]
