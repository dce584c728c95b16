"""The identity config keys (`callers.identity|jwt|mtls`, `listen_tls`): each bad value is a config
error naming its key path; good ones load into the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from egress.config import settings_from_dict
from egress.errors import ConfigError

ISSUER = {"issuer": "https://kubernetes.default.svc", "jwks_url": "https://kubernetes.default.svc/openid/v1/jwks",
          "audiences": ["egress"]}


def doc(callers=None, **top) -> dict:
    d = {"upstreams": [{"name": "pay", "url": "https://api.pay.example"}], **top}
    if callers is not None:
        d["callers"] = callers
    return d


def tls_files(tmp_path) -> dict:
    for name in ("s.pem", "s.key", "ca.pem"):
        (tmp_path / name).write_text("x")
    return {"cert_file": "s.pem", "key_file": "s.key", "client_ca_file": "ca.pem"}


BAD = [
    ("unknown_mode", {"identity": "kerberos"}, {}, "callers.identity must be one of header | jwt | mtls"),
    ("jwt_without_issuers", {"identity": "jwt"}, {}, "callers.identity is jwt: give callers.jwt.issuers"),
    ("jwt_empty_issuers", {"identity": "jwt", "jwt": {"issuers": []}}, {}, "callers.jwt.issuers"),
    ("issuer_two_sources", {"identity": "jwt", "jwt": {"issuers": [{**ISSUER, "jwks_file": "k.json"}]}}, {},
     "callers.jwt.issuers[0] needs exactly one of jwks_url or jwks_file"),
    ("issuer_no_source", {"identity": "jwt", "jwt": {"issuers": [{"issuer": "i", "audiences": ["egress"]}]}}, {},
     "callers.jwt.issuers[0] needs exactly one of jwks_url or jwks_file"),
    ("issuer_no_audience", {"identity": "jwt", "jwt": {"issuers": [{**ISSUER, "audiences": []}]}}, {},
     "callers.jwt.issuers[0].audiences"),
    ("jwks_file_missing", {"identity": "jwt", "jwt": {"issuers": [
        {"issuer": "i", "jwks_file": "nope.json", "audiences": ["egress"]}]}}, {},
     "callers.jwt.issuers[0].jwks_file: file not found: nope.json"),
    ("alg_none", {"identity": "jwt", "jwt": {"issuers": [ISSUER], "algorithms": ["none"]}}, {},
     "callers.jwt.algorithms[0] must be one of"),
    ("alg_hmac", {"identity": "jwt", "jwt": {"issuers": [ISSUER], "algorithms": ["HS256"]}}, {},
     "callers.jwt.algorithms[0] must be one of"),
    ("pattern_invalid", {"identity": "jwt", "jwt": {"issuers": [ISSUER], "caller_pattern": "(unclosed"}}, {},
     "callers.jwt.caller_pattern is not a valid regular expression"),
    ("pattern_wrong_group", {"identity": "jwt", "jwt": {"issuers": [ISSUER], "caller_pattern": "^(?P<name>.+)$"}},
     {}, "callers.jwt.caller_pattern has groups but none named 'caller'"),
    ("leeway_too_big", {"identity": "jwt", "jwt": {"issuers": [ISSUER], "leeway": 3600}}, {},
     "callers.jwt.leeway must be <= 300"),
    ("mtls_without_listen_tls", {"identity": "mtls"}, {},
     "callers.identity is mtls: give listen_tls with client_ca_file"),
    ("mtls_bad_source", {"identity": "mtls", "mtls": {"caller_from": "email"}}, {},
     "callers.mtls.caller_from must be one of spiffe | dns | cn"),
    ("listen_tls_missing_file", {}, {"listen_tls": {"cert_file": "none.pem", "key_file": "none.key"}},
     "listen_tls.cert_file: file not found: none.pem"),
    ("listen_tls_without_key", {}, {"listen_tls": {"cert_file": "none.pem"}}, "listen_tls: missing required key(s) 'key_file'"),
]


@pytest.mark.parametrize("callers,top,message", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_identity_config_names_the_key(tmp_path, callers, top, message):
    with pytest.raises(ConfigError) as exc:
        settings_from_dict(doc(callers, **top), base_dir=tmp_path, environ={})
    assert any(message in p for p in exc.value.problems), exc.value.problems


def test_jwt_config_loads(tmp_path):
    s = settings_from_dict(doc({"identity": "jwt", "jwt": {"issuers": [ISSUER], "caller_pattern": "^(?P<caller>.+)$",
                                                          "algorithms": ["ES256"]}}),
                           base_dir=tmp_path, environ={})
    assert s.callers.identity == "jwt"
    assert s.callers.jwt.algorithms == ("ES256",)
    assert s.callers.jwt.issuers[0].audiences == ("egress",)


def test_mtls_config_loads_with_listen_tls(tmp_path):
    s = settings_from_dict(doc({"identity": "mtls", "mtls": {"caller_from": "dns"}}, listen_tls=tls_files(tmp_path)),
                           base_dir=tmp_path, environ={})
    assert s.callers.mtls.caller_from == "dns"
    assert s.listen_tls.client_ca_file == str(tmp_path / "ca.pem")


def test_header_stays_the_default():
    s = settings_from_dict(doc(), base_dir=Path("."), environ={})
    assert (s.callers.identity, s.callers.jwt, s.callers.mtls, s.listen_tls) == ("header", None, None, None)
