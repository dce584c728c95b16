"""Cost of the issue-12 request-side checks, side by side with the code before them (in process).

Per request: Sanitizer.headers (names compared with `_` as `-`, the credential header's
spellings), Sanitizer.query (`;` pairs, `[]` suffixes), Sanitizer.path (internal JWTs in the
path; new) and templating.template_segment (secret-looking words; uncached, the worst case).
The "before" modules are the ones at commit 92b321f, loaded from git into their own namespaces.

    .venv/bin/python bench/request_side_cost.py [--n 20000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

from multidict import CIMultiDict

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BEFORE = "92b321f"

from egress.config import settings_from_dict  # noqa: E402
from egress.exchange import Exchange  # noqa: E402
from egress.observe import templating  # noqa: E402
from egress import sanitize  # noqa: E402


def old_module(path: str, name: str) -> types.ModuleType:
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{BEFORE}:{path}"], check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType(name)
    exec(compile(source, f"{BEFORE}:{path}", "exec"), module.__dict__)
    return module


SETTINGS = settings_from_dict({
    "sanitize": {"internal_jwt_issuers": ["https://auth.internal.example"]},
    "upstreams": [{"name": "pay", "url": "https://api.pay.example/v1",
                   "credential": {"header": "X-Api-Key", "value": "partner-key-0123456789"}}],
}, base_dir=REPO, environ={})
UP = SETTINGS.upstreams[0]
HEADERS = CIMultiDict([("Host", "egress"), ("User-Agent", "python-requests/2.32"), ("Accept", "application/json"),
                       ("Accept-Encoding", "gzip"), ("Content-Type", "application/json"),
                       ("X-Egress-Caller", "checkout"), ("X-Request-Id", "3f2a9c1e-77b0-4a55-9f1e-0c2d6a1b8e44"),
                       ("Authorization", "Bearer internal"),
                       ("traceparent", "00-" + "a" * 32 + "-" + "b" * 16 + "-01")])
QUERY = "limit=20&starting_after=ch_1a2b3c&expand[]=data.customer"
PATH = "/charges/ch_1a2b3c/refunds"
SEGMENTS = ["charges", "ch_1a2b3c", "refunds", "paymentMethods", "subscriptions", "v1"]


def per_call(fn, n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def side_by_side(before, after, n: int, rounds: int = 7) -> tuple[float | None, float]:
    """Alternate before/after rounds (the machine is shared); the best round of each."""
    b, a = [], []
    for _ in range(rounds):
        if before is not None:
            b.append(per_call(before, max(1, n // rounds)))
        a.append(per_call(after, max(1, n // rounds)))
    return (min(b) if b else None), min(a)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    n = ap.parse_args().n
    old_san = old_module("egress/sanitize.py", "sanitize_before")
    old_tpl = old_module("egress/observe/templating.py", "templating_before")
    s0, s1 = old_san.Sanitizer(SETTINGS), sanitize.Sanitizer(SETTINGS)

    def ex():
        return Exchange("GET")
    checks = [
        (f"headers ({len(HEADERS)})", lambda: s0.headers(HEADERS, UP, ex()), lambda: s1.headers(HEADERS, UP, ex())),
        ("query (3 pairs)", lambda: s0.query(QUERY, ex()), lambda: s1.query(QUERY, ex())),
        ("path (new check)", None, lambda: s1.path(PATH, ex())),
        (f"template {len(SEGMENTS)} segments", lambda: [old_tpl.template_segment(x) for x in SEGMENTS],
         lambda: [templating.template_segment(x) for x in SEGMENTS]),
        ("template, cached (per request)", None,
         lambda: NAMES.name("pay", "GET", PATH, None)),
    ]
    print(f"{'check':32} {'before us':>10} {'after us':>10} {'ratio':>6}")
    total_before = total_after = 0.0
    for name, before, after in checks:
        b, a = side_by_side(before, after, n)
        ratio = f"{a / b:.2f}" if b else "new"
        print(f"{name:32} {b if b is not None else float('nan'):10.2f} {a:10.2f} {ratio:>6}")
        if "segments" not in name and "cached" not in name:
            total_before += b or 0.0
            total_after += a
    print(f"{'per request (headers + query + path)':46} +{total_after - total_before:.2f} us")


NAMES = templating.OperationNames()


if __name__ == "__main__":
    main()
