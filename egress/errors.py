"""The project's error tree: every refusal a caller can see, with its status and reason.

    EgressError (status, reason)                     -> application/problem+json
    ├── DestinationNotAllowed        403 destination_not_allowed
    ├── TunnelNotAllowed             403 tunnel_not_allowed
    ├── CallerMissing                403 caller_missing
    ├── CallerNotAllowed             403 caller_not_allowed
    ├── OperationNotAllowed          403 operation_not_allowed
    ├── OperationNotGranted          403 operation_not_granted  (grants)
    ├── CallerUnauthenticated        401 caller_unauthenticated (identity jwt/mtls)
    ├── InternalTokenInBody          403 internal_token_in_body
    ├── InternalTokenInPath          403 internal_token_in_path
    ├── MethodNotAllowed             403 method_not_allowed
    ├── BadRequest                   400 bad_request
    ├── RequestTooLarge              413 request_too_large
    ├── RequestEncodingNotSupported  415 request_encoding_not_supported
    ├── UpstreamError                502 (the provider failed or misbehaved)
    │   ├── UpstreamUnavailable      502 upstream_unavailable   (connect_failed: nothing was sent)
    │   ├── AddressBlocked           502 address_blocked        (nothing was sent)
    │   ├── RedirectBlocked          502 redirect_blocked
    │   ├── ResponseTooLarge         502 response_too_large
    │   ├── UnexpectedContentType    502 unexpected_content_type
    │   ├── UnexpectedContentEncoding 502 unexpected_content_encoding
    │   ├── InvalidJson              502 invalid_json
    │   ├── ContractViolation        502 contract_violation
    │   └── UpstreamTimeout          504 upstream_timeout
    ├── CircuitOpen                  503 circuit_open (retry_after seconds)
    ├── UpstreamSuspended            503 upstream_suspended     (kill switch; nothing sent)
    ├── CallerSuspended              403 caller_suspended       (kill switch; nothing sent)
    ├── CredentialUnavailable        503 credential_unavailable (no valid partner credential)
    ├── RateLimited                  429 rate_limited (retry_after; RateLimit headers)
    ├── ConcurrencyLimited           503 concurrency_limited (Retry-After: 1)
    └── ProxyOverloaded              503 proxy_overloaded (retry_after: decoded bytes in flight at the limit)

    ConfigError (not an EgressError): a list of "key.path message" problems.

`detail` is written by egress only: never a header value, token, credential or any part of
a third-party payload.  Foreign exceptions are translated where they are raised
(upstream.py for aiohttp, breaker.py for pybreaker, retry.py for tenacity) with `raise ... from exc`.
"""

from __future__ import annotations


class EgressError(Exception):
    status = 500
    reason = "internal_error"
    title = "Egress error"

    def __init__(self, detail: str = "", *, extra: dict | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra or {}


class DestinationNotAllowed(EgressError):
    status, reason, title = 403, "destination_not_allowed", "Destination not allowed"


class TunnelNotAllowed(EgressError):
    status, reason, title = 403, "tunnel_not_allowed", "Tunnels (CONNECT) are not allowed"


class CallerMissing(EgressError):
    status, reason, title = 403, "caller_missing", "Caller not identified"


class CallerNotAllowed(EgressError):
    status, reason, title = 403, "caller_not_allowed", "Caller not allowed for this upstream"


class OperationNotAllowed(EgressError):
    status, reason, title = 403, "operation_not_allowed", "Operation not in the upstream's contract"


class OperationNotGranted(EgressError):
    status, reason, title = 403, "operation_not_granted", "Operation not granted to this caller"


class CallerUnauthenticated(EgressError):
    status, reason, title = 401, "caller_unauthenticated", "Caller identity not proven"


class InternalTokenInBody(EgressError):
    status, reason, title = 403, "internal_token_in_body", "Internal token in request body"


class InternalTokenInPath(EgressError):
    status, reason, title = 403, "internal_token_in_path", "Internal token in request path"


class MethodNotAllowed(EgressError):
    status, reason, title = 403, "method_not_allowed", "Method not allowed through egress"


class BadRequest(EgressError):
    status, reason, title = 400, "bad_request", "Malformed request"


class RequestTooLarge(EgressError):
    status, reason, title = 413, "request_too_large", "Request body too large"


class RequestEncodingNotSupported(EgressError):
    status, reason, title = 415, "request_encoding_not_supported", "Request body encoding cannot be inspected"


class UpstreamError(EgressError):
    status, reason, title = 502, "upstream_error", "Upstream error"


class UpstreamUnavailable(UpstreamError):
    reason, title = "upstream_unavailable", "Upstream unavailable"

    def __init__(self, detail: str = "", *, connect_failed: bool = False, extra: dict | None = None):
        super().__init__(detail, extra=extra)
        #: True when no byte of the request can have reached the provider.
        self.connect_failed = connect_failed


class AddressBlocked(UpstreamError):
    reason, title = "address_blocked", "Upstream address blocked"


class RedirectBlocked(UpstreamError):
    reason, title = "redirect_blocked", "Upstream redirect blocked"


class ResponseTooLarge(UpstreamError):
    reason, title = "response_too_large", "Upstream response too large"


class UnexpectedContentType(UpstreamError):
    reason, title = "unexpected_content_type", "Unexpected upstream content type"


class UnexpectedContentEncoding(UpstreamError):
    reason, title = "unexpected_content_encoding", "Unsupported upstream content encoding"


class InvalidJson(UpstreamError):
    reason, title = "invalid_json", "Upstream response is not valid JSON"


class ContractViolation(UpstreamError):
    reason, title = "contract_violation", "Upstream response violates its contract"


class UpstreamTimeout(UpstreamError):
    status, reason, title = 504, "upstream_timeout", "Upstream timed out"


class CircuitOpen(EgressError):
    status, reason, title = 503, "circuit_open", "Circuit open for this upstream"

    def __init__(self, detail: str = "", *, retry_after: float = 1.0, extra: dict | None = None):
        super().__init__(detail, extra=extra)
        self.retry_after = retry_after


class UpstreamSuspended(EgressError):
    status, reason, title = 503, "upstream_suspended", "Upstream suspended by an operator"


class CallerSuspended(EgressError):
    status, reason, title = 403, "caller_suspended", "Caller suspended by an operator"


class CredentialUnavailable(EgressError):
    status, reason, title = 503, "credential_unavailable", "No valid partner credential"


class RateLimited(EgressError):
    """Over a token bucket, or the provider's own limit is held; `headers`: RateLimit fields."""
    status, reason, title = 429, "rate_limited", "Rate limit exceeded"

    def __init__(self, detail: str = "", *, retry_after: float = 1.0, headers: dict | None = None,
                 extra: dict | None = None):
        super().__init__(detail, extra=extra)
        self.retry_after, self.headers = retry_after, headers or {}


class ConcurrencyLimited(EgressError):
    status, reason, title = 503, "concurrency_limited", "Too many requests in flight to this upstream"
    retry_after = 1.0
    headers: dict = {}


class ProxyOverloaded(EgressError):
    status, reason, title = 503, "proxy_overloaded", "Egress is over its budget of bytes in flight"

    def __init__(self, detail: str = "", *, retry_after: float = 1.0, extra: dict | None = None):
        super().__init__(detail, extra=extra)
        self.retry_after = retry_after


class ConfigError(Exception):
    """Configuration or contract problems; each entry names its key path (or file + pointer)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ShuttingDown(EgressError):
    """SIGTERM's drain_timeout passed while the request was in flight (app.py: the drain)."""
    status, reason, title = 503, "shutting_down", "Egress is shutting down"
