"""The Kubernetes manifests in deploy/k8s: schema-valid, secure, and saying what the docs say.

Rendered without a kustomize binary (kustomize_lite.py, checked against kustomize's own
hash test vectors below) and validated offline with kubernetes-validate's bundled schemas.
Each security or behaviour property has its own assertion, so removing one from a
manifest fails a named test.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

try:
    import kubernetes_validate
except ImportError:  # only the schema tests need it; every other check still runs
    kubernetes_validate = None
needs_schemas = pytest.mark.skipif(
    kubernetes_validate is None, reason="kubernetes-validate not installed (pip install kubernetes-validate)")

K8S_VERSION = "1.30"
K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]
EGRESS_POD = {"app.kubernetes.io/name": "egress", "app.kubernetes.io/component": "proxy"}
SECRET_NAME = "egress-partner-credentials"


# ---------------------------------------------------------------- helpers


def find(objects: list[dict], kind: str, name: str) -> dict:
    """The object of `kind` named `name` (a generated ConfigMap also matches name-<hash>)."""
    hits = [o for o in objects if o["kind"] == kind
            and (o["metadata"]["name"] == name or re.fullmatch(rf"{name}-[a-z0-9]{{10}}", o["metadata"]["name"]))]
    assert len(hits) == 1, f"expected one {kind} {name!r}, found {[o['metadata']['name'] for o in hits]}"
    return hits[0]


def pod_spec(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]


def container(deployment: dict, name: str) -> dict:
    (hit,) = [c for c in pod_spec(deployment)["containers"] if c["name"] == name]
    return hit


def port_number(ctr: dict, port) -> int:
    if isinstance(port, int):
        return port
    (hit,) = [p["containerPort"] for p in ctr.get("ports", []) if p.get("name") == port]
    return hit


def effective(deployment: dict, ctr: dict, key: str):
    """A securityContext field as the kubelet applies it: the container's, else the pod's."""
    value = ctr.get("securityContext", {}).get(key)
    return value if value is not None else pod_spec(deployment).get("securityContext", {}).get(key)


def config_of(objects: list[dict]) -> dict:
    return yaml.safe_load(find(objects, "ConfigMap", "egress-config")["data"]["egress.yaml"])


def mount(ctr: dict, path: str) -> dict:
    (hit,) = [m for m in ctr.get("volumeMounts", []) if m["mountPath"] == path]
    return hit


def volume(deployment: dict, name: str) -> dict:
    (hit,) = [v for v in pod_spec(deployment)["volumes"] if v["name"] == name]
    return hit


def prestop_sleep_seconds(ctr: dict) -> float:
    pre_stop = ctr.get("lifecycle", {}).get("preStop")
    if not pre_stop:
        return 0.0
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    match = re.search(r"sleep\(\s*([0-9.]+)\s*\)", " ".join(pre_stop["exec"]["command"]))
    assert match, f"cannot read the preStop sleep from {pre_stop}"
    return float(match.group(1))


# ---------------------------------------------------------------- the renderer itself


@pytest.mark.parametrize(("cm", "expected"), [
    ({"metadata": {"name": ""}}, "6ct58987ht"),
    ({"metadata": {"name": ""}, "data": {"one": ""}}, "9g67k2htb6"),
    ({"metadata": {"name": ""}, "data": {"two": 2, "one": "", "three": 3}}, "7757f9kkct"),
    ({"metadata": {"name": ""}, "binaryData": {"one": ""}}, "6mtk2m274t"),
    ({"metadata": {"name": ""}, "data": {"one": ""}, "binaryData": {"two": ""}}, "698h7c7t9m"),
], ids=["empty", "one-key", "three-keys-sorted", "binary-data", "data-and-binary"])
def test_config_map_hash_matches_kustomize_test_vectors(kustomize_lite, cm, expected):
    # Vectors from kustomize's api/hasher/hasher_test.go (TestConfigMapHash).
    assert kustomize_lite.config_map_hash(cm) == expected


def test_renderer_refuses_fields_it_does_not_implement(kustomize_lite, tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(kustomize_lite.Unsupported, match="commonLabels"):
        kustomize_lite.build(tmp_path)


def test_generated_config_maps_are_referenced_by_their_hashed_names(base_objects):
    deployment = find(base_objects, "Deployment", "egress")
    config = find(base_objects, "ConfigMap", "egress-config")["metadata"]["name"]
    contracts = find(base_objects, "ConfigMap", "egress-contracts")["metadata"]["name"]
    assert volume(deployment, "config")["configMap"]["name"] == config != "egress-config"
    assert volume(deployment, "contracts")["configMap"]["name"] == contracts != "egress-contracts"


# ---------------------------------------------------------------- schemas


@needs_schemas
def test_validator_is_not_a_no_op():
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": "three", "selector": {}, "template": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


@needs_schemas
@pytest.mark.parametrize("directory", ["base", "overlays/example"])
def test_every_rendered_object_is_valid_for_kubernetes(kustomize_lite, directory):
    problems = []
    for obj in kustomize_lite.build(K8S / directory):
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            problems.append(f"{obj['kind']}/{obj['metadata']['name']} {where}: {exc.message}")
    assert not problems, "\n".join(problems)


@needs_schemas
def test_example_secret_is_valid_and_not_rendered(base_objects, overlay_objects):
    secret = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    kubernetes_validate.validate(secret, K8S_VERSION, strict=True)
    assert secret["metadata"]["name"] == SECRET_NAME
    assert not [o for o in base_objects + overlay_objects if o["kind"] == "Secret"], \
        "credentials must never be rendered from the repository"


# ---------------------------------------------------------------- the egress Deployment


@pytest.fixture(scope="module")
def deployment(base_objects) -> dict:
    return find(base_objects, "Deployment", "egress")


@pytest.fixture(scope="module")
def proxy(deployment) -> dict:
    return container(deployment, "egress")


def test_three_replicas(deployment):
    assert deployment["spec"]["replicas"] == 3


def test_rollout_never_drops_below_desired(deployment):
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("workload", ["egress", "egress-redis"])
def test_pods_run_non_root_read_only_without_privileges(overlay_objects, workload):
    dep = find(overlay_objects, "Deployment", workload)
    pod = pod_spec(dep)
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    assert pod.get("automountServiceAccountToken") is False
    for ctr in pod["containers"]:
        sc = ctr.get("securityContext", {})
        assert effective(dep, ctr, "runAsNonRoot") is True, ctr["name"]
        assert effective(dep, ctr, "runAsUser") not in (None, 0), f"{ctr['name']}: numeric non-root UID"
        assert sc.get("readOnlyRootFilesystem") is True, ctr["name"]
        assert sc.get("allowPrivilegeEscalation") is False, ctr["name"]
        assert sc.get("privileged") is not True, ctr["name"]
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], ctr["name"]
        assert not sc.get("capabilities", {}).get("add"), ctr["name"]
        assert (effective(dep, ctr, "seccompProfile") or {}).get("type") == "RuntimeDefault", ctr["name"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(ctr.get("resources", {}).get(kind, {})), f"{ctr['name']} {kind}"
    assert not any("persistentVolumeClaim" in v or "hostPath" in v for v in pod.get("volumes", []))


def test_image_uid_matches_pod_uid(deployment, proxy, repo):
    dockerfile = (repo / "Dockerfile").read_text()
    user = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)[-1]
    assert str(effective(deployment, proxy, "runAsUser")) == user.split(":")[0]


@pytest.mark.parametrize(("probe", "path"), [
    ("readinessProbe", "/readyz"),
    ("livenessProbe", "/healthz"),
    ("startupProbe", "/healthz"),
], ids=["readiness", "liveness", "startup"])
def test_probes_hit_the_admin_port(proxy, base_objects, probe, path):
    if probe == "startupProbe" and probe not in proxy:
        pytest.skip("no startupProbe (optional)")
    get = proxy[probe]["httpGet"]
    admin_port = int(config_of(base_objects)["admin_listen"].rsplit(":", 1)[1])
    assert get["path"] == path
    assert port_number(proxy, get["port"]) == admin_port == 9090


def test_grace_period_outlasts_prestop_and_drain(deployment, proxy, base_objects):
    drain = float(config_of(base_objects).get("drain_timeout", 10.0))  # 10 s: the product default
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    from egress.app import FLUSH_TIMEOUT  # the drain is bounded: drain_timeout, then at most this
    otlp_flush = 2.0
    assert grace > prestop_sleep_seconds(proxy) + drain + FLUSH_TIMEOUT + otlp_flush, \
        f"terminationGracePeriodSeconds {grace} must exceed preStop + drain_timeout {drain} + flush (docs/deploy.md 6)"


def test_partner_credentials_come_from_a_required_secret(proxy):
    assert {"secretRef": {"name": SECRET_NAME, "optional": False}} in proxy["envFrom"]


def test_config_and_contracts_are_mounted_where_the_image_expects(deployment, proxy, base_objects, repo):
    env = {e["name"]: e.get("value") for e in proxy.get("env", [])}
    config_path = env.get("EGRESS_CONFIG", "/etc/egress/egress.yaml")
    assert "EGRESS_CONFIG=/etc/egress/egress.yaml" in (repo / "Dockerfile").read_text().replace(" ", "")
    assert config_path == "/etc/egress/egress.yaml"
    cfg_mount = mount(proxy, config_path)
    assert cfg_mount["readOnly"] is True and cfg_mount["subPath"] == "egress.yaml"
    assert volume(deployment, cfg_mount["name"])["configMap"]["name"] == \
        find(base_objects, "ConfigMap", "egress-config")["metadata"]["name"]
    contracts_dir = posixpath.normpath(
        posixpath.join(posixpath.dirname(config_path), config_of(base_objects)["contracts_dir"]))
    con_mount = mount(proxy, contracts_dir)
    assert con_mount["readOnly"] is True
    assert volume(deployment, con_mount["name"])["configMap"]["name"] == \
        find(base_objects, "ConfigMap", "egress-contracts")["metadata"]["name"]


def test_data_and_admin_ports_match_the_config(proxy, base_objects):
    cfg = config_of(base_objects)
    ports = {p["name"]: p["containerPort"] for p in proxy["ports"]}
    assert ports == {"http": int(cfg["listen"].rsplit(":", 1)[1]), "admin": int(cfg["admin_listen"].rsplit(":", 1)[1])}


# ---------------------------------------------------------------- Service, PDB, HPA


def test_service_exposes_data_and_admin_ports_of_the_proxy_pods(base_objects, deployment):
    svc = find(base_objects, "Service", "egress")
    assert {(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} == {(8080, "http"), (9090, "admin")}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()


def test_disruption_budget_keeps_two_of_three(base_objects, deployment):
    pdb = find(base_objects, "PodDisruptionBudget", "egress")["spec"]
    assert pdb.get("maxUnavailable") == 1 or pdb.get("minAvailable", 0) >= 2
    assert pdb["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_autoscaler_scales_the_deployment_on_cpu(base_objects, deployment):
    hpa = find(base_objects, "HorizontalPodAutoscaler", "egress")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "egress"}
    assert spec["minReplicas"] >= deployment["spec"]["replicas"] and spec["maxReplicas"] > spec["minReplicas"]
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in spec["metrics"])


# ---------------------------------------------------------------- NetworkPolicy, evaluated


@dataclass(frozen=True)
class Endpoint:
    name: str
    ip: str
    namespace: str | None = None          # None: outside the cluster
    labels: dict = field(default_factory=dict, hash=False)


def _selects(selector: dict, labels: dict) -> bool:
    if selector.get("matchExpressions"):
        raise NotImplementedError("matchExpressions: extend the evaluator before using them")
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_matches(peer: dict, policy_ns: str, ep: Endpoint) -> bool:
    if "ipBlock" in peer:
        ip = ipaddress.ip_address(ep.ip)
        block = peer["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except", []))
    if ep.namespace is None:
        return False
    ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
    ns_ok = ep.namespace == policy_ns if ns_sel is None else _selects(
        ns_sel, {"kubernetes.io/metadata.name": ep.namespace})
    return ns_ok and (pod_sel is None or _selects(pod_sel, ep.labels))


def _port_matches(ports: list | None, port: int, protocol: str) -> bool:
    return not ports or any(
        p.get("protocol", "TCP") == protocol and p.get("port") in (None, port) for p in ports)


def _direction_allows(policies, direction: str, subject: Endpoint, peer: Endpoint, port: int, protocol: str) -> bool:
    if subject.namespace is None:
        return True
    key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    selecting = []
    for pol in policies:
        spec = pol["spec"]
        types = spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))
        if (pol["metadata"].get("namespace") == subject.namespace and direction in types
                and _selects(spec["podSelector"], subject.labels)):
            selecting.append(pol)
    if not selecting:
        return True
    return any(
        _port_matches(rule.get("ports"), port, protocol)
        and (not rule.get(peers_key) or any(_peer_matches(p, pol["metadata"]["namespace"], peer) for p in rule[peers_key]))
        for pol in selecting for rule in pol["spec"].get(key, []))


def allowed(policies, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
    return (_direction_allows(policies, "Egress", src, dst, port, protocol)
            and _direction_allows(policies, "Ingress", dst, src, port, protocol))


NS = "shop"  # the example overlay's namespace
WORKLOAD = Endpoint("workload", "10.8.1.7", NS, {"app": "checkout"})
PROXY = Endpoint("egress", "10.8.1.5", NS, EGRESS_POD)
REDIS = Endpoint("redis", "10.8.1.9", NS, {"app.kubernetes.io/name": "egress-redis"})
DNS = Endpoint("kube-dns", "10.8.0.10", "kube-system", {"k8s-app": "kube-dns"})
MONITORING = Endpoint("prometheus", "10.8.2.3", "monitoring", {"app": "prometheus"})
OTHER_NS = Endpoint("other-namespace", "10.8.3.3", "other", {"app": "x"})
INTERNET = Endpoint("internet", "203.0.113.10")
METADATA = Endpoint("cloud-metadata", "169.254.169.254")

FLOWS = [
    # (case, source, destination, port, protocol, allowed)
    ("workload-to-internet-denied", WORKLOAD, INTERNET, 443, "TCP", False),
    ("workload-to-proxy-data-port", WORKLOAD, PROXY, 8080, "TCP", True),
    ("workload-to-proxy-admin-denied", WORKLOAD, PROXY, 9090, "TCP", False),
    ("workload-to-dns-udp", WORKLOAD, DNS, 53, "UDP", True),
    ("workload-to-dns-tcp", WORKLOAD, DNS, 53, "TCP", True),
    ("workload-to-redis-denied", WORKLOAD, REDIS, 6379, "TCP", False),
    ("proxy-to-internet-443", PROXY, INTERNET, 443, "TCP", True),
    ("proxy-to-internet-80-denied", PROXY, INTERNET, 80, "TCP", False),
    ("proxy-to-metadata-denied", PROXY, METADATA, 443, "TCP", False),
    ("proxy-to-10/8-denied", PROXY, Endpoint("private-10", "10.20.0.5"), 443, "TCP", False),
    ("proxy-to-172.16/12-denied", PROXY, Endpoint("private-172", "172.16.5.4"), 443, "TCP", False),
    ("proxy-to-192.168/16-denied", PROXY, Endpoint("private-192", "192.168.1.1"), 443, "TCP", False),
    ("proxy-to-100.64/10-denied", PROXY, Endpoint("cgnat", "100.64.0.1"), 443, "TCP", False),
    ("proxy-to-redis", PROXY, REDIS, 6379, "TCP", True),
    ("proxy-to-dns", PROXY, DNS, 53, "UDP", True),
    ("monitoring-to-proxy-admin", MONITORING, PROXY, 9090, "TCP", True),
    ("monitoring-to-proxy-data-denied", MONITORING, PROXY, 8080, "TCP", False),
    ("other-namespace-to-proxy-denied", OTHER_NS, PROXY, 8080, "TCP", False),
    ("redis-to-internet-denied", REDIS, INTERNET, 443, "TCP", False),
]


@pytest.mark.parametrize(("src", "dst", "port", "protocol", "expected"),
                         [f[1:] for f in FLOWS], ids=[f[0] for f in FLOWS])
def test_network_policies(overlay_objects, src, dst, port, protocol, expected):
    policies = [o for o in overlay_objects if o["kind"] == "NetworkPolicy"]
    assert allowed(policies, src, dst, port, protocol) is expected


def test_proxy_internet_rule_excludes_every_private_range(base_objects):
    pol = find(base_objects, "NetworkPolicy", "egress-proxy-egress")
    blocks = [(p["ipBlock"], r.get("ports")) for r in pol["spec"]["egress"] for p in r.get("to", []) if "ipBlock" in p]
    assert blocks, "no internet rule"
    for block, ports in blocks:
        assert set(PRIVATE_RANGES) <= set(block.get("except", [])), block
        assert ports == [{"protocol": "TCP", "port": 443}], ports


def test_namespace_default_deny_selects_every_pod(base_objects):
    pol = find(base_objects, "NetworkPolicy", "default-deny-egress")["spec"]
    assert pol["podSelector"] == {} and pol["policyTypes"] == ["Egress"]
    assert not any("ipBlock" in p for r in pol["egress"] for p in r.get("to", []))


# ---------------------------------------------------------------- the config in the ConfigMap


def test_config_names_the_cluster_settings(base_objects):
    cfg = config_of(base_objects)
    assert cfg["listen"] == "0.0.0.0:8080"
    assert cfg["admin_listen"] == "0.0.0.0:9090", "kubelet probes and Prometheus must reach the admin port"
    assert cfg["store"] == "redis://egress-redis:6379/0"
    assert cfg["contracts_dir"] and cfg["upstreams"]
    for up in cfg["upstreams"]:
        assert up.get("mode", "enforce") in {"enforce", "report", "off"}


def test_breaker_store_points_at_the_redis_component(overlay_objects):
    url = config_of(overlay_objects)["store"]
    host, port = re.fullmatch(r"redis://([^:/]+):(\d+)/\d+", url).groups()
    svc = find(overlay_objects, "Service", host)
    assert int(port) in {p["port"] for p in svc["spec"]["ports"]}
    redis = container(find(overlay_objects, "Deployment", host), "redis")
    assert "--save" in redis["args"] and redis["args"][redis["args"].index("--save") + 1] == "", \
        "the breaker store keeps no snapshots"


def test_every_contract_is_in_the_contracts_config_map(base_objects):
    contracts = find(base_objects, "ConfigMap", "egress-contracts")["data"]
    for up in config_of(base_objects)["upstreams"]:
        if up.get("contract"):
            assert up["contract"] in contracts, f"{up['name']}: {up['contract']} not in egress-contracts"
    for key, text in contracts.items():
        doc = yaml.safe_load(text)
        assert "operations" in doc or "openapi" in doc, key


def test_every_credential_variable_is_in_the_example_secret(base_objects):
    text = find(base_objects, "ConfigMap", "egress-config")["data"]["egress.yaml"]
    secret = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    referenced = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
    assert referenced and referenced <= set(secret["stringData"])


CONFIG_DIR = "/etc/egress"


def secret_volume_files(base_objects) -> dict[str, str]:
    """{path relative to the config's directory: value} of every Secret volume the proxy mounts,
    with the values of its example Secret (secret-*.example.yaml, never rendered)."""
    examples = {}
    for path in (K8S / "base").glob("secret-*.example.yaml"):
        doc = yaml.safe_load(path.read_text())
        examples[doc["metadata"]["name"]] = doc["stringData"]
    dep = find(base_objects, "Deployment", "egress")
    files = {}
    for m in container(dep, "egress").get("volumeMounts", []):
        vol = volume(dep, m["name"])
        if "secret" not in vol:
            continue
        assert m["mountPath"].startswith(CONFIG_DIR + "/") and "subPath" not in m and m.get("readOnly")
        data = examples[vol["secret"]["secretName"]]
        for key, value in data.items():
            files[posixpath.relpath(f"{m['mountPath']}/{key}", CONFIG_DIR)] = value
    return files


def test_secret_files_in_the_config_are_mounted_secret_volumes(base_objects):
    cfg = config_of(base_objects)
    wanted = [cfg["admin_token_file"]] + [
        up["credential"].get("value_file") or up["credential"].get("oauth2", {}).get("client_secret_file")
        for up in cfg["upstreams"] if up.get("credential") and "value" not in up["credential"]]
    assert cfg["admin_token_file"] and len(wanted) >= 2, "the admin token and an OAuth2 client secret"
    mounted = secret_volume_files(base_objects)
    assert set(wanted) <= set(mounted), f"not mounted from a Secret volume: {set(wanted) - set(mounted)}"


@needs_schemas
@pytest.mark.parametrize("name", ["secret-admin-token.example.yaml", "secret-shipping-oauth.example.yaml"])
def test_example_volume_secrets_are_valid(name):
    doc = yaml.safe_load((K8S / "base" / name).read_text())
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_product_loads_the_config_map(base_objects, tmp_path):
    try:
        from egress.config import load_settings
    except ImportError as exc:
        pytest.skip(f"egress.settings.load_settings not available yet ({exc}); YAML shape checked above")
    (tmp_path / "contracts").mkdir()
    (tmp_path / "egress.yaml").write_text(find(base_objects, "ConfigMap", "egress-config")["data"]["egress.yaml"])
    for key, text in find(base_objects, "ConfigMap", "egress-contracts")["data"].items():
        (tmp_path / "contracts" / key).write_text(text)
    secret = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    for rel, value in secret_volume_files(base_objects).items():   # as the kubelet mounts them
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(value)
    settings = load_settings(tmp_path / "egress.yaml", {**os.environ, **secret["stringData"]})
    assert settings.admin_listen == ("0.0.0.0", 9090)
    assert settings.store == "redis://egress-redis:6379/0"
    try:
        from egress.generation import compile_contracts
    except ImportError:
        return  # contracts are checked as YAML above; the compiler is not there yet
    compiled = compile_contracts(settings)  # what `egress check-config` does; raises ConfigError
    assert set(compiled) == {up.name for up in settings.upstreams if up.contract}


# ---------------------------------------------------------------- the example overlay


def test_overlay_changes_only_your_values(overlay_objects, base_objects):
    dep = find(overlay_objects, "Deployment", "egress")
    proxy = container(dep, "egress")
    assert proxy["image"] == "registry.example.com/platform/egress:0.1.0"
    assert proxy["envFrom"][0]["secretRef"] == {"name": "shop-egress-partner-credentials", "optional": False}
    assert dep["spec"]["replicas"] == find(overlay_objects, "HorizontalPodAutoscaler", "egress")["spec"]["minReplicas"] == 4
    assert {o["metadata"].get("namespace") for o in overlay_objects} == {NS}
    base_dep = find(base_objects, "Deployment", "egress")
    assert pod_spec(dep)["securityContext"] == pod_spec(base_dep)["securityContext"]
    assert proxy["securityContext"] == container(base_dep, "egress")["securityContext"]
