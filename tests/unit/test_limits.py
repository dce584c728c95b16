"""Token-bucket arithmetic, the limiter's decisions and the provider's headers, as named cases."""

from __future__ import annotations

import pytest

from dataclasses import replace

from egress.config import RateLimit, settings_from_dict
from egress.errors import ConcurrencyLimited, ConfigError, RateLimited
from egress.exchange import Exchange
from egress.send.limits import Limiter, _remaining, workers_from_env
from egress.store.buckets import BucketSpec, BucketTable, parse_lua_reply, retry_after, take


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# (id, rate, burst, steps): each step = (advance clock by, expected allowed)
BUCKET_CASES = [
    ("burst_then_refused", 1, 3, [(0, True), (0, True), (0, True), (0, False)]),
    ("refill_one_per_second", 1, 1, [(0, True), (0.5, False), (0.5, True), (0, False)]),
    ("fractional_rate_0.5", 0.5, 1, [(0, True), (1.0, False), (1.0, True)]),
    ("fractional_rate_2.5", 2.5, 1, [(0, True), (0.3, False), (0.1, True)]),
    ("refill_capped_at_burst", 10, 2, [(0, True), (0, True), (60, True), (0, True), (0, False)]),
    ("clock_jump_back_refills_nothing", 1, 1, [(0, True), (-30, False), (0.5, False), (0.5, True)]),
    ("clock_jump_forward_capped", 1, 2, [(0, True), (0, True), (3600, True), (0, True), (0, False)]),
    ("fractional_burst_1.5", 1, 1.5, [(0, True), (0.4, False), (0.1, True)]),
]


@pytest.mark.parametrize("rate,burst,steps", [c[1:] for c in BUCKET_CASES], ids=[c[0] for c in BUCKET_CASES])
def test_bucket_arithmetic(rate, burst, steps):
    clock = Clock()
    table = BucketTable(clock=clock)
    spec = BucketSpec("u|0|*", rate, burst)
    for i, (advance, expected) in enumerate(steps):
        clock.now += advance
        got = table.take([spec])
        assert got.allowed is expected, f"step {i}"
        assert (got.wait == 0) is expected, f"step {i}: a refusal says how long to wait"


# (id, states, specs, now, allowed, wait, tokens after)
TAKE_CASES = [
    ("fresh_bucket_is_full", [None], [(1, 5)], 10.0, True, 0.0, [4.0]),
    ("empty_waits_for_one_token", [(0.0, 10.0)], [(2, 5)], 10.0, False, 0.5, [0.0]),
    ("partial_token_waits_for_rest", [(0.25, 10.0)], [(1, 5)], 10.0, False, 0.75, [0.25]),
    ("any_refusal_spends_nothing", [None, (0.0, 10.0)], [(1, 5), (1, 1)], 10.0, False, 1.0, [5.0, 0.0]),
    ("all_admit_all_spend", [None, (1.0, 10.0)], [(1, 5), (1, 1)], 10.0, True, 0.0, [4.0, 0.0]),
    ("longest_wait_wins", [(0.0, 10.0), (0.5, 10.0)], [(0.1, 1), (1, 1)], 10.0, False, 10.0, [0.0, 0.5]),
    ("backwards_clock_no_refill", [(0.0, 20.0)], [(1, 1)], 10.0, False, 1.0, [0.0]),
]


@pytest.mark.parametrize("states,specs,now,allowed,wait,tokens", [c[1:] for c in TAKE_CASES],
                         ids=[c[0] for c in TAKE_CASES])
def test_take_over_several_buckets(states, specs, now, allowed, wait, tokens):
    got_allowed, got_wait, got_tokens = take(states, [BucketSpec(f"k{i}", r, b) for i, (r, b) in enumerate(specs)],
                                             now)
    assert (got_allowed, got_wait, got_tokens) == (allowed, pytest.approx(wait), pytest.approx(tokens))


def test_fair_share_scales_rate_and_burst():
    clock = Clock()
    table = BucketTable(clock=clock)
    spec = BucketSpec("u|0|*", 10, 9)
    admitted = sum(table.take([spec], 1 / 3).allowed for _ in range(10))
    assert admitted == 3          # burst 9 / 3 replicas
    clock.now += 1.0
    assert sum(table.take([spec], 1 / 3).allowed for _ in range(10)) == 3   # 10/s / 3, ~3.3 per s


