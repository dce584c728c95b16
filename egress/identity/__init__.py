"""The caller stage: who is calling, proven how, and what it may call.

`identify` names the caller (header.py: the caller header, optionally signed); `authorize`
checks the upstream's allowlist (grants.py).
"""

from egress.identity.grants import authorize
from egress.identity.header import ANONYMOUS, identify, sign

__all__ = ["ANONYMOUS", "authorize", "identify", "sign"]
