"""Loading the configuration: the only reader of config/; YAML -> JSON Schema check -> model.

`load_settings(path, environ)` returns a `Settings` or raises `ConfigError` listing every
problem, each naming its key path (`upstreams[1].timeout.total must be > 0, got -1`).
`${NAME}` (or `${NAME:-default}`) references in string values are resolved from `environ`
after the schema check; a missing variable is an error naming it.  Cross-field checks
(unique names and targets, contract files, caller keys) run here too.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml
from yarl import URL

from egress.config.model import (
    BreakerSettings,
    Callers,
    Credential,
    Limits,
    Record,
    Redirects,
    Retry,
    Sanitize,
    Secret,
    Settings,
    Timeout,
    Tls,
    Upstream,
)
from egress.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_KEYS = {"credential", "hmac_keys"}

MIN_CALLER_KEY_CHARS = 16


def _build_callers(raw: dict, problems: list[str]) -> Callers:
    raw = dict(raw)
    keys = raw.pop("hmac_keys", None) or {}
    for name, value in keys.items():
        if len(value) < MIN_CALLER_KEY_CHARS:  # never show the value, not even its length
            problems.append(f"callers.hmac_keys.{name} must be at least {MIN_CALLER_KEY_CHARS} characters "
                            "(is its environment variable empty or short?)")
    if "signature_header" in raw and raw["signature_header"].lower() == raw.get("header", Callers.header).lower():
        problems.append("callers.signature_header must differ from callers.header")
    return Callers(hmac_keys=tuple(sorted((n, Secret(v)) for n, v in keys.items())), **raw)


def _schema() -> dict:
    text = resources.files("egress.config").joinpath("schema.json").read_text()
    return json.loads(text)


_VALIDATOR = jsonschema.Draft202012Validator(_schema())


def key_path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _schema_problems(doc: Any) -> list[str]:
    problems = []
    for err in sorted(_VALIDATOR.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        where = key_path(path)
        if _SECRET_KEYS & {str(p) for p in path} and err.validator not in ("additionalProperties", "required"):
            problems.append(f"{where} is invalid ({err.validator} {err.validator_value!r}; value hidden)")
        elif err.validator == "additionalProperties":
            problems.append(f"{where}: {err.message}")
        elif err.validator == "required":
            problems.append(f"{where}: {err.message}")
        elif err.validator in ("exclusiveMinimum",):
            problems.append(f"{where} must be > {err.validator_value}, got {err.instance!r}")
        elif err.validator in ("minimum",):
            problems.append(f"{where} must be >= {err.validator_value}, got {err.instance!r}")
        elif err.validator in ("maximum",):
            problems.append(f"{where} must be <= {err.validator_value}, got {err.instance!r}")
        elif err.validator == "enum":
            allowed = " | ".join(map(str, err.validator_value))
            problems.append(f"{where} must be one of {allowed}, got {err.instance!r}")
        else:
            problems.append(f"{where}: {err.message}")
    return problems


def _resolve_env(node: Any, environ: Mapping[str, str], path: list, problems: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _resolve_env(v, environ, path + [k], problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_env(v, environ, path + [i], problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name not in environ:
                if default is not None:
                    return default
                problems.append(f"{key_path(path)}: environment variable {name} is not set")
                return ""
            return environ[name]
        return _ENV_REF.sub(sub, node)
    return node


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _build_upstream(i: int, raw: dict, base_dir: Path, problems: list[str]) -> Upstream | None:
    where = f"upstreams[{i}]"
    try:
        url = URL(raw["url"])
        url.port  # noqa: B018 - yarl parses the port lazily; a bad one raises here
    except ValueError:
        problems.append(f"{where}.url is not a valid URL, got {raw['url']!r}")
        return None
    if not url.host:
        problems.append(f"{where}.url must name a host, got {raw['url']!r}")
        return None
    if url.user or url.password or url.raw_query_string or url.raw_fragment:
        problems.append(f"{where}.url must not carry credentials, a query or a fragment")
        return None
    if url.port is not None and not 0 < url.port < 65536:
        problems.append(f"{where}.url port must be 1..65535, got {url.port}")
    timeout = Timeout(**raw.get("timeout", {}))
    if timeout.connect > timeout.total:
        problems.append(
            f"{where}.timeout.connect must be <= timeout.total, got {timeout.connect} > {timeout.total}")
    retry_raw = dict(raw.get("retry", {}))
    if "on_status" in retry_raw:
        retry_raw["on_status"] = tuple(retry_raw["on_status"])
    retry = Retry(**retry_raw)
    if retry.max_backoff < retry.backoff:
        problems.append(
            f"{where}.retry.max_backoff must be >= retry.backoff, got {retry.max_backoff} < {retry.backoff}")
    breaker_raw = dict(raw.get("breaker", {}))
    if "on_status" in breaker_raw:
        breaker_raw["on_status"] = tuple(breaker_raw["on_status"])
    redirects_raw = dict(raw.get("redirects", {}))
    redirects_raw["allow_hosts"] = tuple(h.lower() for h in redirects_raw.get("allow_hosts", ()))
    tls = Tls(**raw.get("tls", {}))
    for key in ("ca_file", "client_cert", "client_key"):
        value = getattr(tls, key)
        if value is not None:
            resolved = (base_dir / value) if not Path(value).is_absolute() else Path(value)
            if not resolved.is_file():
                problems.append(f"{where}.tls.{key}: file not found: {value}")
            tls = replace(tls, **{key: str(resolved)})
    if (tls.client_cert is None) != (tls.client_key is None) and tls.client_cert is None:
        problems.append(f"{where}.tls.client_key needs tls.client_cert")
    callers = tuple(raw.get("callers", ["*"]))
    if not callers:
        problems.append(f"{where}.callers must name at least one caller or '*', got []")
    cred = raw.get("credential")
    credential = Credential(cred["header"], Secret(cred["value"])) if cred else None
    if credential is not None and not credential.value:
        problems.append(f"{where}.credential.value is empty (is its environment variable empty?)")
    limits = Limits(**raw.get("limits", {}))
    allow_private = raw.get("allow_private_addresses", False)
    if isinstance(allow_private, list):
        networks = []
        for j, text in enumerate(allow_private):
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                problems.append(f"{where}.allow_private_addresses[{j}] must be an IP network, got {text!r}")
        allow_private = tuple(networks)
    return Upstream(
        name=raw["name"], url=url, callers=callers, contract=raw.get("contract"),
        mode=raw.get("mode", "enforce"), unmatched=raw.get("unmatched", "report"),
        credential=credential, timeout=timeout, retry=retry,
        breaker=BreakerSettings(**breaker_raw), limits=limits,
        redirects=Redirects(**redirects_raw), tls=tls,
        allow_private_addresses=allow_private,
        propagate_trace=raw.get("propagate_trace", False),
    )


def settings_from_dict(doc: Any, *, base_dir: Path, environ: Mapping[str, str]) -> Settings:
    """Validate a parsed config document; raise ConfigError naming every problem."""
    if not isinstance(doc, dict):
        raise ConfigError([f"(top level) must be a mapping, got {type(doc).__name__}"])
    ups = doc.get("upstreams")
    for raw in ups if isinstance(ups, list) else ():
        # YAML 1.1 reads a bare `off` as false; `mode: off` is what DESIGN tells users to write
        if isinstance(raw, dict) and raw.get("mode") is False:
            raw["mode"] = "off"
    problems = _schema_problems(doc)
    if problems:
        raise ConfigError(problems)
    doc = _resolve_env(doc, environ, [], problems)
    upstreams = []
    for i, raw in enumerate(doc["upstreams"]):
        up = _build_upstream(i, raw, base_dir, problems)
        if up is not None:
            upstreams.append(up)
    seen_names: dict[str, int] = {}
    seen_targets: dict[tuple, int] = {}
    for i, up in enumerate(upstreams):
        if up.name in seen_names:
            problems.append(f"upstreams[{i}].name {up.name!r} is already used by upstreams[{seen_names[up.name]}]")
        seen_names.setdefault(up.name, i)
        target = (up.host, up.port, up.base_path)
        if target in seen_targets:
            problems.append(
                f"upstreams[{i}].url {str(up.url)!r} is already served by upstreams[{seen_targets[target]}]")
        seen_targets.setdefault(target, i)
    callers = _build_callers(doc.get("callers", {}), problems)
    contracts_dir = (base_dir / doc.get("contracts_dir", "contracts")).resolve()
    for i, up in enumerate(upstreams):
        if up.contract and not (contracts_dir / up.contract).is_file():
            problems.append(f"upstreams[{i}].contract: file not found: {contracts_dir / up.contract}")
    record = None
    if "record" in doc:
        rec = dict(doc["record"])
        rec["dir"] = base_dir / rec["dir"]
        record = Record(**rec)
    if "store" in doc and "breaker_store" in doc and doc["store"] != doc["breaker_store"]:
        problems.append("breaker_store is the older name of store: give one of them")
    if problems:
        raise ConfigError(problems)
    kwargs: dict[str, Any] = {}
    for key in ("listen", "admin_listen"):
        if key in doc:
            kwargs[key] = parse_address(doc[key])
    san = doc.get("sanitize", {})
    return Settings(
        upstreams=tuple(upstreams),
        contracts_dir=contracts_dir,
        callers=callers,
        sanitize=Sanitize(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in san.items()}),
        store=doc.get("store", doc.get("breaker_store", "memory")),
        drain_timeout=doc.get("drain_timeout", 10.0),
        record=record,
        **kwargs,
    )


def load_settings(path: str | Path, environ: Mapping[str, str]) -> Settings:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config: {exc.strerror}"]) from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}:{where} not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    settings = settings_from_dict(doc, base_dir=path.resolve().parent, environ=environ)
    return replace(settings, source=path)
