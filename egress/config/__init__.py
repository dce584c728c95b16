"""Configuration: the model (frozen dataclasses), its loader and the schema beside them."""

from egress.config.load import MIN_CALLER_KEY_CHARS, key_path, load_settings, parse_address, settings_from_dict
from egress.config.model import (
                                 BreakerSettings,
                                 Callers,
                                 Credential,
                                 Limits,
                                 ProviderLimits,
                                 RateLimit,
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

__all__ = ["MIN_CALLER_KEY_CHARS", "BreakerSettings", "Callers", "Credential", "Limits", "ProviderLimits", "RateLimit", "Record", "Redirects",
           "Retry", "Sanitize", "Secret", "Settings", "Timeout", "Tls", "Upstream", "key_path", "load_settings",
           "parse_address", "settings_from_dict"]