def test_table_is_bounded():
    clock = Clock()
    table = BucketTable(clock=clock, max_keys=100)
    for i in range(1000):
        table.take([BucketSpec(f"c{i}", 1, 1)])
    assert len(table) <= 100


@pytest.mark.parametrize("wait,expected", [(0.0, 1), (0.2, 1), (1.0, 1), (1.01, 2), (4.5, 5)],
                         ids=["zero", "fraction", "exact", "just_over", "half"])
def test_retry_after_rounds_up_to_whole_seconds(wait, expected):
    assert retry_after(wait) == expected


@pytest.mark.parametrize("reply,allowed,held", [([1, "0", "4"], True, 0.0), ([0, "0.5", "0.2"], False, 0.0),
                                                ([-1, "5000"], False, 5.0)],
                         ids=["admitted", "refused", "held"])
def test_lua_reply_parsed(reply, allowed, held):
    got = parse_lua_reply(reply, 1)
    assert (got.allowed, got.held) == (allowed, held)


def test_lua_reply_of_wrong_shape_is_an_error():
    with pytest.raises(ValueError):
        parse_lua_reply([1, "0"], 2)


# ------------------------------------------------------------ the limiter

def upstream(**kw):
    doc = {"upstreams": [{"name": "pay", "url": "https://api.pay.example", **kw}]}
    return settings_from_dict(doc, base_dir=__import__("pathlib").Path("."), environ={}).upstreams[0]


async def run(limiter, up, caller="checkout", op=None):
    ex = Exchange("GET")
    try:
        permit = await limiter.admit(up, caller, op, ex)
    except (RateLimited, ConcurrencyLimited) as err:
        return err, ex
    return permit, ex


async def test_per_caller_buckets_are_separate_upstream_bucket_is_shared():
    clock = Clock()
    lim = Limiter(clock=clock)
    up = upstream(rate_limits=[{"per": "upstream", "rate": 1, "burst": 3}, {"per": "caller", "rate": 1, "burst": 2}])
    outcomes = [(c, type((await run(lim, up, c))[0]).__name__) for c in ["a", "a", "a", "b", "b"]]
    assert outcomes == [("a", "Permit"), ("a", "Permit"), ("a", "RateLimited"), ("b", "Permit"), ("b", "RateLimited")]
    err, ex = await run(lim, up, "b")
    assert err.reason == "rate_limited" and err.status == 429
    assert err.headers["RateLimit"].startswith('"rate_limits[0]";r=0;t=1')
    assert err.headers["RateLimit-Policy"] == '"rate_limits[0]";q=3;w=3, "rate_limits[1]";q=2;w=2'
    assert [e.name for e in ex.events] == ["egress.limit_exceeded"]
    assert ex.events[0].attrs == {"limit": "rate_limits[0]", "retry_after": 1}


async def test_operation_limit_applies_to_its_operation_only():
    lim = Limiter(clock=Clock())
    up = replace(upstream(), rate_limits=(RateLimit("caller", 1, 1, "POST /charges"),))
    assert type((await run(lim, up, op="POST /charges"))[0]).__name__ == "Permit"
    assert (await run(lim, up, op="POST /charges"))[0].reason == "rate_limited"
    assert type((await run(lim, up, op="GET /charges/{id}"))[0]).__name__ == "Permit"


async def test_concurrency_refuses_at_once_and_frees_on_release():
    lim = Limiter(clock=Clock())
    up = upstream(concurrency=2)
    first, second = (await run(lim, up))[0], (await run(lim, up))[0]
    err, _ = await run(lim, up)
    assert (err.status, err.reason, err.retry_after) == (503, "concurrency_limited", 1.0)
    first.release()
    first.release()            # twice: counted once
    assert lim.in_flight["pay"] == 1
    assert type((await run(lim, up))[0]).__name__ == "Permit"
    second.release()


async def test_refused_by_bucket_frees_its_concurrency_slot():
    lim = Limiter(clock=Clock())
    up = upstream(concurrency=5, rate_limits=[{"rate": 1, "burst": 1}])
    await run(lim, up)
    assert (await run(lim, up))[0].reason == "rate_limited"
    assert lim.in_flight["pay"] == 1


