"""`egress contracts check UPSTREAM METHOD PATH STATUS FILE`: judge a saved body offline.

Exit codes: 0 valid, 1 violated (one line per problem), 2 usage: no such operation, no response
declared for the status, or an unreadable file.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from egress.contracts.loader import Contract


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
        content_type = "application/json" if file.suffix.lower() == ".json" else mimetypes.guess_type(file.name)[0]
    result = op.check(status, content_type, body, drift=True)
    if result.outcome == "unmatched":
        return 2, [f"{op.template}: no response declared for status {status}"]
    lines = [f"{op.template} {status}: {result.outcome}" + (f" ({result.reason})" if result.reason else "")]
    if result.detail:
        lines.append(f"  {result.detail}")
    lines += [f"  {v.instance_path or '/'}: {v.message} [{v.keyword} at {v.schema_path}]" for v in result.violations]
    lines += [f"  drift: {d}" for d in result.drift]
    return (0 if result.outcome == "valid" else 1), lines
