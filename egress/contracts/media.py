"""Media types: parsing a Content-Type header and choosing the declared entry that covers it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TypeVar

T = TypeVar("T")


@lru_cache(maxsize=512)  # one response asks up to five times; a provider sends few distinct values
def media_type(content_type: str | None) -> str | None:
    """`type/subtype` in lower case, parameters dropped; None when absent or malformed."""
    if not content_type:
        return None
    value = content_type.split(";", 1)[0].strip().lower()
    if value.count("/") != 1 or not all(value.split("/")):
        return None
    return value


def is_json(mtype: str | None) -> bool:
    """application/json and any `+json` structured syntax suffix type (RFC 6839)."""
    if mtype is None:
        return False
    return mtype == "application/json" or mtype.endswith("+json")


def _specificity(declared: str, actual: str) -> int:
    """2 exact, 1 `type/*`, 0 `*/*`, -1 no match."""
    if declared == actual:
        return 2
    top, _, sub = declared.partition("/")
    if sub == "*" and top == "*":
        return 0
    if sub == "*" and actual.partition("/")[0] == top:
        return 1
    return -1


def select(declared: Mapping[str, T], content_type: str | None) -> T | None:
    """The entry whose (lower-case, parameter-free) key best covers the actual content type."""
    return select_media(declared, media_type(content_type))


def select_media(declared: Mapping[str, T], actual: str | None) -> T | None:
    """select() for a content type already parsed (`media_type(content_type)`)."""
    if actual in declared:  # exact: no key scores higher, and no other key equals it
        return declared[actual]
    best, best_score = None, -1
    for key, entry in declared.items():
        if actual is None:
            score = 0 if key == "*/*" else -1
        else:
            score = _specificity(key, actual)
        if score > best_score:
            best, best_score = entry, score
    return best


def normalize_declared(keys: Sequence[str]) -> list[str]:
    """Declared media ranges as matched: lower case, parameters dropped (invalid ones left as written)."""
    return [media_type(k) or k.strip().lower() for k in keys]
