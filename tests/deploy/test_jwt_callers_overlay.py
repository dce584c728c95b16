"""deploy/k8s/overlays/jwt-callers: callers proven by projected service-account tokens.

Rendered with kustomize_lite, validated with kubernetes-validate; each property the trust model
relies on (audience egress, short expiry, egress's own token and the cluster CA mounted where
its config reads them, the namespace pinned) has its own assertion; and the product loads the
rendered config and verifies a token shaped like a projected one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

OVERLAY = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "overlays" / "jwt-callers"

try:
    import kubernetes_validate
except ImportError:
    kubernetes_validate = None


@pytest.fixture(scope="module")
def objects(kustomize_lite) -> list[dict]:
    return kustomize_lite.build(OVERLAY)


def find(objects, kind, name):
    hits = [o for o in objects if o["kind"] == kind and (o["metadata"]["name"] == name or (
        kind == "ConfigMap" and o["metadata"]["name"].startswith(name + "-")))]  # generated: name-<hash>
    assert len(hits) == 1, f"{kind}/{name}: {len(hits)} objects"
    return hits[0]


def config(objects) -> dict:
    return yaml.safe_load(find(objects, "ConfigMap", "egress-config")["data"]["egress.yaml"])


@pytest.mark.skipif(kubernetes_validate is None, reason="kubernetes-validate not installed")
def test_every_object_is_valid_for_kubernetes(objects):
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30", strict=True)


def test_caller_token_is_for_egress_and_short_lived(objects):
    pod = find(objects, "Deployment", "checkout")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False  # only the egress-audience token is there
    (source,) = [s["serviceAccountToken"] for v in pod["volumes"] for s in v.get("projected", {}).get("sources", [])
                 if "serviceAccountToken" in s]
    audiences = config(objects)["callers"]["jwt"]["issuers"][0]["audiences"]
    assert source["audience"] in audiences
    assert source["expirationSeconds"] <= 3600


def test_egress_mounts_its_jwks_token_and_the_cluster_ca_where_its_config_reads_them(objects):
    pod = find(objects, "Deployment", "egress")["spec"]["template"]["spec"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "jwks-access"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "jwks-access"]
    files = {s.get("serviceAccountToken", {}).get("path") or s["configMap"]["items"][0]["path"]
             for s in volume["projected"]["sources"]}
    issuer = config(objects)["callers"]["jwt"]["issuers"][0]
    assert {Path(issuer["jwks_token_file"]).name, Path(issuer["ca_file"]).name} == files
    assert {str(Path(issuer["jwks_token_file"]).parent), str(Path(issuer["ca_file"]).parent)} == {mount["mountPath"]}
    token_source = next(s["serviceAccountToken"] for s in volume["projected"]["sources"] if "serviceAccountToken" in s)
    assert "audience" not in token_source  # the API server's own audience: not usable as a caller token


def test_egress_may_reach_the_api_server_and_nothing_more(objects):
    policy = find(objects, "NetworkPolicy", "egress-proxy-to-apiserver")["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "proxy"
    (rule,) = policy["egress"]
    assert [b["ipBlock"]["cidr"].endswith("/32") for b in rule["to"]] == [True]


def test_caller_pattern_pins_the_namespace(objects):
    import re
    pattern = re.compile(config(objects)["callers"]["jwt"]["caller_pattern"])
    assert pattern.fullmatch("system:serviceaccount:shop:checkout").group("caller") == "checkout"
    assert pattern.fullmatch("system:serviceaccount:other:checkout") is None


async def test_product_loads_the_config_and_verifies_a_projected_token(objects, tmp_path):
    """The rendered config, with the pod's mount paths pointed at test files and the JWKS at a
    real fake issuer on loopback, proves `checkout` from a token shaped like the kubelet's."""
    from egress.config import settings_from_dict
    from egress.identity import Identity
    from tests.identity_fakes import FakeIssuer

    doc = config(objects)
    issuer_cfg = doc["callers"]["jwt"]["issuers"][0]
    fake = FakeIssuer(issuer=issuer_cfg["issuer"], required_token="egress-own-token")
    fake.add_key("k1", "RS256")
    await fake.start()
    try:
        (tmp_path / "contracts").mkdir()
        for key, text in find(objects, "ConfigMap", "egress-contracts")["data"].items():
            (tmp_path / "contracts" / key).write_text(text)
        (tmp_path / "token").write_text("egress-own-token")
        (tmp_path / "secrets" / "admin").mkdir(parents=True)
        (tmp_path / "secrets" / "admin" / "token").write_text("a-test-admin-token-of-length")
        issuer_cfg.update(jwks_url=fake.jwks_url, jwks_token_file=str(tmp_path / "token"))
        issuer_cfg.pop("ca_file")  # the loopback fake speaks plain HTTP
        secret = yaml.safe_load((OVERLAY.parent.parent / "base" / "secret.example.yaml").read_text())
        settings = settings_from_dict(doc, base_dir=tmp_path, environ={**os.environ, **secret["stringData"]})
        identity = Identity(settings)
        await identity.start()
        try:
            from multidict import CIMultiDict

            class Request:
                method, raw_path, transport = "GET", "/payments/charges/ch_1", None
                token = fake.token(sub="system:serviceaccount:shop:checkout")
                headers = CIMultiDict({"Authorization": "Bearer " + token})
            assert (await identity.identify(Request())).name == "checkout"
        finally:
            await identity.close()
    finally:
        await fake.stop()
