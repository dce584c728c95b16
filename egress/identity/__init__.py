"""The caller stage: who is calling, proven how, and what it may call.

`Identity(settings).identify(request)` names the caller (modes.py: header.py, the caller header,
optionally signed; jwt.py + jwks.py, a verified bearer token; mtls.py, the client certificate);
`authorize` checks the upstream's allowlist and `authorize_operation` its grants (grants.py).
"""

from egress.identity.grants import Grants, authorize, authorize_operation, compile_grants
from egress.identity.header import ANONYMOUS, identify, sign
from egress.identity.jwt import Caller
from egress.identity.modes import Identity

__all__ = ["ANONYMOUS", "Caller", "Grants", "Identity", "authorize", "authorize_operation", "compile_grants",
           "identify", "sign"]
