import pytest

from egress.observe.templating import OperationNames, template_path

CASES = [
    ("digits", "/users/12345", "/users/{id}"),
    ("uuid", "/a/550e8400-e29b-41d4-a716-446655440000", "/a/{id}"),
    ("hex", "/commits/9f8e7d6c5b4a", "/commits/{id}"),
    ("prefixed-id", "/charges/ch_1", "/charges/{id}"),
    ("mixed-token", "/keys/sk_live_AbCdEfGhIjKlMnOp", "/keys/{id}"),
    ("date", "/reports/2024-01-01", "/reports/{id}"),
    ("percent-encoded", "/u/john%40example.com", "/u/{id}"),
    ("version-words-stay", "/v1/oauth2/token", "/v1/oauth2/token"),
    ("file-name-stays", "/files/report.pdf", "/files/report.pdf"),
    ("camel-word-stays", "/paymentMethods", "/paymentMethods"),
    ("query-dropped", "/search?q=secret", "/search"),
    ("root", "/", "/"),
    ("empty", "", "/"),
    ("too-long", "/" + "a" * 40, "/{id}"),
    ("deep", "/a/b/c/d/e/f/g/h/i/j", "/a/b/c/d/e/f/g/h/..."),
    # secret-looking words (issue 12): never verbatim in /metrics, the inventory or the access log
    ("stripe-key-lowercase", "/keys/sk_live_abcdefghijklmnop", "/keys/{id}"),
    ("openai-style-key", "/k/sk-proj-abcdefghij", "/k/{id}"),
    ("github-token", "/t/ghp_abcdefghijklmnopqrstuvwxyz", "/t/{id}"),
    ("slack-token", "/t/xoxb-abcdefghijkl", "/t/{id}"),
    ("aws-key-uppercase", "/t/AKIAABCDEFGHIJKLMNOP", "/t/{id}"),
    ("long-uppercase-random", "/t/QWHXKZMVTRPLBNFD", "/t/{id}"),
    ("jwt-head", "/t/eyJhbGciOiJIUzI1NiJ9", "/t/{id}"),
    ("random-lowercase-16", "/a/qwhxkzmvtrplbnfd", "/a/{id}"),
    ("random-lowercase-with-underscore", "/a/tok_bcdfghjklmnp", "/a/{id}"),
    ("long-words-stay", "/v1/subscriptions/webhookendpoints", "/v1/subscriptions/webhookendpoints"),
    ("snake-words-stay", "/v1/payment_intents/search", "/v1/payment_intents/search"),
    ("api-words-stay", "/v1/chat/completions", "/v1/chat/completions"),
    ("skip-is-a-word", "/keys/skip", "/keys/skip"),
]


@pytest.mark.parametrize("raw, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_template_path(raw, expected):
    assert template_path(raw) == expected


def test_contract_template_wins_and_cap_gives_other():
    names = OperationNames(per_upstream=3)
    assert names.name("pay", "GET", "/charges/ch_1", "GET /charges/{id}") == "GET /charges/{id}"
    assert names.name("pay", "GET", "/users/1", None) == "GET /users/{id}"
    assert names.name("pay", "POST", "/users/1", None) == "POST /users/{id}"
    assert names.name("pay", "GET", "/other/thing", None) == "other"
    assert names.name("pay", "GET", "/users/2", None) == "GET /users/{id}"   # existing slot kept
    assert names.name("maps", "GET", "/other/thing", None) == "GET /other/thing"
    assert names.name("", "GET", "/x", None) == ""


def test_ten_thousand_random_words_stay_bounded():
    names = OperationNames(per_upstream=200)
    out = {names.name("pay", "GET", f"/w{chr(97 + i % 26)}{chr(97 + (i // 26) % 26)}x/{i}/{'q' * (i % 5)}", None)
           for i in range(10_000)}
    assert len(out) <= 201 and names.count("pay") == 200


MASKED = [
    ("ordinary-ids-kept", "https://api.example/v1/charges/ch_1a2b", "https://api.example/v1/charges/ch_1a2b"),
    ("uuid-kept", "https://api.example/v1/a/550e8400-e29b-41d4-a716-446655440000",
     "https://api.example/v1/a/550e8400-e29b-41d4-a716-446655440000"),
    ("stripe-key-masked", "https://api.example/v1/keys/sk_live_abcdefghijklmnop/usage",
     "https://api.example/v1/keys/{secret}/usage"),
    ("matrix-param-masked", "https://api.example/v1/x;key=ghp_abcdefghijklmnop", "https://api.example/v1/{secret}"),
    ("random-word-masked", "http://127.0.0.1:8080/t/qwhxkzmvtrplbnfd", "http://127.0.0.1:8080/t/{secret}"),
    ("encoded-masked", "https://api.example/k/sk%5Flive%5Fabcdefghij", "https://api.example/k/{secret}"),
    ("no-scheme", "/k/xoxb-abcdefghij", "/k/{secret}"),
]


@pytest.mark.parametrize("url, expected", [c[1:] for c in MASKED], ids=[c[0] for c in MASKED])
def test_mask_secrets_for_url_full(url, expected):
    from egress.observe.templating import mask_secrets
    assert mask_secrets(url) == expected
