"""The configuration model: frozen dataclasses, one per config section, and `Secret`.

Built only by `config.load` (YAML -> schema check -> these values); read by every stage.
Credential values are `Secret`s, whose repr never shows the value.
"""


from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
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
    stream: float = 600.0  # longest streamed body, from its response headers to its last byte


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
class ProcessLimits:
    """Top-level `limits`: bounds for the whole process, across all upstreams."""
    max_inflight_bytes: int = 134217728  # decoded response bytes held at once; beyond: 503 proxy_overloaded


@dataclass(frozen=True)
class ContractOptions:
    """How a vendor document is read: `nullable` lenient|strict, `formats` assert|ignore."""

    nullable: str = "lenient"
    formats: str = "assert"


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
class OAuth2:
    """OAuth2 client credentials (RFC 6749 4.4) for an upstream (credentials/oauth2.py)."""
    token_url: URL
    client_id: str
    client_secret: Secret | None = None      # from env; or client_secret_file (re-read on change)
    client_secret_file: str | None = None
    scope: str | None = None
    audience: str | None = None
    auth_method: str = "client_secret_basic"  # client_secret_basic | client_secret_post
    refresh_at: float = 0.8                   # fraction of expires_in after which it is renewed
    timeout: float = 5.0


@dataclass(frozen=True)
class RateLimit:
    """One token bucket (`rate_limits[i]`): `rate` tokens per second, at most `burst`."""
    per: str = "upstream"            # upstream (all callers together) | caller (each caller)
    rate: float = 1.0
    burst: float = 1.0
    operation: str | None = None     # "POST /charges": only this contract operation


@dataclass(frozen=True)
class ProviderLimits:
    """How the provider's own limits are honoured (429/503 Retry-After; remaining headers)."""
    max_hold: float = 300.0          # longest Retry-After honoured (seconds)
    hold_below_remaining: int | None = None   # opt-in: remaining < this -> hold until its reset


@dataclass(frozen=True)
class Credential:
    header: str
    value: Secret | None = None      # static (env)
    value_file: str | None = None    # or a file, re-read when it changes (credentials/file.py)
    prefix: str | None = None        # before a file's or token's value ("" / "Bearer ")
    oauth2: OAuth2 | None = None     # or short-lived tokens (credentials/oauth2.py)

    @property
    def kind(self) -> str:
        return "oauth2" if self.oauth2 is not None else ("file" if self.value_file else "static")


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
    # least privilege per operation: (caller | "scope:NAME" | "*", ("GET /charges/{id}", "GET *", ...))
    grants: tuple[tuple[str, tuple[str, ...]], ...] = ()
    rate_limits: tuple[RateLimit, ...] = ()
    concurrency: int | None = None   # requests in flight to this upstream (per replica)
    provider_limits: ProviderLimits = ProviderLimits()
    contract_options: ContractOptions = ContractOptions()

    @cached_property  # read on every request; the url never changes (frozen)
    def host(self) -> str:
        return self.url.host or ""

    @cached_property
    def port(self) -> int:
        return self.url.port or (443 if self.url.scheme == "https" else 80)

    @cached_property
    def base_path(self) -> str:
        """The url's path without a trailing slash ("" for the root)."""
        return self.url.raw_path.rstrip("/")

    @cached_property
    def origin(self) -> str:
        return str(self.url.origin())

    def allows_caller(self, caller: str) -> bool:
        return "*" in self.callers or caller in self.callers


@dataclass(frozen=True)
class JwtIssuer:
    """One trusted token issuer (`callers.jwt.issuers[i]`): its keys from `jwks_url` or `jwks_file`."""
    issuer: str
    audiences: tuple[str, ...]
    jwks_url: str | None = None
    jwks_file: Path | None = None
    ca_file: str | None = None  # trust for jwks_url (e.g. the cluster CA); default: system roots
    jwks_token_file: str | None = None  # egress's own bearer token for jwks_url (re-read per fetch)


@dataclass(frozen=True)
class JwtSettings:
    header: str = "Authorization"   # "Bearer <token>"; always stripped
    issuers: tuple[JwtIssuer, ...] = ()
    caller_claim: str = "sub"
    caller_pattern: str | None = None   # fullmatch; the name is group `caller` (or the whole claim)
    scopes_claim: str = "scope"
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    leeway: float = 30.0
    max_token_bytes: int = 8192
    jwks_refresh: float = 300.0         # seconds between background refreshes
    jwks_min_refresh: float = 5.0       # an unknown kid refreshes at most this often
    jwks_timeout: float = 5.0


@dataclass(frozen=True)
class MtlsSettings:
    caller_from: str = "spiffe"         # spiffe (URI SAN) | dns | cn
    caller_pattern: str | None = None   # fullmatch; pins the trust domain


@dataclass(frozen=True)
class ListenTls:
    cert_file: str
    key_file: str
    client_ca_file: str | None = None   # set: client certificates are required


@dataclass(frozen=True)
class Callers:
    header: str = "X-Egress-Caller"
    required: bool = True
    # opt-in signed identity: caller name -> HMAC key; a name listed here is accepted only with
    # a valid `signature_header` (callers.py); names not listed are trusted as before
    hmac_keys: tuple[tuple[str, Secret], ...] = ()
    signature_header: str = "X-Egress-Caller-Signature"
    max_skew: float = 300.0
    identity: str = "header"            # header | jwt | mtls (identity/)
    jwt: JwtSettings | None = None
    mtls: MtlsSettings | None = None

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
    # strip_headers given in config add to STRIP_FLOOR (sanitize.py) unless this is false
    keep_defaults: bool = True


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
    listen_tls: ListenTls | None = None
    admin_token: Secret | None = None       # /admin/* needs "Authorization: Bearer <it>" (admin.py)
    admin_token_file: str | None = None     # or the token in a file, re-read when it changes
    admin_insecure: bool = False            # admin beyond loopback without a token: explicit only
    limits: ProcessLimits = ProcessLimits()
    source: Path | None = field(default=None, compare=False)

    def upstream(self, name: str) -> Upstream | None:
        for up in self.upstreams:
            if up.name == name:
                return up
        return None
