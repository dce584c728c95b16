"""Signed caller identity at its edges (issue 19, mutation testing of egress/identity/header.py):
every refusal names the check that refused it (reason caller_not_allowed, the detail says what
to fix), every acceptance returns the caller's name.  Direct calls to `identify` with an injected
clock; the MAC is computed here from the documented formula, not with egress's `sign`.  (Wrong
MACs alike and compare_digest: test_signed_callers.py::test_wrong_mac_is_compared_in_constant_time.)"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from multidict import CIMultiDict

from egress.config import Callers, Secret
from egress.errors import CallerMissing, CallerNotAllowed
from egress.identity import identify, sign

KEY = "checkout-caller-key-0123456789abcdef"
NOW = 1_760_000_000
TARGET = "/pay/charges?limit=2"
KEYED = Callers(hmac_keys=(("checkout", Secret(KEY)),))


def mac(t=NOW, caller="checkout", method="GET", target=TARGET, upstream="pay", key=KEY) -> str:
    message = f"{t}.{caller}.{method}.{upstream}.{target}".encode("utf-8", "surrogateescape")
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def hdrs(*pairs) -> CIMultiDict:
    h = CIMultiDict()
    for k, v in pairs:
        h.add(k, v)
    return h


def call(signature, *, settings=KEYED, caller="checkout", method="GET", target=TARGET, upstream="pay", now=NOW):
    h = hdrs(("X-Egress-Caller", caller), ("X-Egress-Caller-Signature", signature))
    return identify(caller, settings, method=method, target=target, headers=h, clock=lambda: now,
                    upstream=upstream)


FORMAT = "must be t=<unix seconds>,v2=<64 hex digits>"
MISMATCH = "does not match this caller's key"
V1 = ("v1 does not cover the upstream and is no longer accepted: send "
      'v2=HMAC-SHA256(key, "<t>.<caller>.<METHOD>.<upstream>.<target>")')


def _flip(hexmac: str, i: int) -> str:
    return hexmac[:i] + ("0" if hexmac[i] != "0" else "1") + hexmac[i + 1:]


SIGNATURES = [
    # id, signature header value, expected: the caller name, or the detail of the refusal
    ("valid", f"t={NOW},v2={mac()}", "checkout"),
    ("spaces-around-items-names-and-values", f" t = {NOW} ,  v2 = {mac()} ", "checkout"),
    ("uppercase-hex", f"t={NOW},v2={mac().upper()}", "checkout"),
    ("item-without-equals-ignored", f"junk,t={NOW},v2={mac()}", "checkout"),
    ("second-v2-valid", f"t={NOW},v2={_flip(mac(), 0)},v2={mac()}", "checkout"),
    ("first-v2-valid", f"t={NOW},v2={mac()},v2={_flip(mac(), 0)}", "checkout"),
    ("v1-ignored-beside-a-valid-v2", f"t={NOW},v1={'ab' * 32},v2={mac()}", "checkout"),
    ("non-hex-v2-ignored-beside-a-valid-one", f"t={NOW},v2={'z' * 64},v2={mac()}", "checkout"),
    ("wrong-mac-first-byte", f"t={NOW},v2={_flip(mac(), 0)}", MISMATCH),
    ("wrong-mac-middle-byte", f"t={NOW},v2={_flip(mac(), 32)}", MISMATCH),
    ("wrong-mac-last-byte", f"t={NOW},v2={_flip(mac(), 63)}", MISMATCH),
    ("mac-one-digit-short", f"t={NOW},v2={mac()[:63]}", FORMAT),
    ("mac-one-digit-long", f"t={NOW},v2={mac()}0", FORMAT),
    ("mac-not-hex", f"t={NOW},v2={'g' * 64}", FORMAT),
    ("mac-in-another-field", f"t={NOW},v3={mac()}", FORMAT),
    ("v1-only", f"t={NOW},v1={mac()}", V1),
    ("v1-with-a-non-hex-v2", f"t={NOW},v1={mac()},v2=xyz", V1),
    ("v1-value-with-equals-is-still-v1", f"t={NOW},v1=ab=cd", V1),
    ("no-timestamp", f"v2={mac()}", FORMAT),
    ("two-timestamps", f"t={NOW},t={NOW},v2={mac()}", FORMAT),
    ("timestamp-not-digits", f"t=-{NOW},v2={mac()}", FORMAT),
    ("timestamp-13-digits", f"t=0{NOW:012d},v2={mac()}", FORMAT),
    ("timestamp-12-digits-zero-padded-is-a-number", f"t=00{NOW},v2={mac()}", "checkout"),
    ("timestamp-signed-as-a-number-not-as-sent", f"t=00{NOW},v2={mac(t=f'00{NOW}')}", MISMATCH),
    ("timestamp-empty", f"t=,v2={mac()}", FORMAT),
    ("no-fields-at-all", "t", FORMAT),
]


@pytest.mark.parametrize("signature,expected", [c[1:] for c in SIGNATURES], ids=[c[0] for c in SIGNATURES])
def test_signature_header_forms(signature, expected):
    if expected == "checkout":
        assert call(signature) == "checkout"
        return
    with pytest.raises(CallerNotAllowed) as info:
        call(signature)
    assert (info.value.status, info.value.reason) == (403, "caller_not_allowed")
    assert expected in info.value.detail and "X-Egress-Caller-Signature" in info.value.detail
    assert KEY not in info.value.detail and mac() not in info.value.detail


SKEW = [
    # id, max_skew, clock minus t, accepted
    ("exactly-at-the-limit-behind", 300, 300, True),
    ("exactly-at-the-limit-ahead", 300, -300, True),
    ("one-second-too-old", 300, 301, False),
    ("one-second-too-far-ahead", 300, -301, False),
    ("fraction-past-the-limit", 300, 300.5, False),
    ("configured-skew-tighter", 10, 11, False),
    ("configured-skew-wider", 1000, 999, True),
]


@pytest.mark.parametrize("max_skew,offset,accepted", [c[1:] for c in SKEW], ids=[c[0] for c in SKEW])
def test_clock_skew_window(max_skew, offset, accepted):
    settings = Callers(hmac_keys=KEYED.hmac_keys, max_skew=max_skew)
    signature = f"t={NOW},v2={mac()}"
    if accepted:
        assert call(signature, settings=settings, now=NOW + offset) == "checkout"
        return
    with pytest.raises(CallerNotAllowed) as info:
        call(signature, settings=settings, now=NOW + offset)
    assert info.value.reason == "caller_not_allowed"
    assert info.value.detail == f"X-Egress-Caller-Signature timestamp is more than {max_skew:g} s from egress's clock"


def test_configured_signature_header_is_the_one_read():
    settings = Callers(hmac_keys=KEYED.hmac_keys, signature_header="X-Sig")
    good = f"t={NOW},v2={mac()}"
    h = hdrs(("X-Egress-Caller", "checkout"), ("X-Sig", good))
    assert identify("checkout", settings, method="GET", target=TARGET, headers=h, clock=lambda: NOW,
                    upstream="pay") == "checkout"
    h = hdrs(("X-Egress-Caller", "checkout"), ("X-Egress-Caller-Signature", good))
    with pytest.raises(CallerNotAllowed) as info:
        identify("checkout", settings, method="GET", target=TARGET, headers=h, clock=lambda: NOW, upstream="pay")
    assert info.value.detail == "this caller name requires a signature: send X-Sig"


UNVERIFIABLE = [
    # id, keyword changes to a valid call: each leaves egress without what the signature covers
    ("no-method", {"method": None}),
    ("no-target", {"target": None}),
    ("no-upstream", {"upstream": None}),
]


@pytest.mark.parametrize("missing", [c[1] for c in UNVERIFIABLE], ids=[c[0] for c in UNVERIFIABLE])
def test_keyed_name_without_what_the_signature_covers_is_refused(missing):
    kw = {"method": "GET", "target": TARGET, "upstream": "pay", **missing}
    h = hdrs(("X-Egress-Caller", "checkout"), ("X-Egress-Caller-Signature", f"t={NOW},v2={mac()}"))
    with pytest.raises(CallerNotAllowed) as info:
        identify("checkout", KEYED, headers=h, clock=lambda: NOW, **kw)
    assert info.value.detail == "this caller name requires a signature, and egress could not verify it"


def test_signature_covers_each_field_as_sent():
    """Method case is normalised (the request line's method is upper-case anyway); everything
    else is signed as sent, including a target whose bytes are not UTF-8."""
    assert call(f"t={NOW},v2={mac(method='GET')}", method="get") == "checkout"
    raw = "/pay/caf\udce9"  # the request line's byte 0xE9, as aiohttp surrogate-escapes it
    assert call(f"t={NOW},v2={mac(target=raw)}", target=raw) == "checkout"
    assert sign(KEY, NOW, "checkout", "get", raw, upstream="pay") == mac(target=raw)
    with pytest.raises(CallerNotAllowed):
        call(f"t={NOW},v2={mac(target=raw)}", target="/pay/caf\u00e9")
    unicode_key = Callers(hmac_keys=(("checkout", Secret("cl\u00e9-checkout-0123456789")),))
    good = mac(key="cl\u00e9-checkout-0123456789")
    assert call(f"t={NOW},v2={good}", settings=unicode_key) == "checkout"


NAMES = [
    # id, header value, outcome: the name returned, or (error class, detail)
    ("plain", "checkout", "checkout"),
    ("surrounding-spaces-stripped", "  checkout\t", "checkout"),
    ("63-characters", "a" * 63, "a" * 63),
    ("64-characters", "a" * 64, (CallerNotAllowed, "X-Egress-Caller must be a service name")),
    ("starts-with-a-dot", ".checkout", (CallerNotAllowed, "X-Egress-Caller must be a service name")),
    ("inner-space", "check out", (CallerNotAllowed, "X-Egress-Caller must be a service name")),
    ("one-character", "a", "a"),
    ("punctuation-inside", "a.b_c-d", "a.b_c-d"),
    ("empty", "", (CallerMissing, "send the X-Egress-Caller header naming your service")),
    ("blank", "   ", (CallerMissing, "send the X-Egress-Caller header naming your service")),
    ("absent", None, (CallerMissing, "send the X-Egress-Caller header naming your service")),
]


@pytest.mark.parametrize("value,outcome", [c[1:] for c in NAMES], ids=[c[0] for c in NAMES])
def test_caller_names(value, outcome):
    h = hdrs(("X-Egress-Caller", value)) if value is not None else hdrs()
    if isinstance(outcome, str):
        assert identify(value, Callers(), headers=h) == outcome
        return
    error, detail = outcome
    with pytest.raises(error) as info:
        identify(value, Callers(), headers=h)
    assert info.value.detail == detail if error is CallerMissing else detail in info.value.detail
    assert info.value.reason == ("caller_missing" if error is CallerMissing else "caller_not_allowed")
    if value and value.strip():
        assert value.strip() not in info.value.detail  # never echoed


def test_optional_caller_header_gives_the_anonymous_caller():
    for value in (None, "", "  "):
        assert identify(value, Callers(required=False)) == "-"


REPEATED = [
    # id, caller header values, outcome
    ("one", ["checkout"], "checkout"),
    ("same-twice", ["checkout", "checkout"], "checkout"),
    ("same-twice-up-to-spaces", ["checkout", " checkout "], "checkout"),
    ("two-names", ["checkout", "billing"], "send exactly one X-Egress-Caller header"),
    ("name-and-blank", ["checkout", ""], "send exactly one X-Egress-Caller header"),
]


@pytest.mark.parametrize("values,outcome", [c[1:] for c in REPEATED], ids=[c[0] for c in REPEATED])
def test_repeated_caller_headers(values, outcome):
    h = hdrs(*[("X-Egress-Caller", v) for v in values])
    if outcome == "checkout":
        assert identify(h.get("X-Egress-Caller"), Callers(), headers=h) == "checkout"
        return
    with pytest.raises(CallerNotAllowed) as info:
        identify(h.get("X-Egress-Caller"), Callers(), headers=h)
    assert (info.value.reason, info.value.detail) == ("caller_not_allowed", outcome)


def test_headers_without_getall_are_read_for_the_signature_only():
    """A plain mapping (no repeated headers possible) still carries the signature."""
    h = {"X-Egress-Caller": "checkout", "X-Egress-Caller-Signature": f"t={NOW},v2={mac()}"}
    assert identify("checkout", KEYED, method="GET", target=TARGET, headers=h, clock=lambda: NOW,
                    upstream="pay") == "checkout"