# (id, status, headers, hold seconds or None)
HOLD_CASES = [
    ("429_retry_after", 429, {"Retry-After": "5"}, 5.0),
    ("503_retry_after", 503, {"Retry-After": "2"}, 2.0),
    ("429_without_retry_after", 429, {}, None),
    ("200_with_retry_after_ignored", 200, {"Retry-After": "5"}, None),
    ("retry_after_capped_by_max_hold", 429, {"Retry-After": "86400"}, 300.0),
    ("retry_after_garbage", 429, {"Retry-After": "soon"}, None),
    ("http_date", 429, {"Retry-After": "Thu, 01 Jan 1970 00:16:50 GMT"}, 10.0),   # wall clock is 1000
]


@pytest.mark.parametrize("status,headers,hold", [c[1:] for c in HOLD_CASES], ids=[c[0] for c in HOLD_CASES])
async def test_provider_answer_holds_the_upstream(status, headers, hold):
    clock = Clock()
    lim = Limiter(clock=clock, wall=lambda: 1000.0)
    up = upstream()
    lim.provider_answered(up, None, status, headers, Exchange("GET"))
    err, ex = await run(lim, up)
    if hold is None:
        assert type(err).__name__ == "Permit"
        return
    assert (err.reason, err.retry_after) == ("rate_limited", retry_after(hold))
    assert ex.events[0].attrs["limit"] == "provider_hold"
    clock.now += hold + 0.01
    assert type((await run(lim, up))[0]).__name__ == "Permit"


async def test_operation_scoped_hold_spares_other_operations():
    lim = Limiter(clock=Clock())
    up = upstream(breaker={"scope": "operation"})
    lim.provider_answered(up, "POST /charges", 429, {"Retry-After": "5"}, Exchange("POST"))
    assert (await run(lim, up, op="POST /charges"))[0].reason == "rate_limited"
    assert type((await run(lim, up, op="GET /charges"))[0]).__name__ == "Permit"


