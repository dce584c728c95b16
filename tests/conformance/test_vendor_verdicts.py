"""Stripe's, OpenAI's and Twilio's published bodies against their published documents, every
verdict accounted for: a case that does not pass is in `vendor_faults.json` with the reason the
vendor's data disagrees with the vendor's schema, and nothing else fails (no fault of ours)."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from egress.contracts import load_contract

from .vendors import VENDORS, contract, faults, require_data, verdicts


def test_conformance_data_present() -> None:
    """Skipped loudly without ../shared; a failure in CI (CI=true)."""
    require_data()


@pytest.fixture(autouse=True)
def _data() -> None:
    require_data()


@pytest.mark.parametrize("name", list(VENDORS), ids=list(VENDORS))
def test_every_failure_is_a_classified_vendor_fault(name: str) -> None:
    listed = faults()[name]
    found = verdicts(name)
    failing = {cid: v for cid, v in found.items() if v[0] != "valid"}
    assert not [cid for cid, v in failing.items() if v[0] != "violated" or not v[1]], "no empty or unchecked verdicts"
    assert sorted(set(failing) - set(listed)) == [], "failures nobody classified"
    assert sorted(set(listed) - set(failing)) == [], "listed faults that now pass: remove them"
    for cid, entry in listed.items():
        assert entry["fault"] == "vendor" and len(entry["reason"]) > 20, cid
        assert failing[cid][1][0] == entry["first_violation"], cid
    print(f"\n{name}: {len(found) - len(failing)} of {len(found)} bodies pass; {len(failing)} vendor faults")


def test_stripe_fixtures_pass_at_98_percent_with_default_options() -> None:
    found = verdicts("stripe", SimpleNamespace(nullable="lenient", formats="assert"))
    passing = sum(1 for v in found.values() if v[0] == "valid")
    assert len(found) >= 450
    assert passing / len(found) >= 0.98, (passing, len(found))


@pytest.mark.parametrize(("name", "options", "at_most_valid", "keyword"), [
    ("stripe", SimpleNamespace(nullable="strict", formats="assert"), 300, "type"),
    ("twilio", SimpleNamespace(nullable="lenient", formats="assert"), 140, "format"),
], ids=["stripe-nullable-strict", "twilio-formats-assert"])
def test_the_other_reading_refuses_more(name, options, at_most_valid, keyword) -> None:
    """The options matter on real documents: strict nullable / asserted formats refuse vendor bodies."""
    found = verdicts(name, options)
    assert sum(1 for v in found.values() if v[0] == "valid") <= at_most_valid
    assert any(keyword in line.split(" ")[1] for v in found.values() for line in v[1])


def _container_resource() -> dict:
    return {"id": "cntr_1", "object": "container", "created_at": 1, "status": "running", "name": "c",
            "expires_after": {"anchor": "last_active_at", "minutes": 20}}


def test_a_valid_openai_container_resource_passes() -> None:
    """ContainerResource has duplicate names in `required` behind `$ref`: jsonschema-rs said
    "invalid" with no errors (a 502 listing nothing); normalized at load, lint names the place."""
    c = contract("openai")
    op = c.match("GET", "/containers/cntr_1")
    assert op is not None
    body = _container_resource()
    assert op.check(200, "application/json", orjson.dumps(body)).outcome == "valid"
    del body["name"]
    result = op.check(200, "application/json", orjson.dumps(body))
    assert (result.outcome, result.reason) == ("violated", "contract_violation")
    assert [(v.instance_path, v.keyword) for v in result.violations] == [("", "required")]
    assert any(q.endswith("#/components/schemas/ContainerResource/required: duplicate names in required "
                          "(deduplicated: the validator reports such a schema invalid with no error)")
               for q in c.quirks)


def test_options_reach_the_loader_per_upstream(tmp_path) -> None:
    from .suite import OPENAPI
    strict = load_contract(OPENAPI / VENDORS["stripe"].file, contracts_dir=OPENAPI, base_path="/v1",
                           options=SimpleNamespace(nullable="strict", formats="assert"))
    body = orjson.dumps({**_stripe_customer(), "default_source": None})
    assert contract("stripe").match("GET", "/customers/cus_1").check(200, "application/json", body).outcome == "valid"
    result = strict.match("GET", "/customers/cus_1").check(200, "application/json", body)
    assert result.outcome == "violated"
    assert any(v.instance_path == "/default_source" for v in result.violations)


def _stripe_customer() -> dict:
    from .suite import OPENAPI
    return orjson.loads((OPENAPI / "stripe.fixtures3.json").read_bytes())["resources"]["customer"]


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)],
                         ids=["ci-fails", "local-skips"])
def test_missing_data_skips_loudly_or_fails_in_ci(monkeypatch, tmp_path, ci, outcome) -> None:
    from . import vendors
    monkeypatch.setattr(vendors, "OPENAPI", tmp_path / "absent")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome) as err:
        vendors.require_data()
    assert "SKIPPED" in str(err.value) and "shared/" in str(err.value)
