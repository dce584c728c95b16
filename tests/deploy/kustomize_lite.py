"""A small subset of `kustomize build`, so CI can render deploy/k8s without the binary.

Faithful for the fields it accepts and loud about the rest: a kustomization (or component)
that uses any field outside SUPPORTED raises `Unsupported`, so adding e.g. `commonLabels`
to a manifest fails the tests instead of being silently ignored.

Supported, with kustomize's semantics:
  resources            files (multi-document YAML) and directories (nested kustomizations)
  components           directories whose kustomization has kind: Component
  configMapGenerator   files (`path` or `key=path`), literals (`KEY=value`),
                       behavior create | replace | merge; the name gets kustomize's content
                       hash suffix and every reference in pod templates is rewritten
  namespace            set on every (namespaced) object
  images               name -> newName / newTag / digest in containers and initContainers
  replicas             name -> count on Deployments / StatefulSets / ReplicaSets
  patches              JSON 6902 patches (inline `patch` or `path`) with a `target`
                       (kind / name / namespace; name is an anchored regex as in kustomize)

Order within one kustomization is kustomize's: resources, components, generators, then
transformers (namespace, images, replicas, patches); hash suffixes at the end of the build.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED = {
    "apiVersion", "kind", "resources", "components", "configMapGenerator",
    "namespace", "images", "replicas", "patches",
}
GENERATOR_KEYS = {"name", "files", "literals", "behavior"}
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
REPLICA_KINDS = {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"}


class Unsupported(Exception):
    """The kustomization uses something this renderer does not implement."""


@dataclass
class Resource:
    obj: dict
    generated_name: str | None = None  # the generator's name, before the hash suffix

    @property
    def kind(self) -> str:
        return self.obj["kind"]

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]


@dataclass
class _Build:
    resources: list[Resource] = field(default_factory=list)


# ---------------------------------------------------------------- public


def build(directory: str | Path) -> list[dict]:
    """Render the kustomization in `directory`; returns the objects as plain dicts."""
    acc = _Build()
    _accumulate(Path(directory), "Kustomization", acc)
    _apply_hash_suffixes(acc.resources)
    return [r.obj for r in acc.resources]


def config_map_hash(cm: dict) -> str:
    """kustomize's name suffix for a ConfigMap (api/hasher: encodeConfigMap + encode)."""
    doc: dict[str, Any] = {
        "kind": "ConfigMap",
        "name": cm.get("metadata", {}).get("name", ""),
        "data": cm.get("data") if cm.get("data") is not None else "",
    }
    if isinstance(cm.get("binaryData"), dict):
        doc["binaryData"] = cm["binaryData"]
    return _short_hash(_go_json(doc))


# ---------------------------------------------------------------- accumulation


def _load_kustomization(directory: Path) -> dict:
    for name in KUSTOMIZATION_FILES:
        path = directory / name
        if path.is_file():
            doc = yaml.safe_load(path.read_text()) or {}
            unknown = set(doc) - SUPPORTED
            if unknown:
                raise Unsupported(f"{path}: fields not supported by kustomize_lite: {sorted(unknown)}")
            return doc
    raise FileNotFoundError(f"no kustomization file in {directory}")


def _accumulate(directory: Path, expected_kind: str, acc: _Build) -> None:
    kust = _load_kustomization(directory)
    kind = kust.get("kind", "Kustomization")
    if kind != expected_kind:
        raise Unsupported(f"{directory}: kind {kind!r} used where {expected_kind!r} is expected")
    if kind == "Component":
        target = acc  # a component transforms everything accumulated so far
    else:
        target = _Build()
    for entry in kust.get("resources", []):
        path = directory / entry
        if path.is_dir():
            sub = _Build()
            _accumulate(path, "Kustomization", sub)
            target.resources.extend(sub.resources)
        else:
            for doc in yaml.safe_load_all(path.read_text()):
                if doc is not None:
                    target.resources.append(Resource(doc))
    for entry in kust.get("components", []):
        _accumulate(directory / entry, "Component", target)
    for gen in kust.get("configMapGenerator", []):
        _generate_config_map(directory, gen, target.resources)
    if "namespace" in kust:
        for r in target.resources:
            if r.kind not in CLUSTER_SCOPED:
                r.obj["metadata"]["namespace"] = kust["namespace"]
    for image in kust.get("images", []):
        for r in target.resources:
            _set_image(r.obj, image)
    for rep in kust.get("replicas", []):
        for r in target.resources:
            if r.kind in REPLICA_KINDS and r.name == rep["name"]:
                r.obj["spec"]["replicas"] = rep["count"]
    for patch in kust.get("patches", []):
        _apply_patch(directory, patch, target.resources)
    if target is not acc:
        acc.resources.extend(target.resources)


def _generate_config_map(directory: Path, gen: dict, resources: list[Resource]) -> None:
    unknown = set(gen) - GENERATOR_KEYS
    if unknown:
        raise Unsupported(f"configMapGenerator {gen.get('name')!r}: unsupported keys {sorted(unknown)}")
    data: dict[str, str] = {}
    for entry in gen.get("files", []):
        key, _, rel = entry.partition("=") if "=" in entry else (Path(entry).name, "", entry)
        if key in data:
            raise ValueError(f"configMapGenerator {gen['name']!r}: duplicate key {key!r}")
        data[key] = (directory / rel).read_text()
    for literal in gen.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    behavior = gen.get("behavior", "create")
    existing = [r for r in resources if r.kind == "ConfigMap" and r.generated_name == gen["name"]]
    if behavior == "create":
        if existing:
            raise ValueError(f"configMapGenerator {gen['name']!r} already exists: use behavior merge|replace")
        resources.append(Resource(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data},
            generated_name=gen["name"],
        ))
        return
    if len(existing) != 1:
        raise ValueError(f"configMapGenerator {gen['name']!r} ({behavior}): no generated ConfigMap to {behavior}")
    if behavior == "replace":
        existing[0].obj["data"] = data
    elif behavior == "merge":
        existing[0].obj.setdefault("data", {}).update(data)
    else:
        raise Unsupported(f"configMapGenerator behavior {behavior!r}")


