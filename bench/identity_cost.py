"""What proving a caller costs: the caller stage (egress.identity.Identity.identify) per request,
CPU time, side by side for `identity: header` and `identity: jwt` with the JWKS cached.

    .venv/bin/python bench/identity_cost.py [--n 20000] [--repeat 5] [--json out.json]

Rows (best of --repeat runs, microseconds of process CPU per request):
  header                 X-Egress-Caller, unsigned (the default)
  jwt RS256 reused       one token per service, reused (the normal case: a projected token
                         lives ~1 h), verified once then served from the verified-token cache
  jwt ES256 reused       same, EC key
  jwt RS256 every token  a new token on every request: a full signature check each time
  jwt ES256 every token  same, EC key (P-256 verification is the dearer one)
  signature only RS256   the bare OpenSSL verification (cryptography) of those tokens: the floor
  signature only ES256   any verifier pays for a new token; the rest is egress's own work
The target (issue 15): a JWT-verified request costs <= 30 us more CPU than a header one.
Keys are made here; the JWKS is a file (cached after the first read): no network on the path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from multidict import CIMultiDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from egress.config import settings_from_dict  # noqa: E402
from egress.identity import Identity  # noqa: E402
from tests.identity_fakes import PATTERN, FakeIssuer  # noqa: E402

TARGET_US = 30.0


class _Request:
    """The parts of an inbound request the caller stage reads."""
    __slots__ = ("headers", "method", "raw_path", "transport")

    def __init__(self, headers: dict) -> None:
        self.headers, self.method, self.raw_path, self.transport = CIMultiDict(headers), "GET", "/pay/x", None


def _settings(tmp: Path, issuer: FakeIssuer | None):
    doc = {"upstreams": [{"name": "pay", "url": "https://api.pay.example"}]}
    if issuer is not None:
        (tmp / "jwks.json").write_text(json.dumps(issuer.jwks()))
        doc["callers"] = {"identity": "jwt", "jwt": {"caller_pattern": PATTERN, "issuers": [
            {"issuer": issuer.issuer, "jwks_file": "jwks.json", "audiences": ["egress"]}]}}
    return settings_from_dict(doc, base_dir=tmp, environ={})


async def _run(identity: Identity, requests: list[_Request]) -> float:
    """CPU microseconds per identify() over `requests`."""
    start = time.process_time()
    for request in requests:
        await identity.identify(request)
    return (time.process_time() - start) / len(requests) * 1e6


async def measure(n: int, repeat: int) -> dict[str, float]:
    issuer = FakeIssuer()
    issuer.add_key("r1", "RS256")
    issuer.add_key("e1", "ES256")
    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        header = Identity(_settings(Path(tmp), None))
        jwt = Identity(_settings(Path(tmp), issuer))
        await jwt.start()
        try:
            cases = {"header": (header, [_Request({"X-Egress-Caller": "checkout"})] * n)}
            for kid, alg in (("r1", "RS256"), ("e1", "ES256")):
                one = {"Authorization": "Bearer " + issuer.token(kid)}
                cases[f"jwt {alg} reused"] = (jwt, [_Request(one)] * n)
                fresh = max(200, n // 20)  # signing is dearer than verifying: fewer, distinct tokens
                cases[f"jwt {alg} every token"] = (jwt, [
                    _Request({"Authorization": "Bearer " + issuer.token(kid, extra={"jti": str(i)})})
                    for i in range(fresh)])
            floors = {f"signature only {alg}": _signature_floor(issuer, kid, alg)
                      for kid, alg in (("r1", "RS256"), ("e1", "ES256"))}
            for name, (identity, requests) in cases.items():
                best = float("inf")
                for _ in range(repeat):
                    jwt.jwt.forget()  # "every token" rows must verify each token, run after run
                    best = min(best, await _run(identity, requests))
                rows[name] = best
            for name, fn in floors.items():
                rows[name] = min(fn() for _ in range(repeat))
        finally:
            await jwt.close()
    return rows


def _signature_floor(issuer: FakeIssuer, kid: str, alg: str):
    import base64

    import jwt as pyjwt
    tokens = [issuer.token(kid, extra={"jti": str(i)}) for i in range(200)]
    algorithm = pyjwt.get_algorithm_by_name(alg)
    public = issuer.keys[kid][0].public_key()
    parts = [(f"{h}.{p}".encode(), base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
             for h, p, s in (t.split(".") for t in tokens)]

    def run() -> float:
        start = time.process_time()
        for message, signature in parts:
            assert algorithm.verify(message, public, signature)
        return (time.process_time() - start) / len(parts) * 1e6
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rows = asyncio.run(measure(args.n, args.repeat))
    base = rows["header"]
    print(f"{'caller stage':24} {'us CPU/request':>15} {'vs header':>10}")
    for name, us in rows.items():
        print(f"{name:24} {us:15.2f} {us - base if name.startswith('jwt') else 0:+10.2f}")
    reused = max(v for k, v in rows.items() if k.endswith("reused")) - base
    every = max(v for k, v in rows.items() if k.endswith("every token")) - base
    own = max(rows[f"jwt {a} every token"] - rows[f"signature only {a}"] for a in ("RS256", "ES256")) - base
    print(f"\nJWT over header: +{reused:.1f} us (token reused), +{every:.1f} us (new token each request); "
          f"target <= {TARGET_US:.0f} us: {'met' if reused <= TARGET_US else 'NOT met'} for reused tokens, "
          f"{'met' if every <= TARGET_US else 'NOT met'} for a new token on every request "
          f"(of which egress's own work beyond the signature check: +{own:.1f} us)")
    if args.json:
        args.json.write_text(json.dumps({"us_cpu_per_request": rows, "target_us": TARGET_US}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
