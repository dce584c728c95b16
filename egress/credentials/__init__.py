"""The credentials stage: inject the upstream's partner credential into what leaves.

Runs after sanitize (which stripped every internal credential); the caller never holds the
partner's secret.  static.py: a value from config (env).  The value is a `Secret`: it reaches
the outgoing header and nothing else (no log, span, metric or error).
"""

from egress.credentials.static import inject

__all__ = ["inject"]
