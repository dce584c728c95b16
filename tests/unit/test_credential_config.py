"""Config of partner credentials (value | value_file | oauth2) and of the admin token: every
problem names its key path, none shows a secret value."""

import pytest

from egress.config import settings_from_dict
from egress.config.secrets import admin_exposed_problem, is_loopback
from egress.errors import ConfigError

SECRET = "s3cr3t-value-MARKER-xyz"


def build(doc, tmp_path, environ=None):
    return settings_from_dict(doc, base_dir=tmp_path, environ=environ or {"SECRET": SECRET})


def problems(doc, tmp_path, environ=None):
    with pytest.raises(ConfigError) as info:
        build(doc, tmp_path, environ)
    return info.value.problems


def ups(cred, **over):
    return {"upstreams": [{"name": "pay", "url": "https://api.pay.example/v1", "credential": cred, **over}]}


OAUTH = {"token_url": "https://auth.pay.example/oauth/token", "client_id": "egress", "client_secret": "${SECRET}"}

CASES = [
    ("value_and_file", ups({"header": "X-Key", "value": "${SECRET}", "value_file": "k"}),
     "upstreams[0].credential needs exactly one of value | value_file | oauth2, got value + value_file"),
    ("no_form", ups({"header": "X-Key"}),
     "upstreams[0].credential needs exactly one of value | value_file | oauth2, got none"),
    ("value_file_missing", ups({"header": "X-Key", "value_file": "secrets/nope"}),
     "upstreams[0].credential.value_file: cannot read file secrets/nope"),
    ("value_file_empty", ups({"header": "X-Key", "value_file": "empty"}),
     "upstreams[0].credential.value_file: file is empty: empty"),
    ("prefix_with_value", ups({"header": "X-Key", "value": "${SECRET}", "prefix": "Bearer "}),
     "upstreams[0].credential.prefix goes with value_file or oauth2"),
    ("oauth2_two_secrets", ups({"header": "Authorization", "oauth2": {**OAUTH, "client_secret_file": "k"}}),
     "upstreams[0].credential.oauth2 needs exactly one of client_secret | client_secret_file"),
    ("oauth2_no_secret", ups({"header": "Authorization", "oauth2": {k: v for k, v in OAUTH.items()
                                                                    if k != "client_secret"}}),
     "upstreams[0].credential.oauth2 needs exactly one of client_secret | client_secret_file"),
    ("oauth2_plain_http", ups({"header": "Authorization", "oauth2": {**OAUTH, "token_url": "http://auth/t"}}),
     "upstreams[0].credential.oauth2.token_url must be https"),
    ("oauth2_url_with_userinfo", ups({"header": "Authorization",
                                      "oauth2": {**OAUTH, "token_url": "https://u:p@auth/t"}}),
     "upstreams[0].credential.oauth2.token_url must name a host and carry no credentials"),
    ("oauth2_bad_method", ups({"header": "Authorization", "oauth2": {**OAUTH, "auth_method": "private_key_jwt"}}),
     "upstreams[0].credential.oauth2.auth_method must be one of client_secret_basic | client_secret_post"),
    ("oauth2_refresh_over_1", ups({"header": "Authorization", "oauth2": {**OAUTH, "refresh_at": 1.5}}),
     "upstreams[0].credential.oauth2.refresh_at must be <= 1"),
    ("admin_beyond_loopback", {"admin_listen": "0.0.0.0:9090", **ups(None)},
     "admin_token: required when admin_listen (0.0.0.0:9090) is beyond loopback"),
    ("admin_token_short", {"admin_token": "short", **ups(None)}, "admin_token must be at least 16 characters"),
    ("admin_token_both", {"admin_token": "${SECRET}", "admin_token_file": "k", **ups(None)},
     "admin_token and admin_token_file: give one of them"),
    ("admin_token_file_missing", {"admin_token_file": "nope", **ups(None)},
     "admin_token_file: cannot read file nope"),
]


@pytest.mark.parametrize("case, doc, expected", CASES, ids=[c[0] for c in CASES])
def test_problems_name_the_key_and_hide_the_value(tmp_path, case, doc, expected):
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "k").write_text(SECRET)
    found = problems(doc, tmp_path)
    assert any(p.startswith(expected) for p in found), found
    assert not any(SECRET in p for p in found)


def test_each_form_loads(tmp_path):
    (tmp_path / "key").write_text(SECRET + "\n")
    doc = {"admin_token_file": "key", "admin_listen": "0.0.0.0:9090", "upstreams": [
        {"name": "a", "url": "https://a.example", "credential": {"header": "X-Key", "value": "${SECRET}"}},
        {"name": "b", "url": "https://b.example", "credential": {"header": "X-Key", "value_file": "key"}},
        {"name": "c", "url": "https://c.example", "credential": {"header": "Authorization", "oauth2": {
            **OAUTH, "scope": "charges:read", "auth_method": "client_secret_post"}}},
    ]}
    settings = build(doc, tmp_path)
    a, b, c = (up.credential for up in settings.upstreams)
    assert (a.kind, b.kind, c.kind) == ("static", "file", "oauth2")
    assert b.value_file == str(tmp_path / "key") and b.value is None
    assert c.oauth2.client_secret == SECRET and str(c.oauth2.token_url) == OAUTH["token_url"]
    assert SECRET not in repr(settings)
    assert settings.admin_token_file == str(tmp_path / "key")


@pytest.mark.parametrize("listen, insecure, refused", [
    (("127.0.0.1", 9090), False, False),
    (("::1", 9090), False, False),
    (("localhost", 9090), False, False),
    (("0.0.0.0", 9090), False, True),
    (("::", 9090), False, True),
    (("10.0.0.7", 9090), False, True),
    (("0.0.0.0", 9090), True, False),
], ids=["ipv4_loopback", "ipv6_loopback", "localhost", "any_ipv4", "any_ipv6", "pod_ip", "insecure_on_purpose"])
def test_admin_beyond_loopback_needs_a_token(listen, insecure, refused):
    assert (admin_exposed_problem(listen, insecure) is not None) is refused
    assert is_loopback(listen[0]) is (listen[0] in ("127.0.0.1", "::1", "localhost"))


def test_admin_insecure_is_explicit(tmp_path):
    settings = build({"admin_listen": "0.0.0.0:9090", "admin_insecure": True, **ups(None)}, tmp_path)
    assert settings.admin_insecure and settings.admin_token is None


def test_app_refuses_to_start_an_exposed_admin_port(tmp_path):
    from dataclasses import replace

    from egress.admin_auth import refuse_exposed_admin
    settings = build(ups(None), tmp_path)
    refuse_exposed_admin(settings)   # loopback: fine
    with pytest.raises(ConfigError, match="admin_token: required"):
        refuse_exposed_admin(replace(settings, admin_listen=("0.0.0.0", 9090)))
    refuse_exposed_admin(replace(settings, admin_listen=("0.0.0.0", 9090), admin_token="x" * 20))
