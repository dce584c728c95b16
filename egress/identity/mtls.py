"""Caller identity from the client certificate (`callers.identity: mtls`) and the TLS data listener.

`server_context(listen_tls)` builds the data listener's TLS context: with `client_ca_file` a
client certificate signed by that CA is required (the handshake fails without one).
`caller_from_peer(peercert, settings) -> Caller` names the caller from the verified certificate
(`ssl.SSLSocket.getpeercert()` form): `spiffe` takes the one URI SAN (an X.509-SVID carries
exactly one, `spiffe://<trust domain>/<path>`), `dns` the one DNS SAN, `cn` the subject CN; then
`caller_pattern` (fullmatch; group `caller`), which also pins the trust domain.  No certificate,
two candidates, or no match: CallerUnauthenticated (401).
"""

from __future__ import annotations

import re
import ssl

from egress.config.model import ListenTls, MtlsSettings
from egress.errors import CallerUnauthenticated
from egress.identity.jwt import Caller, caller_name


def server_context(listen_tls: ListenTls | None) -> ssl.SSLContext | None:
    if listen_tls is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(listen_tls.cert_file, listen_tls.key_file)
    if listen_tls.client_ca_file is not None:
        ctx.load_verify_locations(cafile=listen_tls.client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class MtlsIdentifier:
    def __init__(self, settings: MtlsSettings) -> None:
        self.settings = settings
        self._pattern = re.compile(settings.caller_pattern) if settings.caller_pattern else None

    def identify(self, peercert: dict | None) -> Caller:
        if not peercert:
            raise CallerUnauthenticated("connect with TLS and a client certificate (callers.identity: mtls)")
        how = self.settings.caller_from
        if how == "cn":
            values = [v for rdn in peercert.get("subject", ()) for k, v in rdn if k == "commonName"]
        else:
            kind = "URI" if how == "spiffe" else "DNS"
            values = [v for k, v in peercert.get("subjectAltName", ()) if k == kind]
            if how == "spiffe":
                values = [v for v in values if v.lower().startswith("spiffe://")] if len(values) == 1 else values
        what = {"spiffe": "certificate's SPIFFE ID (URI SAN)", "dns": "certificate's DNS SAN",
                "cn": "certificate's subject CN"}[how]
        if len(values) != 1:
            raise CallerUnauthenticated(f"the {what} must be exactly one, found {len(values)}")
        return Caller(caller_name(values[0], self._pattern, what), frozenset(), "mtls")
