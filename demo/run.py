"""The one-minute offline demo: the fake partner, egress with config/egress.yaml, and a few
calls showing a clean pass, stripped tokens, a contract violation and blocked requests."""

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROXY = "http://127.0.0.1:8080"


def wait_port(port: int, proc: subprocess.Popen, name: str) -> None:
    for _ in range(150):
        if proc.poll() is not None:
            sys.exit(f"{name} exited early (is port {port} in use?)")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{name} did not start on port {port}")


def jwt(iss: str) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{enc({'alg': 'RS256'})}.{enc({'iss': iss, 'sub': 'svc-checkout'})}.c2lnbmF0dXJl"


def call(title: str, method: str, path: str, headers: dict, body: dict | None = None) -> None:
    print(f"\n== {title}\n   {method} {path}")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(PROXY + path, data=data, method=method,
                                 headers={**headers, **({"Content-Type": "application/json"} if data else {})})
    time.sleep(0.1)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, hdrs, text = resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as err:
        status, hdrs, text = err.code, err.headers, err.read().decode()
    time.sleep(0.2)  # let the partner's line print first
    extra = "  ".join(f"{h}: {hdrs[h]}" for h in ("X-Egress-Contract", "X-Egress-Error") if hdrs.get(h))
    print(f"   -> {status}  {extra}\n   {text[:700]}")


def main() -> None:
    env = {**os.environ, "EGRESS_LOG_LEVEL": "warning"}
    partner = subprocess.Popen([sys.executable, str(ROOT / "demo" / "partner.py")], env=env)
    proxy = subprocess.Popen([sys.executable, "-m", "egress", "serve", "--config",
                              str(ROOT / "config" / "egress.yaml")], env=env)
    try:
        wait_port(9101, partner, "the demo partner")
        wait_port(8080, proxy, "egress")
        caller = {"X-Egress-Caller": "checkout"}
        internal = jwt("https://auth.internal.example")
        call("1. a clean pass: the response is checked against contracts/payments.yaml",
             "GET", "/payments/charges/ch_1", caller)
        call("2. internal tokens stripped: the caller's session JWT and ?access_token never reach the partner;"
             " the partner credential is injected", "GET", "/payments/charges?access_token=secret-123",
             {**caller, "Authorization": f"Bearer {internal}", "X-Internal-User": "42"})
        call("3. an internal JWT inside a JSON body: blocked before anything is sent",
             "POST", "/payments/charges", caller, {"amount": 500, "note": f"forwarded {internal}"})
        call("4. the partner breaks its contract: 502 with the violations (pointers, never values)",
             "GET", "/payments/charges/ch_broken", caller)
        call("5. a destination nobody declared: 403", "GET", "/evil/exfiltrate", caller)
        call("6. a caller not allowed to use this partner: 403", "GET", "/payments/charges/ch_1",
             {"X-Egress-Caller": "reporting"})
        call("7. an operation the contract does not list (unmatched: block): 403, nothing sent",
             "DELETE", "/payments/charges/ch_1", caller)
        from egress.observe.inventory import fetch, render_table
        print("\n== what egress recorded (GET http://127.0.0.1:9090/admin/inventory, as a table)")
        print(render_table(fetch("http://127.0.0.1:9090")))
        print("Done: egress and the partner are stopped now. To keep both running, with the admin"
              " endpoints (/healthz, /readyz, /metrics, /admin/inventory): scripts/serve")
    finally:
        for proc in (proxy, partner):
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
