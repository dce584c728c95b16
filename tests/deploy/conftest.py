"""Fixtures for the deployment tests: the repository's paths and rendered manifests.

kustomize_lite is loaded by file path (not imported by name) so these tests work under
any pytest import mode and never collide with the repository's top-level deploy/ folder.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"


def _load(name: str):
    module_name = f"_egress_deploy_tests_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def kustomize_lite():
    return _load("kustomize_lite")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def base_objects(kustomize_lite) -> list[dict]:
    return kustomize_lite.build(K8S / "base")


@pytest.fixture(scope="session")
def overlay_objects(kustomize_lite) -> list[dict]:
    return kustomize_lite.build(K8S / "overlays" / "example")
