"""What the benchmark serves and how every target is configured, written into one work dir.

    bodies()                       -> {"charge": bytes, ...}   deterministic JSON (+ invalid twins)
    write_docroot(dir)             the fake provider's files (nginx serves them as they are)
    nginx_conf(dir, port, otlp)    nginx: the provider on `port`, an OTLP/HTTP sink on `otlp`
    egress_config(...)             an egress config with the full pipeline (see docs/performance.md)
    many_operations_contract(dir)  1,000 templated operations for the memory scenario
    internal_jwt()                 an internal token the sanitizer must strip from every request

The bodies match bench/contracts/ (compact) and bench/contracts/payments.openapi.yaml (for
Prism); `bench/bench.py` checks that before it measures anything.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
CONTRACTS = HERE / "contracts"
INTERNAL_ISSUER = "https://auth.internal.example"
MANY_OPERATIONS = 1000

_WORDS = ("annual plan renewal for workspace seats and storage add-on billed monthly "
          "order shipped express priority handling gift wrap requested by customer").split()


def _ts(rng: random.Random) -> str:
    base = datetime(2024, 3, 1, tzinfo=timezone.utc)
    return (base + timedelta(seconds=rng.randrange(0, 90 * 86400))).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ident(rng: random.Random, prefix: str, n: int = 24) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(rng.choice(alphabet) for _ in range(n))


def charge(rng: random.Random, *, metadata_keys: int, refunds: int) -> dict:
    amount = rng.randrange(100, 500000)
    refunded = [{"id": _ident(rng, "re_"), "amount": rng.randrange(1, amount), "status": "succeeded",
                 "created": _ts(rng), "reason": rng.choice(["duplicate", "requested_by_customer"])}
                for _ in range(refunds)]
    return {
        "id": _ident(rng, "ch_"), "object": "charge", "amount": amount, "amount_captured": amount,
        "amount_refunded": sum(r["amount"] for r in refunded), "currency": rng.choice(["usd", "eur", "gbp"]),
        "status": "succeeded", "created": _ts(rng), "livemode": False, "paid": True, "captured": True,
        "refunded": False, "customer": _ident(rng, "cus_", 14),
        "description": " ".join(rng.choice(_WORDS) for _ in range(12)),
        "receipt_email": f"buyer{rng.randrange(10**6)}@example.com",
        "receipt_url": f"https://pay.example.com/receipts/{_ident(rng, 'rcpt_', 32)}",
        "statement_descriptor": "EXAMPLE STORE",
        "billing_details": {
            "name": "Jane Q. Customer", "email": "jane@example.com", "phone": "+15555550123",
            "address": {"line1": f"{rng.randrange(1, 999)} Market Street", "line2": "Suite 400",
                        "city": "San Francisco", "state": "CA", "postal_code": "94103", "country": "US"}},
        "payment_method_details": {"type": "card", "card": {
            "brand": rng.choice(["visa", "mastercard", "amex"]), "last4": f"{rng.randrange(10000):04d}",
            "exp_month": rng.randrange(1, 13), "exp_year": rng.randrange(2026, 2032), "funding": "credit",
            "country": "US", "fingerprint": _ident(rng, "", 16),
            "checks": {"cvc_check": "pass", "address_line1_check": "pass", "address_postal_code_check": "unavailable"}}},
        "outcome": {"network_status": "approved_by_network", "risk_level": "normal",
                    "risk_score": rng.randrange(0, 60), "seller_message": "Payment complete.", "type": "authorized"},
        "refunds": {"object": "list", "data": refunded, "has_more": False},
        "metadata": {f"key_{i}": " ".join(rng.choice(_WORDS) for _ in range(3)) for i in range(metadata_keys)},
    }


def bodies() -> dict[str, bytes]:
    """charge (~1.3 KB), charge_invalid, list (~65 KB, 30 charges), list_invalid: one bad field each."""
    rng = random.Random(20240301)
    one = charge(rng, metadata_keys=2, refunds=0)
    many = {"object": "list", "data": [charge(rng, metadata_keys=12, refunds=4) for _ in range(30)],
            "has_more": True, "next_cursor": _ident(rng, "cur_", 20)}
    bad_one = json.loads(json.dumps(one))
    bad_one["currency"] = "USD"                               # pattern ^[a-z]{3}$
    bad_many = json.loads(json.dumps(many))
    bad_many["data"][17]["payment_method_details"]["card"]["exp_month"] = 13   # maximum 12
    return {name: orjson.dumps(doc) for name, doc in
            (("charge", one), ("charge_invalid", bad_one), ("list", many), ("list_invalid", bad_many))}


# what each body is requested as, relative to a target's base (the contract's paths)
PATHS = {"charge": "/charges/ch_ok", "charge_invalid": "/charges/ch_bad",
         "list": "/accounts/acct_ok/charges", "list_invalid": "/accounts/acct_bad/charges"}


def write_docroot(root: Path) -> dict[str, int]:
    root.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, data in bodies().items():
        (root / f"{name}.json").write_bytes(data)
        sizes[name] = len(data)
    return sizes


def nginx_conf(work: Path, port: int, otlp_port: int) -> Path:
    """The provider on `port` and `port + 1` (a twin upstream needs its own URL), OTLP on `otlp_port`."""
    docroot = work / "docroot"
    temp = work / "nginx-temp"
    temp.mkdir(exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy; fastcgi_temp_path {temp}/fastcgi;
  uwsgi_temp_path {temp}/uwsgi; scgi_temp_path {temp}/scgi;
  types {{ }}
  default_type application/json;
  sendfile on; tcp_nodelay on;
  keepalive_requests 10000000; keepalive_timeout 300s;
  open_file_cache max=64 inactive=600s;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    listen 127.0.0.1:{port + 1} backlog=4096;
    root {docroot};
    location = /v1/charges/ch_bad {{ try_files /charge_invalid.json =404; }}
    location ~ ^/v1/charges/ch_[A-Za-z0-9]+$ {{ try_files /charge.json =404; }}
    location = /v1/accounts/acct_ok/charges {{ try_files /list.json =404; }}
    location = /v1/accounts/acct_bad/charges {{ try_files /list_invalid.json =404; }}
    location ~ ^/v1/r[0-9]+/charges/ch_[A-Za-z0-9]+$ {{ try_files /charge.json =404; }}
    location / {{ return 404 '{{"error": {{"type": "not_found", "message": "no such resource"}}}}'; }}
  }}
  server {{
    listen 127.0.0.1:{otlp_port};
    location / {{ return 200 ''; }}
  }}
}}
""")
    return conf


