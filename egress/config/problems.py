"""Config problems worded without the config's values: key path + expected shape.

A literal credential or HMAC key can sit anywhere in a wrong-shaped config (`upstreams` as a
mapping, `callers` as a list, a credential as a string), and jsonschema's own messages repr the
whole offending instance.  `describe` words each schema error from the key path, the schema
and the *type* of what was found; a found value is shown only when it cannot be a secret: a
number, a boolean, or a short word of letters, `_` and `-` (`mode: enforced`).  Under a
secret key (`credential`, `hmac_keys`) nothing found is ever shown.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema

SECRET_KEYS = frozenset({"credential", "hmac_keys", "admin_token", "client_secret", "oauth2"})
_SAFE_WORD = re.compile(r"[A-Za-z][A-Za-z_-]{0,23}")
_SAFE_NAME = re.compile(r"[A-Za-z][A-Za-z_.-]{0,29}[0-9]{0,2}")  # "checkout", "billing-v2"
_TYPES = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
          "number": "a number", "boolean": "true or false", "null": "empty (null)"}
# the shape each often mis-written key expects, as the YAML an operator would write
SHAPES = {
    "upstreams": "a list of upstreams (- {name: payments, url: https://api.example/v1, ...})",
    "upstreams[]": "a mapping (name: payments, url: https://api.example/v1, ...)",
    "callers": "a mapping (header: X-Egress-Caller, hmac_keys: {checkout: ${CHECKOUT_CALLER_KEY}}, ...)",
    "sanitize": "a mapping (strip_headers: [...], strip_query: [...], ...)",
    "credential": "a mapping (header: Authorization, value: \"Bearer ${PARTNER_TOKEN}\")",
    "hmac_keys": "a mapping of caller name to key ({checkout: ${CHECKOUT_CALLER_KEY}})",
    "limits": "a mapping (max_response_bytes: ..., ...)",
}


def key_path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def type_name(value: Any) -> str:
    """What was found, by kind only."""
    if isinstance(value, bool):
        return "true/false"
    for kind, name in ((dict, "a mapping"), (list, "a list"), (str, "a string"), (int, "an integer"),
                       (float, "a number")):
        if isinstance(value, kind):
            return name
    return "empty (null)" if value is None else "a value"


def shown(value: Any, secret: bool) -> str:
    """`got <value>` when the value cannot be a secret, else `got <its kind> (value hidden)`."""
    if not secret and (isinstance(value, (bool, int, float)) or value is None
                       or (isinstance(value, str) and _SAFE_WORD.fullmatch(value))):
        return f"got {value!r}"
    return f"got {type_name(value)} (value hidden)"


def key_name(mapping_path: str, name: str, index: int) -> str:
    """`callers.hmac_keys.checkout`, or `callers.hmac_keys (entry 3)` when the name itself could
    be a secret (a mapping written the wrong way round: key as name, name as value)."""
    return f"{mapping_path}.{name}" if _SAFE_NAME.fullmatch(name) else f"{mapping_path} (entry {index + 1})"


def _shape(path: list, expected) -> str:
    if len(path) >= 2 and isinstance(path[-1], int) and path[-2] == "upstreams":
        return SHAPES["upstreams[]"]
    if path and isinstance(path[-1], str) and path[-1] in SHAPES:
        return SHAPES[path[-1]]
    kinds = expected if isinstance(expected, list) else [expected]
    return " or ".join(_TYPES.get(k, str(k)) for k in kinds)


def describe(err: jsonschema.ValidationError) -> str:
    """One schema error as `key.path <what is expected>, got <kind or safe value>`."""
    path = list(err.absolute_path)
    where = key_path(path)
    secret = bool(SECRET_KEYS & {str(p) for p in path})
    found = shown(err.instance, secret)
    v, expected = err.validator, err.validator_value
    if v == "type":
        return f"{where} must be {_shape(path, expected)}, {found}"
    if v == "additionalProperties":
        extra = sorted(k for k in err.instance if k not in err.schema.get("properties", {})) \
            if isinstance(err.instance, dict) else []
        # a key is named when it reads as a (misspelled) key word, also under a credential: a
        # secret written as a key is no short word of letters
        names = ", ".join(repr(k) if _SAFE_WORD.fullmatch(str(k)) else "(a key, hidden)" for k in extra)
        return f"{where}: unknown key(s) {names}"
    if v == "required":
        missing = [k for k in expected if isinstance(err.instance, dict) and k not in err.instance]
        return f"{where}: missing required key(s) {', '.join(map(repr, missing))}"
    if v == "exclusiveMinimum":
        return f"{where} must be > {expected}, {found}"
    if v == "minimum":
        return f"{where} must be >= {expected}, {found}"
    if v == "maximum":
        return f"{where} must be <= {expected}, {found}"
    if v == "enum":
        return f"{where} must be one of {' | '.join(map(str, expected))}, {found}"
    if v == "pattern":
        return f"{where} must match {expected}, {found}"
    if v in ("minItems", "minLength"):
        return f"{where} must not be empty"
    return f"{where} is invalid ({v}), {found}"
