"""Conformance material is third-party data beside the repository (suite.py: ../shared/conformance).

Without it these tests skip; the run then ends with one line saying what was skipped and
how to get the data.  With CI=true a missing ../shared is an error, never a quiet skip.
"""

from __future__ import annotations

import os

import pytest

from tests.conformance.suite import CONFORMANCE

HOW = (f"put the conformance data at {CONFORMANCE} (a checkout of the project's shared/ folder beside "
       "this repository: JSON Schema Test Suite + vendor OpenAPI documents, listed in its README.md)")


def _missing() -> bool:
    return not CONFORMANCE.is_dir()


def pytest_collection_modifyitems(config, items):
    if _missing() and os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        raise pytest.UsageError(f"CI=true and the conformance data is missing: {HOW}")


def pytest_terminal_summary(terminalreporter):
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if getattr(r, "nodeid", "").startswith(("tests/conformance/", "conformance/"))
               or "/conformance/" in str(getattr(r, "fspath", ""))]
    if skipped and _missing():
        terminalreporter.write_line(
            f"conformance: {len(skipped)} test(s) skipped (JSON Schema Test Suite, vendor OpenAPI "
            f"documents): {HOW}", yellow=True, bold=True)