def _b64(doc: dict) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(doc)).rstrip(b"=").decode()


def internal_jwt() -> str:
    """An internal JWT (the caller's own session): egress must strip it before the call leaves."""
    return ".".join((_b64({"alg": "RS256", "typ": "JWT", "kid": "internal-1"}),
                     _b64({"iss": INTERNAL_ISSUER, "sub": "svc-checkout", "aud": "internal", "exp": 4102444800}),
                     "c2lnbmF0dXJlLW5vdC1jaGVja2VkLWJ5LXRoZS1iZW5jaG1hcms"))


def egress_config(path: Path, *, port: int, admin_port: int, provider_port: int,
                  contracts_dir: Path = CONTRACTS, contract: str = "payments.yaml",
                  upstream: str = "pay", callers: tuple[str, ...] = ("checkout", "billing"),
                  violations_upstream: bool = True) -> Path:
    """The full pipeline: enforce, unmatched block, sanitizing (headers, query, internal JWTs),
    credential injection, retries, a breaker counting violations, bounded sizes.

    With `violations_upstream`, a twin upstream `payinv` (same provider, its breaker does not
    count violations) measures the refusal path without opening the breaker of `pay`."""
    doc = {
        "listen": f"127.0.0.1:{port}", "admin_listen": f"127.0.0.1:{admin_port}",
        "contracts_dir": str(contracts_dir), "drain_timeout": 2,
        "callers": {"header": "X-Egress-Caller", "required": True},
        "sanitize": {
            "strip_headers": ["authorization", "cookie", "proxy-authorization", "x-internal-*",
                              "x-forwarded-for", "forwarded", "baggage"],
            "strip_query": ["access_token", "id_token", "api_key"],
            "internal_jwt_issuers": [INTERNAL_ISSUER],
            "on_internal_token_in_body": "block"},
        "breaker_store": "memory",
        "upstreams": [{
            "name": upstream, "url": f"http://127.0.0.1:{provider_port}/v1", "callers": list(callers),
            "contract": contract, "mode": "enforce", "unmatched": "block",
            "credential": {"header": "Authorization", "value": "Bearer bench-partner-token"},
            "timeout": {"connect": 2, "total": 10},
            "retry": {"attempts": 3, "backoff": 0.1, "max_backoff": 2, "on_status": [502, 503, 504], "budget": 0.2},
            "breaker": {"failures": 5, "reset_after": 30, "count_violations": True},
            "limits": {"max_response_bytes": 10485760, "max_decompressed_bytes": 52428800, "max_json_depth": 64},
            "redirects": {"follow": False, "allow_hosts": []},
            "allow_private_addresses": True}],
    }
    if violations_upstream:
        twin = json.loads(json.dumps(doc["upstreams"][0]))
        twin["name"], twin["breaker"]["count_violations"] = "payinv", False
        twin["url"] = f"http://127.0.0.1:{provider_port + 1}/v1"
        doc["upstreams"].append(twin)
    path.write_text(json.dumps(doc, indent=2))  # JSON is YAML
    return path


def many_operations_contract(work: Path, count: int = MANY_OPERATIONS) -> Path:
    """A contracts dir with `GET /r{i}/charges/{id}` for i < count (and the bench schemas).

    Only the 200 response is declared: egress compiles each operation's schema on its own
    (docs/performance.md, "start-up"), so every extra inline schema adds to the load time."""
    out = work / "contracts-many"
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(CONTRACTS / "schemas", out / "schemas")
    lines = ["operations:"]
    for i in range(count):
        lines += [f"  GET /r{i}/charges/{{id}}:", "    responses:",
                  '      "200": {content_type: application/json, schema: {$ref: "schemas/charge.json"}}']
    (out / "many.yaml").write_text("\n".join(lines) + "\n")
    return out
