"""The secret-bearing config keys: an upstream's `credential` and the `admin_token`.

Called by load.py after the schema check and `${ENV}` resolution.  Each problem names its key
path and never the value (not even its length).  Files (`value_file`, `client_secret_file`,
`admin_token_file`) resolve relative to the config file and must exist and be non-empty at
load; afterwards they are re-read when they change (credentials/file.py).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from yarl import URL

from egress.config.model import Credential, OAuth2, Secret

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def _file(where: str, value: str, base_dir: Path, problems: list[str]) -> str:
    path = Path(value) if Path(value).is_absolute() else base_dir / value
    try:
        if not path.read_bytes().strip():
            problems.append(f"{where}: file is empty: {value}")
    except OSError as exc:
        problems.append(f"{where}: cannot read file {value}: {exc.strerror or type(exc).__name__}")
    return str(path)


def build_credential(where: str, raw: dict | None, base_dir: Path, problems: list[str],
                     *, allow_private) -> Credential | None:
    """`credential:` of one upstream: exactly one of value, value_file, oauth2."""
    if not raw:
        return None
    where = f"{where}.credential"
    forms = [k for k in ("value", "value_file", "oauth2") if k in raw]
    if len(forms) != 1:
        problems.append(f"{where} needs exactly one of value | value_file | oauth2, got "
                        f"{' + '.join(forms) or 'none'}")
        return None
    header, prefix = raw["header"], raw.get("prefix")
    if "value" in raw:
        if not raw["value"]:
            problems.append(f"{where}.value is empty (is its environment variable empty?)")
        if prefix is not None:
            problems.append(f"{where}.prefix goes with value_file or oauth2 (write it into value)")
        return Credential(header, Secret(raw["value"]))
    if "value_file" in raw:
        path = _file(f"{where}.value_file", raw["value_file"], base_dir, problems)
        return Credential(header, value_file=path, prefix=prefix)
    o = dict(raw["oauth2"])
    sub = f"{where}.oauth2"
    if ("client_secret" in o) == ("client_secret_file" in o):
        problems.append(f"{sub} needs exactly one of client_secret | client_secret_file")
    if "client_secret" in o and not o["client_secret"]:
        problems.append(f"{sub}.client_secret is empty (is its environment variable empty?)")
    if "client_secret_file" in o:
        o["client_secret_file"] = _file(f"{sub}.client_secret_file", o["client_secret_file"], base_dir,
                                        problems)
    try:
        token_url = URL(o["token_url"])
        token_url.port  # noqa: B018 - parsed lazily
    except ValueError:
        problems.append(f"{sub}.token_url is not a valid URL")
        return None
    if not token_url.host or token_url.user or token_url.password or token_url.raw_fragment:
        problems.append(f"{sub}.token_url must name a host and carry no credentials or fragment")
        return None
    if token_url.scheme != "https" and allow_private is not True:
        problems.append(f"{sub}.token_url must be https (the client secret travels to it); plain http "
                        "only with allow_private_addresses: true (tests, on-prem)")
    o["token_url"] = token_url
    if "client_secret" in o:
        o["client_secret"] = Secret(o["client_secret"])
    return Credential(header, prefix=prefix, oauth2=OAuth2(**o))


def build_admin(doc: dict, base_dir: Path, admin_listen: tuple[str, int], problems: list[str]) -> dict:
    """admin_token / admin_token_file / admin_insecure, and the refusal to expose an
    unauthenticated admin port beyond loopback."""
    out: dict = {}
    if "admin_token" in doc and "admin_token_file" in doc:
        problems.append("admin_token and admin_token_file: give one of them")
    if "admin_token" in doc:
        if len(doc["admin_token"]) < 16:  # never show the value, not even its length
            problems.append("admin_token must be at least 16 characters (is its environment variable "
                            "empty or short?)")
        out["admin_token"] = Secret(doc["admin_token"])
    if "admin_token_file" in doc:
        out["admin_token_file"] = _file("admin_token_file", doc["admin_token_file"], base_dir, problems)
    out["admin_insecure"] = bool(doc.get("admin_insecure", False))
    if not out.keys() & {"admin_token", "admin_token_file"}:
        problem = admin_exposed_problem(admin_listen, out["admin_insecure"])
        if problem:
            problems.append(problem)
    return out


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def admin_exposed_problem(admin_listen: tuple[str, int], insecure: bool) -> str | None:
    """A problem when the admin port (which has mutating endpoints) is bound beyond loopback
    without a token and without `admin_insecure: true`."""
    host = admin_listen[0]
    if insecure or is_loopback(host):
        return None
    return (f"admin_token: required when admin_listen ({host}:{admin_listen[1]}) is beyond loopback: "
            "/admin/* can reload and suspend (set admin_token or admin_token_file, or admin_insecure: "
            "true to run it unauthenticated on purpose)")
