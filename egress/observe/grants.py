"""Granted vs used: per grantee (caller, `scope:NAME`, `*`) of an upstream's `grants`, the entries
configured, how often each let a request through (and for which callers), and those never used,
so a platform team can tighten grants to what is really called (inventory.py shows it)."""

from __future__ import annotations


def grants_report(configured: dict[str, tuple[str, ...]], used: dict[tuple[str, str, str], int]) -> dict:
    """`configured`: grantee -> entries; `used`: (grantee, entry, caller) -> count."""
    out: dict[str, dict] = {}
    for who, entries in sorted(configured.items()):
        counts: dict[str, int] = {}
        by_caller: dict[str, int] = {}
        for (w, entry, caller), n in used.items():
            if w == who:
                counts[entry] = counts.get(entry, 0) + n
                by_caller[caller] = by_caller.get(caller, 0) + n
        out[who] = {"granted": list(entries), "used": dict(sorted(counts.items())),
                    "unused": [e for e in entries if e not in counts], "callers": dict(sorted(by_caller.items()))}
    return out
