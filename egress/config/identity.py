"""Loading the identity keys: `callers.identity|jwt|mtls`, `listen_tls` and each upstream's `grants`.

Called by load.py after the schema check; every problem names its key path and never a secret.
Cross-field rules: `identity: jwt` needs `callers.jwt.issuers`; `identity: mtls` needs
`listen_tls.client_ca_file`; a `caller_pattern` must compile (group `caller` optional); an issuer
has exactly one of `jwks_url` / `jwks_file`; `scope:` grants need `identity: jwt`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from egress.config.model import JwtIssuer, JwtSettings, ListenTls, MtlsSettings

_METHOD = re.compile(r"^(\*|[A-Z]+)$")
_PARAM = re.compile(r"\{[^{}/]+\}")


def _file(base_dir: Path, value: str) -> Path:
    return Path(value) if Path(value).is_absolute() else base_dir / value


def _pattern(where: str, text: str | None, problems: list[str]) -> None:
    if text is None:
        return
    try:
        rx = re.compile(text)
    except re.error as exc:
        problems.append(f"{where} is not a valid regular expression: {exc}")
        return
    if rx.groups and "caller" not in rx.groupindex:
        problems.append(f"{where} has groups but none named 'caller' (use (?P<caller>...))")


def _issuer(i: int, raw: dict, base_dir: Path, problems: list[str]) -> JwtIssuer:
    where = f"callers.jwt.issuers[{i}]"
    url, path = raw.get("jwks_url"), raw.get("jwks_file")
    if (url is None) == (path is None):
        problems.append(f"{where} needs exactly one of jwks_url or jwks_file")
    jwks_file = None
    if path is not None:
        jwks_file = _file(base_dir, path)
        try:
            doc = json.loads(jwks_file.read_text())
            if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
                problems.append(f"{where}.jwks_file must be a JWKS document ({{\"keys\": [...]}}): {path}")
        except OSError:
            problems.append(f"{where}.jwks_file: file not found: {path}")
        except ValueError:
            problems.append(f"{where}.jwks_file is not valid JSON: {path}")
    ca_file = raw.get("ca_file")
    if ca_file is not None:
        if not _file(base_dir, ca_file).is_file():
            problems.append(f"{where}.ca_file: file not found: {ca_file}")
        ca_file = str(_file(base_dir, ca_file))
    token_file = raw.get("jwks_token_file")
    if token_file is not None:
        if url is None:
            problems.append(f"{where}.jwks_token_file needs jwks_url")
        token_file = str(_file(base_dir, token_file))  # may appear after start (projected volume)
    return JwtIssuer(issuer=raw["issuer"], audiences=tuple(raw["audiences"]), jwks_url=url,
                     jwks_file=jwks_file, ca_file=ca_file, jwks_token_file=token_file)


def build_identity(raw: dict, base_dir: Path, has_client_ca: bool, problems: list[str]) -> dict:
    """Pop `identity`, `jwt`, `mtls` from a copy of `callers` (raw); the Callers keyword arguments."""
    mode = raw.pop("identity", "header")
    jwt_raw, mtls_raw = raw.pop("jwt", None), raw.pop("mtls", None)
    out: dict = {"identity": mode}
    if jwt_raw is not None:
        jwt_raw = dict(jwt_raw)
        issuers = tuple(_issuer(i, r, base_dir, problems) for i, r in enumerate(jwt_raw.pop("issuers", [])))
        if "algorithms" in jwt_raw:
            jwt_raw["algorithms"] = tuple(jwt_raw["algorithms"])
        _pattern("callers.jwt.caller_pattern", jwt_raw.get("caller_pattern"), problems)
        out["jwt"] = JwtSettings(issuers=issuers, **jwt_raw)
        if out["jwt"].jwks_min_refresh > out["jwt"].jwks_refresh:
            problems.append("callers.jwt.jwks_min_refresh must be <= callers.jwt.jwks_refresh")
    if mtls_raw is not None:
        _pattern("callers.mtls.caller_pattern", mtls_raw.get("caller_pattern"), problems)
        out["mtls"] = MtlsSettings(**mtls_raw)
    if mode == "jwt" and (jwt_raw is None or not out["jwt"].issuers):
        problems.append("callers.identity is jwt: give callers.jwt.issuers (at least one)")
    if mode == "mtls":
        out.setdefault("mtls", MtlsSettings())
        if not has_client_ca:
            problems.append("callers.identity is mtls: give listen_tls with client_ca_file")
    return out


def build_listen_tls(raw: dict | None, base_dir: Path, problems: list[str]) -> ListenTls | None:
    if raw is None:
        return None
    files = {}
    for key in ("cert_file", "key_file", "client_ca_file"):
        if raw.get(key) is not None:
            path = _file(base_dir, raw[key])
            if not path.is_file():
                problems.append(f"listen_tls.{key}: file not found: {raw[key]}")
            files[key] = str(path)
    return ListenTls(**files)


def build_grants(where: str, raw: dict | None, identity: str, problems: list[str]) -> tuple:
    """`upstreams[i].grants` as ((who, (entry, ...)), ...); entries are "METHOD /template" or "METHOD *"."""
    out = []
    for who, entries in (raw or {}).items():
        if who.startswith("scope:") and identity != "jwt":
            problems.append(f"{where}.grants.{who}: scope grants need callers.identity: jwt")
        for j, entry in enumerate(entries):
            problem = grant_entry_problem(entry)
            if problem:
                problems.append(f"{where}.grants.{who}[{j}] {problem}, got {entry!r}")
        out.append((who, tuple(" ".join(e.split()) for e in entries)))
    return tuple(out)


def grant_entry_problem(entry: str) -> str | None:
    """Why a grant entry is malformed, or None: "METHOD /path/{param}" or "METHOD *" (METHOD may be *)."""
    parts = entry.split()
    if len(parts) != 2 or not _METHOD.match(parts[0]):
        return "must be 'METHOD /path' or 'METHOD *' (METHOD in capitals, or *)"
    path = parts[1]
    if path == "*":
        return None
    if not path.startswith("/") or "?" in path or "#" in path:
        return "path must start with '/' (no query) or be '*'"
    if any("{" in s or "}" in s for s in (_PARAM.sub("", seg) for seg in path.split("/"))):
        return "has unbalanced braces"
    return None
