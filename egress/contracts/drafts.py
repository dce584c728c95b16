"""What the format readers (compact, OpenAPI) produce before compiling: operations, responses, schemas by location."""

from __future__ import annotations

import re
from dataclasses import dataclass

METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")
_STATUS = re.compile(r"[1-5][0-9][0-9]|[1-5]XX", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SchemaAt:
    """A schema by location: the document's URI and the pointer of the schema inside it."""

    doc_uri: str
    pointer: str


@dataclass(frozen=True, slots=True)
class MediaDraft:
    media_range: str
    schema: SchemaAt | None


@dataclass(frozen=True, slots=True)
class ResponseDraft:
    status_key: str  # "200", "2XX", "default"
    where: str  # file#pointer for problems
    content: tuple[MediaDraft, ...] | None  # None: no content declared (any body)


@dataclass(frozen=True, slots=True)
class OperationDraft:
    method: str
    path: str  # relative to the upstream url
    mode: str | None
    where: str
    responses: tuple[ResponseDraft, ...]


def status_key(key: object) -> str | None:
    """The normalized status key ("200", "2XX", "default"), or None when it is not one."""
    text = str(key)
    if text.lower() == "default":
        return "default"
    if isinstance(key, (str, int)) and not isinstance(key, bool) and _STATUS.fullmatch(text):
        return text.upper()
    return None
