from pathlib import Path

import pytest

from egress.config import load_settings, settings_from_dict
from egress.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def problems(doc, environ=None):
    with pytest.raises(ConfigError) as info:
        settings_from_dict(doc, base_dir=Path("."), environ=environ or {})
    return info.value.problems


def ups(**over):
    return {"upstreams": [{"name": "pay", "url": "https://api.pay.example/v1", **over}]}


CASES = [
    ("negative-total", ups(timeout={"total": -1}), "upstreams[0].timeout.total must be > 0, got -1"),
    ("attempts-zero", ups(retry={"attempts": 0}), "upstreams[0].retry.attempts must be >= 1, got 0"),
    ("bad-mode", ups(mode="strict"), "upstreams[0].mode must be one of enforce | report | off, got 'strict'"),
    ("unknown-key", ups(timeouts={}), "upstreams[0]: unknown key(s) 'timeouts'"),
    ("bad-scheme", ups(url="ftp://x/y"), "upstreams[0].url must match ^https?://, got a string (value hidden)"),
    ("missing-upstreams", {}, "(top level): missing required key(s) 'upstreams'"),
    ("connect-over-total", ups(timeout={"connect": 5, "total": 1}),
     "upstreams[0].timeout.connect must be <= timeout.total, got 5 > 1"),
    ("missing-env", ups(credential={"header": "Authorization", "value": "Bearer ${PAY_TOKEN}"}),
     "upstreams[0].credential.value: environment variable PAY_TOKEN is not set"),
    ("url-with-query", ups(url="https://x.example/v1?k=1"), "upstreams[0].url must not carry credentials"),
    ("empty-callers", ups(callers=[]), "upstreams[0].callers must name at least one caller or '*', got []"),
    ("tls-file-missing", ups(tls={"ca_file": "nope.pem"}), "upstreams[0].tls.ca_file: file not found: nope.pem"),
    ("bad-listen", {"listen": "8080", **ups()}, "listen must match"),
    ("bad-body-mode", {"sanitize": {"on_internal_token_in_body": "drop"}, **ups()},
     "sanitize.on_internal_token_in_body must be one of block | redact | report, got 'drop'"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_config_errors_name_their_key_path(case):
    _, doc, expected = case
    found = problems(doc)
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_listed():
    doc = {"upstreams": [{"name": "a", "url": "https://x/v1", "timeout": {"total": -1}},
                         {"name": "b", "url": "https://y/v1", "retry": {"attempts": 0}}]}
    found = problems(doc)
    assert len(found) == 2


def test_duplicates_are_cross_checked():
    doc = {"upstreams": [{"name": "a", "url": "https://x/v1"}, {"name": "a", "url": "https://x/v1/"}]}
    found = problems(doc)
    assert "upstreams[1].name 'a' is already used by upstreams[0]" in found
    assert any(p.startswith("upstreams[1].url") and "already served" in p for p in found)


def test_credential_value_never_in_errors():
    secret = "sk_live_MARKER_123"
    found = problems(ups(credential={"header": "Bad Header", "value": secret}))
    assert found and all(secret not in p for p in found)
    found = problems(ups(credential={"header": "Authorization", "value": 12345}))
    assert found and all("12345" not in p for p in found)


def test_env_resolved_and_secret_repr_hidden():
    s = settings_from_dict(ups(credential={"header": "Authorization", "value": "Bearer ${TOK}"}),
                           base_dir=Path("."), environ={"TOK": "s3cr3t"})
    cred = s.upstreams[0].credential
    assert cred.value == "Bearer s3cr3t"
    assert "s3cr3t" not in repr(s)


def test_env_default():
    s = settings_from_dict(ups(credential={"header": "A", "value": "${TOK:-fallback}"}),
                           base_dir=Path("."), environ={})
    assert s.upstreams[0].credential.value == "fallback"


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("upstreams:\n  - name: a\n   url: x\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert "line 3" in info.value.problems[0]


def test_demo_config_loads():
    s = load_settings(REPO / "config" / "egress.yaml", {})
    assert [u.name for u in s.upstreams] == ["payments", "github"]
    assert s.contracts_dir == (REPO / "contracts").resolve()


def test_store_key_and_its_older_name(tmp_path):
    base = {"upstreams": [{"name": "p", "url": "https://api.example"}]}
    assert settings_from_dict({**base, "store": "redis://r:6379/0"}, base_dir=tmp_path, environ={}).store \
        == "redis://r:6379/0"
    assert settings_from_dict({**base, "breaker_store": "redis://r:6379/1"}, base_dir=tmp_path, environ={}).store \
        == "redis://r:6379/1"
    with pytest.raises(ConfigError) as err:
        settings_from_dict({**base, "store": "memory", "breaker_store": "redis://r:6379/1"}, base_dir=tmp_path,
                           environ={})
    assert err.value.problems == ["breaker_store is the older name of store: give one of them"]
