"""The consumed-API inventory: upstreams, operations, callers, counts, coverage, violations,
drift, breaker states, denied destinations (docs/inventory.md), and its table rendering.

Everything is bounded: operations come from `templating.OperationNames`; callers per
operation, keywords, drift fields and denied destinations are capped (overflow counted).
"""

from __future__ import annotations

import re
import time
import urllib.request
from typing import Callable

import orjson

from egress.exchange import Exchange
from egress.observe.grants import grants_report
from egress.observe.metrics import status_class

VERSION = 1
MAX_CALLERS = 50          # per operation
MAX_KEYS = 100            # keywords, reasons per upstream
MAX_GRANTS = 1000         # (grantee, entry, caller) triples per upstream
MAX_DRIFT_FIELDS = 100    # per operation
MAX_DENIED = 1000         # (host, caller, via) entries tracked; the top TOP_DENIED are reported
TOP_DENIED = 50
_HOST = re.compile(r"^[a-z0-9._:\[\]-]{1,253}$")


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9)) if ns else ""


def _bump(d: dict, key: str, limit: int, n: int = 1) -> None:
    if key in d or len(d) < limit:
        d[key] = d.get(key, 0) + n
    else:
        d["other"] = d.get("other", 0) + n


class _Operation:
    __slots__ = ("calls", "callers", "status", "drift", "last_ns", "matched")

    def __init__(self) -> None:
        self.calls, self.callers, self.status = 0, {}, {}
        self.drift: set[str] = set()
        self.last_ns, self.matched = 0, False


class _Upstream:
    __slots__ = ("calls", "matched", "status", "reasons", "violations", "ops", "last_ns", "grants")

    def __init__(self) -> None:
        self.calls = self.matched = self.last_ns = 0
        self.status, self.reasons, self.violations = {}, {}, {}
        self.ops: dict[str, _Operation] = {}
        self.grants: dict[tuple[str, str, str], int] = {}   # (grantee, entry, caller) -> requests


class Inventory:
    def __init__(self, configured: dict[str, dict] | None = None) -> None:
        self.configured = configured or {}      # name -> {"url", "contract", "mode"}
        self._ups: dict[str, _Upstream] = {}
        self._denied: dict[tuple[str, str, str], list[int]] = {}  # (host, caller, via) -> [count, last_ns]
        self.breakers: Callable[[], dict] | None = None
        self.suspensions: Callable[[], list] | None = None   # the kill switch's active records
        self.limits: Callable[[], dict] | None = None   # send/limits.py: usage against limits

    def observe(self, ex: Exchange, operation: str) -> None:
        now = ex.end_ns or time.time_ns()
        if ex.upstream is None:
            if ex.reason == "destination_not_allowed":
                self._deny(ex.denied_host, ex.caller, now, ex.denied_via)
            return
        u = self._ups.get(ex.upstream.name)
        if u is None:
            u = self._ups[ex.upstream.name] = _Upstream()
        u.calls += 1
        u.last_ns = now
        sc = status_class(ex.status)
        u.status[sc] = u.status.get(sc, 0) + 1
        if ex.operation:
            u.matched += 1
        if ex.reason:
            _bump(u.reasons, ex.reason, MAX_KEYS)
        if ex.grant is not None and ((key := (*ex.grant, ex.caller or "-")) in u.grants or len(u.grants) < MAX_GRANTS):
            u.grants[key] = u.grants.get(key, 0) + 1
        op = u.ops.get(operation)
        if op is None:
            op = u.ops[operation] = _Operation()
        op.calls += 1
        op.last_ns = now
        op.matched = op.matched or bool(ex.operation)
        op.status[sc] = op.status.get(sc, 0) + 1
        _bump(op.callers, ex.caller or "-", MAX_CALLERS)
        for e in ex.events:
            if e.name == "egress.contract_violation":
                _bump(u.violations, str(e.attrs.get("keyword") or "unknown")[:64], MAX_KEYS)
            elif e.name == "egress.contract_drift":
                for f in e.attrs.get("fields") or ():
                    if len(op.drift) >= MAX_DRIFT_FIELDS:
                        break
                    op.drift.add(str(f)[:256])

    def _deny(self, host: str | None, caller: str | None, now: int, via: str | None = None) -> None:
        host = (host or "").lower()
        host = host if _HOST.match(host) else ("(unknown)" if not host else "(invalid)")
        key = (host, caller or "-", via or "-")
        entry = self._denied.get(key)
        if entry is None:
            if len(self._denied) >= MAX_DENIED:   # forget the rarest, keep the loud ones
                del self._denied[min(self._denied, key=lambda k: self._denied[k][0])]
            entry = self._denied[key] = [0, 0]
        entry[0] += 1
        entry[1] = now

    # ------------------------------------------------------------ reading
    def snapshot(self) -> dict:
        try:
            breakers = self.breakers() if self.breakers is not None else {}
        except Exception:
            breakers = {}
        try:
            limits = self.limits() if self.limits is not None else {}
        except Exception:
            limits = {}
        names = list(self.configured) + sorted(n for n in self._ups if n not in self.configured)
        upstreams = []
        for name in names:
            u = self._ups.get(name) or _Upstream()
            conf = self.configured.get(name, {})
            upstreams.append({
                "name": name,
                "configured": name in self.configured,
                "url": conf.get("url"),
                "contract": conf.get("contract"),
                "mode": conf.get("mode"),
                "calls": u.calls,
                "by_status_class": dict(sorted(u.status.items())),
                "reasons": dict(sorted(u.reasons.items())),
                "contract_coverage": round(u.matched / u.calls, 4) if u.calls else None,
                "matched_calls": u.matched,
                "violations_by_keyword": dict(sorted(u.violations.items())),
                "breakers": {k: v for k, v in sorted(breakers.items()) if k.split("|", 1)[0] == name},
                "limits": limits.get(name, {}),
                "last_seen": _iso(u.last_ns) or None,
                "grants": grants_report(conf.get("grants") or {}, u.grants),
                "operations": [
                    {"operation": op_name, "matched_contract": op.matched, "calls": op.calls,
                     "callers": dict(sorted(op.callers.items())),
                     "by_status_class": dict(sorted(op.status.items())),
                     "drift_fields": sorted(op.drift), "last_seen": _iso(op.last_ns)}
                    for op_name, op in sorted(u.ops.items())
                ],
            })
        suspended = self.suspensions() if self.suspensions is not None else []
        for entry in upstreams:
            entry["suspended"] = next((s for s in suspended if s["target"] == "upstream"
                                       and s["name"] == entry["name"]), None)
        top = sorted(self._denied.items(), key=lambda kv: -kv[1][0])[:TOP_DENIED]
        denied = [{"host": h, "via": v, "caller": c, "count": n, "last_seen": _iso(last)}
                  for (h, c, v), (n, last) in top]
        return {"version": VERSION, "generated_at": _iso(time.time_ns()), "upstreams": upstreams,
                "denied_destinations": denied, "suspended": suspended}