async def test_opt_in_slow_down_before_quota_is_gone():
    lim = Limiter(clock=Clock(), wall=lambda: 1000.0)
    up = upstream(provider_limits={"hold_below_remaining": 5})
    lim.provider_answered(up, None, 200, {"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "30"}, Exchange("GET"))
    err, _ = await run(lim, up)
    assert (err.reason, err.retry_after) == ("rate_limited", 30)
    assert lim.provider["pay"] == {"remaining": 3.0, "reset": 30.0}


# (id, headers, remaining, reset)
REMAINING_CASES = [
    ("ratelimit_remaining", {"RateLimit-Remaining": "42", "RateLimit-Reset": "7"}, 42.0, 7.0),
    ("x_ratelimit_epoch_reset", {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2000000000"}, 0.0,
     2000000000 - 1000.0),
    ("ietf_structured", {"RateLimit": '"default";r=50;t=30'}, 50.0, 30.0),
    ("garbage", {"X-RateLimit-Remaining": "lots", "X-RateLimit-Reset": "-3"}, None, None),
    ("none", {}, None, None),
]


@pytest.mark.parametrize("headers,remaining,reset", [c[1:] for c in REMAINING_CASES],
                         ids=[c[0] for c in REMAINING_CASES])
def test_provider_remaining_headers(headers, remaining, reset):
    assert _remaining(headers, 1000.0) == (remaining, reset)


@pytest.mark.parametrize("env,workers", [({}, 1), ({"EGRESS_WORKERS": "4"}, 4), ({"EGRESS_WORKERS": "x"}, 1),
                                         ({"EGRESS_WORKERS": "0"}, 1)], ids=["unset", "four", "garbage", "zero"])
def test_workers_from_env(env, workers):
    assert workers_from_env(env) == workers


async def test_memory_store_under_workers_gives_each_a_share():
    lim = Limiter(clock=Clock(), workers=4)
    up = upstream(rate_limits=[{"rate": 10, "burst": 20}])
    admitted = [type((await run(lim, up))[0]).__name__ for _ in range(10)].count("Permit")
    assert admitted == 5


# (id, rate_limits entry, expected problem)
CONFIG_CASES = [
    ("rate_zero", {"rate": 0, "burst": 1}, "upstreams[0].rate_limits[0].rate must be > 0, got 0"),
    ("burst_below_one", {"rate": 1, "burst": 0.5}, "upstreams[0].rate_limits[0].burst must be >= 1, got 0.5"),
    ("per_unknown", {"per": "ip", "rate": 1, "burst": 1},
     "upstreams[0].rate_limits[0].per must be one of upstream | caller, got 'ip'"),
    ("operation_without_contract", {"operation": "GET /x", "rate": 1, "burst": 1},
     "upstreams[0].rate_limits[0].operation needs a contract (operations come from it)"),
    ("operation_not_a_template", {"operation": "charges", "rate": 1, "burst": 1},
     "upstreams[0].rate_limits[0].operation must match ^[A-Z]+ /, got 'charges'"),
]


@pytest.mark.parametrize("entry,problem", [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_config_errors_name_the_key(entry, problem):
    with pytest.raises(ConfigError) as err:
        upstream(rate_limits=[entry])
    assert err.value.problems == [problem]


def test_concurrency_must_be_positive():
    with pytest.raises(ConfigError) as err:
        upstream(concurrency=0)
    assert err.value.problems == ["upstreams[0].concurrency must be >= 1, got 0"]


# ------------------------------------------------------------ admit's fast path against its general plan
# each step: ("admit", caller, operation) | ("answer", operation, status, headers) | ("tick", seconds)
#            | ("reload", upstream kwargs): the same upstream name, a new config generation
LONG = "svc-" + "x" * 70
FAST_CASES = [
    ("nothing-applies", {}, [("admit", "checkout", None)] * 3, {("pay", "checkout", None)}),
    ("caller-none-and-operations", {}, [("admit", None, None), ("admit", None, "GET /x"), ("admit", None, "GET /x")],
     {("pay", None, None), ("pay", None, "GET /x")}),
    ("hold-after-warm-up-refuses-then-expires", {},
     [("admit", "checkout", None), ("admit", "checkout", None), ("answer", None, 429, {"Retry-After": "5"}),
      ("admit", "checkout", None), ("tick", 4.9), ("admit", "checkout", None), ("tick", 0.2),
      ("admit", "checkout", None)], {("pay", "checkout", None)}),
    ("operation-hold-spares-the-other-operation", {"breaker": {"scope": "operation"}},
     [("admit", "checkout", "POST /c"), ("admit", "checkout", "GET /c"), ("answer", "POST /c", 503, {"Retry-After": "2"}),
      ("admit", "checkout", "POST /c"), ("admit", "checkout", "GET /c"), ("tick", 2.1), ("admit", "checkout", "POST /c")],
     {("pay", "checkout", "POST /c"), ("pay", "checkout", "GET /c")}),
    ("upstream-hold-stops-every-operation", {"breaker": {"scope": "operation"}},
     [("admit", "checkout", "GET /c"), ("answer", None, 429, {"Retry-After": "3"}), ("admit", "checkout", "GET /c")],
     {("pay", "checkout", "GET /c")}),
    ("reload-adds-a-bucket", {},
     [("admit", "checkout", None), ("reload", {"rate_limits": [{"per": "caller", "rate": 1, "burst": 1}]}),
      ("admit", "checkout", None), ("admit", "checkout", None)],
     {("pay", "checkout", None)}),  # kept for the old generation's `up`: never answers for the new one
    ("bucket-of-another-operation-only", {"rate_limits": (RateLimit("caller", 1, 1, "POST /c"),)},
     [("admit", "checkout", "GET /c"), ("admit", "checkout", "GET /c"), ("admit", "checkout", "POST /c"),
      ("admit", "checkout", "POST /c")], {("pay", "checkout", "GET /c")}),
    ("concurrency-never-fast", {"concurrency": 1}, [("admit", "checkout", None), ("admit", "checkout", None)], set()),
    ("long-caller-label-not-kept", {}, [("admit", LONG, None), ("admit", LONG, None), ("admit", "stranger", None)],
     {("pay", "stranger", None)}),
]


async def _steps(lim, kw, steps, clock, admit):
    up, out = _upstream(kw), []
    for step in steps:
        if step[0] == "admit":
            ex = Exchange("GET")
            try:
                permit = await admit(lim, up, step[1], step[2], ex)
                out.append(("admitted", permit.__class__.__name__))
            except (RateLimited, ConcurrencyLimited) as err:
                out.append((err.reason, err.status, err.retry_after, sorted(getattr(err, "headers", {}).items())))
            out.append([(e.name, e.attrs) for e in ex.events])
        elif step[0] == "answer":
            lim.provider_answered(up, step[1], step[2], step[3], Exchange("GET"))
        elif step[0] == "tick":
            clock.now += step[1]
        else:
            up = _upstream(step[1])
    return out


def _upstream(kw):
    """(a bucket of one operation needs a contract in config: set on the loaded value)"""
    rate_limits = kw.get("rate_limits")
    if isinstance(rate_limits, tuple):
        return replace(upstream(**{k: v for k, v in kw.items() if k != "rate_limits"}), rate_limits=rate_limits)
    return upstream(**kw)


@pytest.mark.parametrize("kw,steps,fast", [c[1:] for c in FAST_CASES], ids=[c[0] for c in FAST_CASES])
async def test_fast_path_answers_as_the_general_plan(kw, steps, fast):
    general_clock, fast_clock = Clock(), Clock()
    general, quick = Limiter(clock=general_clock, wall=lambda: 1000.0), Limiter(clock=fast_clock, wall=lambda: 1000.0)
    expected = await _steps(general, kw, steps, general_clock, _general)
    got = await _steps(quick, kw, steps, fast_clock, lambda lim, *a: lim.admit(*a))
    assert got == expected
    assert quick.counts == general.counts and quick.snapshot() == general.snapshot()
    assert set(quick._free) == fast  # what the fast path may answer (never with a bucket or a slot)


async def _general(lim, up, caller, operation, ex):
    """admit without its fast path: the general plan every time."""
    lim._free.clear()
    permit = await lim._admit(up, caller, operation, ex)
    lim._free.clear()
    return permit


# provider_answered returns at once when no hold is asked for and no quota told; the general
# reading (_remaining, then the hold rules) concludes the same: nothing kept, nothing held
QUIET_CASES = [
    ("no-headers", 200, {}),
    ("reset-only", 200, {"X-RateLimit-Reset": "30", "RateLimit-Reset": "30"}),
    ("empty-structured-field", 200, {"RateLimit": ""}),
    ("retry-after-on-a-404", 404, {"Retry-After": "5"}),
]
TOLD_CASES = [  # (id, status, headers, provider gauge, hold seconds): the general reading runs
    ("structured-field-below-the-floor", 200, {"RateLimit": '"default";r=2;t=9'}, {"remaining": 2.0, "reset": 9.0}, 9.0),
    ("x-remaining-above-the-floor", 200, {"X-RateLimit-Remaining": "50"}, {"remaining": 50.0, "reset": -1.0}, None),
    ("429-without-quota", 429, {"Retry-After": "4"}, None, 4.0),
    ("503-without-anything", 503, {}, None, None),
]


@pytest.mark.parametrize("status,headers", [c[1:] for c in QUIET_CASES], ids=[c[0] for c in QUIET_CASES])
def test_an_answer_without_quota_or_hold_changes_nothing(status, headers):
    lim = Limiter(clock=Clock(), wall=lambda: 1000.0)
    ex = Exchange("GET")
    lim.provider_answered(upstream(provider_limits={"hold_below_remaining": 5}), None, status, headers, ex)
    assert (lim.provider, lim._holds, ex.events) == ({}, {}, [])
    assert _remaining(headers, 1000.0)[0] is None  # the general reading: no quota either


@pytest.mark.parametrize("status,headers,gauge,hold", [c[1:] for c in TOLD_CASES], ids=[c[0] for c in TOLD_CASES])
def test_an_answer_with_quota_or_hold_is_read(status, headers, gauge, hold):
    clock = Clock()
    lim = Limiter(clock=clock, wall=lambda: 1000.0)
    ex = Exchange("GET")
    lim.provider_answered(upstream(provider_limits={"hold_below_remaining": 5}), None, status, headers, ex)
    assert lim.provider.get("pay") == gauge
    assert lim._holds == ({"pay": clock.now + hold} if hold else {})
    assert [e.name for e in ex.events] == (["egress.provider_hold"] if hold else [])
