"""exchange.Exchange / Attempt have hand-written __init__s (cheaper than the generated ones):
they take the dataclass fields in their order with their defaults, and build what dataclass
would; check.Checked is a NamedTuple value with the dataclass's fields and release()."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from egress.check import Checked
from egress.exchange import Attempt, Exchange
from egress.send.inflight import InflightBudget


@pytest.mark.parametrize("cls", [Exchange, Attempt], ids=["Exchange", "Attempt"])
def test_hand_init_takes_the_fields_in_order_with_their_defaults(cls):
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields):
        if f.default is not dataclasses.MISSING:
            assert p.default == f.default, f.name
        elif f.default_factory is not dataclasses.MISSING:
            assert p.default is None, f.name  # None: the factory's value (below)
        else:
            assert p.default is inspect.Parameter.empty, f.name


def test_exchange_builds_what_the_dataclass_did():
    a, b = Exchange("GET"), Exchange("GET")
    assert a.attempts == [] and a.events == [] and a.attempts is not b.attempts and a.events is not b.events
    assert 0 < a.start_ns <= b.start_ns and 0 < a.start_mono <= b.start_mono
    assert (a.contract, a.anomalous, a.path, a.request_bytes, a.permit, a.stream) == ("unchecked", False, "", 0, None, None)
    given = Exchange("POST", "prefix", 5, 1.5, attempts=[Attempt(1, 2)], caller="checkout")
    assert (given.method, given.target_kind, given.start_ns, given.start_mono, given.caller) == (
        "POST", "prefix", 5, 1.5, "checkout")
    assert given.attempts == [Attempt(1, 2, 0, None, None, "")]
    for name in [f.name for f in dataclasses.fields(Exchange)]:
        getattr(a, name)  # every slot is set
    with pytest.raises(AttributeError):
        a.not_a_field = 1  # slots: no stray attributes


def test_checked_is_a_value_that_gives_its_hold_back():
    budget = InflightBudget(100)
    hold = budget.hold()
    hold.grow(10)
    checked = Checked(b"body", True, hold)
    assert (checked.body, checked.encoded, checked.hold) == (b"body", True, hold)
    assert Checked(b"x", False).hold is None
    with pytest.raises(AttributeError):
        checked.body = b"other"  # immutable, as the frozen dataclass was
    checked.release()
    assert budget.in_use == 0
    Checked(b"x", False).release()  # no hold: nothing to give back
