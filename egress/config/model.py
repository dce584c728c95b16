"""The configuration model: frozen dataclasses, one per config section, and `Secret`.

Built only by `config.load` (YAML -> schema check -> these values); read by every stage.
Credential values are `Secret`s, whose repr never shows the value.
"""


from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from yarl import URL


class Secret(str):
    """A string that never shows itself in a repr (logs, tracebacks, error lists)."""

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True)
class Timeout:
    connect: float = 2.0
    total: float = 10.0
    idle: float = 30.0  # longest gap between chunks of a streamed body
    stream: float = 600.0  # longest streamed body, first byte to last


@dataclass(frozen=True)
class Retry:
    attempts: int = 3
    backoff: float = 0.1
    max_backoff: float = 2.0
    on_status: tuple[int, ...] = (502, 503, 504)
    budget: float = 0.2
    max_retry_after: float = 5.0
    replay_buffer_bytes: int = 1048576


@dataclass(frozen=True)
class BreakerSettings:
    failures: int = 5
    reset_after: float = 30.0
    count_violations: bool = True
    scope: str = "upstream"
    on_status: tuple[int, ...] = (500, 502, 503, 504)


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 10485760
    max_response_bytes: int = 10485760
    max_decompressed_bytes: int = 52428800
    max_json_depth: int = 64
    max_violations: int = 10
    max_event_bytes: int = 1048576  # one event of a stream (SSE event, NDJSON line)


@dataclass(frozen=True)
class Redirects:
    follow: bool = False
    max_hops: int = 5
    allow_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tls:
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None


@dataclass(frozen=True)
class Credential:
    header: str
    value: Secret


@dataclass(frozen=True)
class Upstream:
    name: str
    url: URL
    callers: tuple[str, ...] = ("*",)
    contract: str | None = None
    mode: str = "enforce"
    unmatched: str = "report"
    credential: Credential | None = None
    timeout: Timeout = Timeout()
    retry: Retry = Retry()
    breaker: BreakerSettings = BreakerSettings()
    limits: Limits = Limits()
    redirects: Redirects = Redirects()
    tls: Tls = Tls()
    # True: any address; False: public only; networks: public plus these (on-prem partners)
    allow_private_addresses: bool | tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = False
    propagate_trace: bool = False

    @property
    def host(self) -> str:
        return self.url.host or ""

    @property
    def port(self) -> int:
        return self.url.port or (443 if self.url.scheme == "https" else 80)

    @property
    def base_path(self) -> str:
        """The url's path without a trailing slash ("" for the root)."""
        return self.url.raw_path.rstrip("/")

    @property
    def origin(self) -> str:
        return str(self.url.origin())

    def allows_caller(self, caller: str) -> bool:
        return "*" in self.callers or caller in self.callers


@dataclass(frozen=True)
class Callers:
    header: str = "X-Egress-Caller"
    required: bool = True
    # opt-in signed identity: caller name -> HMAC key; a name listed here is accepted only with
    # a valid `signature_header` (callers.py); names not listed are trusted as before
    hmac_keys: tuple[tuple[str, Secret], ...] = ()
    signature_header: str = "X-Egress-Caller-Signature"
    max_skew: float = 300.0

    def key_for(self, caller: str) -> Secret | None:
        for name, key in self.hmac_keys:
            if name == caller:
                return key
        return None



@dataclass(frozen=True)
class Sanitize:
    strip_headers: tuple[str, ...] = (
        "authorization", "cookie", "proxy-authorization", "x-internal-*",
        "x-forwarded-for", "forwarded", "baggage",
    )
    strip_query: tuple[str, ...] = ("access_token", "id_token", "api_key")
    internal_jwt_issuers: tuple[str, ...] = ()
    on_internal_token_in_body: str = "block"


@dataclass(frozen=True)
class Record:
    dir: Path
    max_files_per_operation: int = 20
    max_bytes: int = 262144


@dataclass(frozen=True)
class Settings:
    upstreams: tuple[Upstream, ...]
    listen: tuple[str, int] = ("0.0.0.0", 8080)
    admin_listen: tuple[str, int] = ("127.0.0.1", 9090)
    contracts_dir: Path = Path("contracts")
    callers: Callers = Callers()
    sanitize: Sanitize = Sanitize()
    store: str = "memory"  # memory | redis://...: state shared across replicas (`breaker_store`: older name)
    drain_timeout: float = 10.0
    record: Record | None = None
    source: Path | None = field(default=None, compare=False)

    def upstream(self, name: str) -> Upstream | None:
        for up in self.upstreams:
            if up.name == name:
                return up
        return None