# ---------------------------------------------------------------- the CLI side


def fetch(admin_url: str, *, timeout: float = 5.0, token: str | None = None) -> dict:
    """GET {admin_url}/admin/inventory and parse it (raises OSError/ValueError on failure);
    `token`: the admin_token, sent as a bearer token."""
    url = admin_url.rstrip("/") + "/admin/inventory"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:  # noqa: S310 (admin URL from the operator)
        return orjson.loads(resp.read())


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


def _counts(d: dict) -> str:
    return " ".join(f"{k}:{v}" for k, v in d.items()) or "-"


def render_table(doc: dict) -> str:
    """The inventory as readable text: one block per upstream, then denied destinations."""
    out: list[str] = []
    for u in doc.get("upstreams", []):
        cov = u.get("contract_coverage")
        states = ",".join(sorted({b.get("state", "?") for b in u.get("breakers", {}).values()})) or "-"
        out.append(f"{u['name']}  {u.get('url') or ''}  contract={u.get('contract') or '-'} "
                   f"mode={u.get('mode') or '-'}  calls={u.get('calls', 0)}  "
                   f"coverage={'-' if cov is None else f'{cov:.0%}'}  breaker={states}  "
                   f"last_seen={u.get('last_seen') or '-'}")
        if u.get("violations_by_keyword"):
            out.append(f"  violations: {_counts(u['violations_by_keyword'])}")
        if u.get("reasons"):
            out.append(f"  refusals: {_counts(u['reasons'])}")
        for who, g in (u.get("grants") or {}).items():
            unused = f"  unused: {', '.join(g['unused'])}" if g["unused"] else ""
            out.append(f"  grants {who}: {len(g['used'])}/{len(g['granted'])} used{unused}")
        rows = [[op["operation"], "yes" if op.get("matched_contract") else "no", str(op["calls"]),
                 _counts(op.get("by_status_class", {})), ",".join(op.get("callers", {})) or "-",
                 str(len(op.get("drift_fields", [])))] for op in u.get("operations", [])]
        if rows:
            out += ["  " + r for r in _table(rows, ["operation", "contract", "calls", "status", "callers", "drift"])]
        out.append("")
    suspended = doc.get("suspended", [])
    if suspended:
        out.append("suspended (kill switch)")
        rows = [[s["target"], s["name"], s["reason"], s["by"], _iso(int(s["at"] * 1e9))] for s in suspended]
        out += ["  " + r for r in _table(rows, ["target", "name", "reason", "by", "since"])]
        out.append("")
    denied = doc.get("denied_destinations", [])
    if denied:
        out.append("denied destinations")
        rows = [[d["host"], d.get("via", "-"), d["caller"], str(d["count"]), d.get("last_seen", "")] for d in denied]
        out += ["  " + r for r in _table(rows, ["host", "via", "caller", "count", "last_seen"])]
    return "\n".join(out).rstrip() + "\n"
