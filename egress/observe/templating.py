"""Bounded operation names for labels: path templating and a per-upstream cap on operations.

An exchange matched to a contract operation is named by its template (`GET /charges/{id}`).
Without one, the raw path is templated here: segments that look like identifiers (digits,
UUIDs, hex runs of 8+, letter+digit tokens, long mixed-case tokens, anything with characters outside
`[A-Za-z0-9._~-]`) become `{id}`, and so do words that look like secrets: a known credential
prefix (`sk_live_`, `ghp_`, `xoxb-`, `AKIA`, `eyJ`...) or a long piece of letters that reads as
random rather than as a word (few vowels, long consonant runs); they never reach `/metrics`, the
inventory or the access log verbatim.  At most `MAX_SEGMENTS` segments are kept.  Then
`OperationNames` caps the distinct names per upstream (beyond the cap: `other`), so metric
series, inventory entries and baselines stay bounded whatever paths callers send.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote

ID = "{id}"
OTHER = "other"
MAX_SEGMENTS = 8
MAX_WORD = 32  # a segment longer than this is an identifier, whatever it looks like

_WORD = re.compile(r"^[A-Za-z](?:[A-Za-z_.~-]*[A-Za-z])?[0-9]{0,2}$")  # "charges", "v1", "oauth2", "api-v2"
_DIGIT = re.compile(r"[0-9]")
_SAFE = re.compile(r"^[A-Za-z0-9._~-]+$")
_HEX = re.compile(r"^[0-9a-fA-F]{8,}$")
# credential prefixes of common providers (Stripe, GitHub, GitLab, Slack, AWS, Google, OpenAI,
# SendGrid, Shopify, webhook secrets) and a JWT's base64url `{"`
_SECRET_PREFIX = re.compile(
    r"^(?:(?:sk|pk|rk)_(?:live|test)_|sk-|whsec_|gh[pousr]_|github_pat_|glpat-|xox[abpors]-|shp(?:at|ss|ca|pa)_)"
    r"|^(?:AKIA|ASIA|AIza|SG\.|eyJ)")
_PIECES = re.compile(r"[_.~-]")
_VOWELS = re.compile(r"[aeiouy]")
RANDOM_PIECE = 10  # a piece of letters this long is checked for reading like a word


def looks_random(piece: str) -> bool:
    """Letters that read as random, not as a path word: under a quarter vowels, a run of five
    consonants, or three runs of three ("subscriptions" and "webhookendpoints" are words;
    about 85% of random 16-letter strings and 97% of 24-letter ones are not)."""
    low = piece.lower()
    runs = _VOWELS.split(low)
    vowels = len(runs) - 1
    return vowels < len(low) / 4 or max(map(len, runs)) >= 5 or sum(len(r) >= 3 for r in runs) >= 3


@lru_cache(maxsize=4096)  # path words repeat; ids (digits) never get here from template_segment
def looks_secret(segment: str) -> bool:
    if _SECRET_PREFIX.match(segment):
        return True
    if len(segment) < RANDOM_PIECE:
        return False
    return any(len(p) >= RANDOM_PIECE and p.isalpha() and looks_random(p) for p in _PIECES.split(segment))


SECRET = "{secret}"
_SUBSEGMENT = re.compile(r"[;=,]")


def mask_secrets(url: str) -> str:
    """A URL for a span's `url.full`: ordinary identifiers kept (on-call needs them), a path
    segment or matrix parameter that looks like a secret replaced by `{secret}`."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/") if sep else ("", "", url)
    out = [SECRET if any(looks_secret(p) for p in _SUBSEGMENT.split(unquote(seg)) if p) else seg
           for seg in path.split("/")]
    return (f"{scheme}://{host}{slash}" if sep else "") + "/".join(out)


def template_segment(segment: str) -> str:
    if not segment:
        return segment
    if len(segment) > MAX_WORD or not _SAFE.match(segment) or _HEX.match(segment):
        return ID
    if _WORD.match(segment):
        # long mixed-case words are tokens ("sk_live_AbCdEf..."), not path words
        if len(segment) >= 16 and not segment.islower() and not segment.isupper():
            return ID
        return ID if looks_secret(segment) else segment
    # digits, uuids (hex + dashes), mixed tokens like ch_1a2b3c, cus_ABC123, 2024-01-01
    if _DIGIT.search(segment):
        return ID
    return ID if looks_secret(segment) else segment


def template_path(path: str) -> str:
    """`/users/12345/orders/9f8e7d6c5b4a` -> `/users/{id}/orders/{id}` (query dropped)."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    parts = path.split("/")
    out = [template_segment(p) for p in parts[1:MAX_SEGMENTS + 1]]
    text = "/" + "/".join(out)
    if len(parts) > MAX_SEGMENTS + 1:
        text += "/..."
    return text


class OperationNames:
    """Label-safe operation names, at most `per_upstream` distinct ones per upstream.

    The first names seen keep their slot for the life of the process (a slot is never
    reassigned: a series never changes meaning); later names become `other`."""

    def __init__(self, per_upstream: int = 200, *, max_upstreams: int = 1000, cache_size: int = 4096) -> None:
        self.per_upstream = per_upstream
        self.max_upstreams = max_upstreams
        self._names: dict[str, set[str]] = {}
        self._cache: dict[tuple[str, str, str], str] = {}
        self._cache_size = cache_size

    def name(self, upstream: str, method: str, path: str, operation: str | None) -> str:
        """The bounded label for one exchange; "" when there is no upstream."""
        if not upstream:
            return ""
        key = (upstream, method, operation or path)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        candidate = operation if operation else f"{method} {template_path(path or '/')}"
        seen = self._names.get(upstream)
        if seen is None:
            if len(self._names) >= self.max_upstreams:
                return OTHER
            seen = self._names[upstream] = set()
        if candidate not in seen:
            if len(seen) >= self.per_upstream:
                candidate = OTHER
            else:
                seen.add(candidate)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[key] = candidate
        return candidate

    def count(self, upstream: str) -> int:
        return len(self._names.get(upstream, ()))
