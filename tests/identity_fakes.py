"""Fakes for caller identity: a token issuer whose JWKS is served by a real aiohttp app on
127.0.0.1 port 0 (RSA, EC and Ed25519 keys made here; rotation, outage), hand-made hostile
tokens, and a client-certificate CA that puts SPIFFE IDs in URI SANs (trustme cannot)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from tests.fakes import Served

ISSUER = "https://kubernetes.default.svc"
SUBJECT = "system:serviceaccount:shop:checkout"
PATTERN = r"^system:serviceaccount:[^:]+:(?P<caller>[^:]+)$"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key(kind: str):
    if kind == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def public_jwk(private, kid: str, alg: str) -> dict:
    algo = jwt.get_algorithm_by_name(alg)
    jwk = json.loads(algo.to_jwk(private.public_key()))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


@dataclass
class FakeIssuer(Served):
    """A token issuer: `keys` kid -> (private key, alg); `jwks()` what its endpoint serves (any
    path; over TLS when `ssl_context` is set).  `FakeIssuer.with_keys(k1="RS256")` makes one."""
    issuer: str = ISSUER
    keys: dict = field(default_factory=dict)
    status: int = 200           # set 503 for an outage
    fetches: int = 0
    extra_jwks: list = field(default_factory=list)   # raw JWK dicts served as they are
    delay: float = 0.0               # seconds before answering (a slow issuer)
    required_token: str | None = None  # the JWKS endpoint wants "Authorization: Bearer <it>" (kube-apiserver)
    ssl_context: object = None
    runner: web.BaseRunner | None = None

    @classmethod
    def with_keys(cls, **kid_alg: str) -> "FakeIssuer":
        """An issuer (not started) holding a new key per kid=alg, in that order."""
        fake = cls()
        for kid, alg in kid_alg.items():
            fake.add_key(kid, alg)
        return fake

    def add_key(self, kid: str, alg: str = "RS256"):
        self.keys[kid] = (new_key(alg), alg)
        return self.keys[kid][0]

    def jwks(self) -> dict:
        return {"keys": [public_jwk(k, kid, alg) for kid, (k, alg) in self.keys.items()] + self.extra_jwks}

    def token(self, kid: str = "k1", *, sub: str = SUBJECT, aud="egress", ttl: float = 600, now=None,
              extra: dict | None = None, drop: tuple = (), headers: dict | None = None) -> str:
        now = time.time() if now is None else now
        claims = {"iss": self.issuer, "sub": sub, "aud": aud, "iat": int(now), "nbf": int(now),
                  "exp": int(now + ttl), **(extra or {})}
        for name in drop:
            claims.pop(name, None)
        private, alg = self.keys[kid]
        return jwt.encode(claims, private, algorithm=alg, headers={"kid": kid, **(headers or {})})

    async def start(self) -> "FakeIssuer":
        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            self.fetches += 1
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.status != 200:
                return web.Response(status=self.status, text="down")
            if self.required_token and request.headers.get("Authorization") != f"Bearer {self.required_token}":
                return web.Response(status=401, text="unauthorized")
            return web.json_response(self.jwks())

        await self.serve(handler)
        return self

    @property
    def jwks_url(self) -> str:
        return self.base_url + "/openid/v1/jwks"


def unsigned(claims: dict, header: dict) -> str:
    """A token with the given header and no (or an empty) signature: `alg: none`."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


def hmac_with_public_key(claims: dict, public_pem: bytes, kid: str) -> str:
    """The alg-confusion attack: HS256 keyed with the issuer's public key (which anyone has)."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def public_pem(private) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


class ClientCA:
    """A CA for client certificates with URI SANs (SPIFFE X.509-SVIDs), DNS SANs or a CN only."""

    def __init__(self, name: str = "spiffe test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))

    def write_ca(self, path) -> str:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return str(path)

    def issue(self, tmp_path, name: str, *, uris=(), dns=(), cn: str = "client") -> tuple[str, str]:
        """(cert file, key file) for a client certificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        sans = [x509.UniformResourceIdentifier(u) for u in uris] + [x509.DNSName(d) for d in dns]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return str(cert_file), str(key_file)