# ---------------------------------------------------------------- transformers


def _pod_specs(obj: dict) -> list[dict]:
    if obj["kind"] in POD_TEMPLATE_KINDS:
        return [obj["spec"]["template"]["spec"]]
    if obj["kind"] == "CronJob":
        return [obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    if obj["kind"] == "Pod":
        return [obj["spec"]]
    return []


def _split_image(image: str) -> tuple[str, str, str]:
    """'repo/name:tag@sha256:...' -> (name, tag, digest); a ':' after the last '/' is a tag."""
    name, _, digest = image.partition("@")
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    return name, tag, digest


def _set_image(obj: dict, image: dict) -> None:
    for spec in _pod_specs(obj):
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            name, tag, digest = _split_image(container["image"])
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{name}@{image['digest']}"
            elif "newTag" in image:
                container["image"] = f"{name}:{image['newTag']}"
            else:
                container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _apply_patch(directory: Path, patch: dict, resources: list[Resource]) -> None:
    text = patch["patch"] if "patch" in patch else (directory / patch["path"]).read_text()
    ops = yaml.safe_load(text)
    if not isinstance(ops, list):
        raise Unsupported("only JSON 6902 patches (a list of operations) are supported")
    target = patch.get("target")
    if not target:
        raise Unsupported("a JSON 6902 patch needs a target")
    unknown = set(target) - {"kind", "name", "namespace", "group", "version"}
    if unknown:
        raise Unsupported(f"patch target keys {sorted(unknown)}")
    matched = [r for r in resources if _matches(r, target)]
    if not matched:
        raise ValueError(f"patch target {target} matches no resource")
    for r in matched:
        for op in ops:
            _json_patch(r.obj, op)


def _matches(r: Resource, target: dict) -> bool:
    api = r.obj.get("apiVersion", "")
    group, _, version = api.rpartition("/")
    checks = {
        "kind": r.kind,
        "name": r.generated_name or r.name,
        "namespace": r.obj["metadata"].get("namespace", ""),
        "group": group,
        "version": version,
    }
    return all(re.fullmatch(str(target[k]), checks[k]) for k in target)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer must start with '/': {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _json_patch(doc: dict, op: dict) -> None:
    parts = _pointer(op["path"])
    parent: Any = doc
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    kind = op["op"]
    if kind in ("replace", "test", "remove") and isinstance(parent, dict) and last not in parent:
        raise KeyError(f"JSON patch {kind}: {op['path']} does not exist")
    if kind == "replace":
        if isinstance(parent, list):
            parent[int(last)] = op["value"]
        else:
            parent[last] = op["value"]
    elif kind == "add":
        if isinstance(parent, list):
            parent.insert(len(parent) if last == "-" else int(last), op["value"])
        else:
            parent[last] = op["value"]
    elif kind == "remove":
        del parent[int(last) if isinstance(parent, list) else last]
    elif kind == "test":
        current = parent[int(last)] if isinstance(parent, list) else parent[last]
        if current != op["value"]:
            raise ValueError(f"JSON patch test failed at {op['path']}")
    else:
        raise Unsupported(f"JSON patch op {kind!r}")


# ---------------------------------------------------------------- hash suffixes


def _go_json(value: Any) -> str:
    """encoding/json.Marshal's bytes: sorted keys, no spaces, HTML characters escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _short_hash(encoded: str) -> str:
    hexdigest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    return hexdigest.translate(str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"}))


def _config_map_refs(obj: dict) -> list[tuple[dict, str]]:
    """(holder, key) for every ConfigMap name a pod template refers to."""
    refs: list[tuple[dict, str]] = []
    for spec in _pod_specs(obj):
        for vol in spec.get("volumes", []):
            if "configMap" in vol:
                refs.append((vol["configMap"], "name"))
            for source in vol.get("projected", {}).get("sources", []):
                if "configMap" in source:
                    refs.append((source["configMap"], "name"))
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            for env_from in container.get("envFrom", []):
                if "configMapRef" in env_from:
                    refs.append((env_from["configMapRef"], "name"))
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    refs.append((ref, "name"))
    return refs


def _apply_hash_suffixes(resources: list[Resource]) -> None:
    renames: dict[tuple[str, str], str] = {}
    for r in resources:
        if r.kind == "ConfigMap" and r.generated_name:
            suffixed = f"{r.generated_name}-{config_map_hash(copy.deepcopy(r.obj))}"
            renames[(r.obj["metadata"].get("namespace", ""), r.generated_name)] = suffixed
            r.obj["metadata"]["name"] = suffixed
    for r in resources:
        namespace = r.obj["metadata"].get("namespace", "")
        for holder, key in _config_map_refs(r.obj):
            holder[key] = renames.get((namespace, holder[key]), holder[key])
