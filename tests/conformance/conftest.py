"""Conformance tests need `<repo>/../shared/conformance`; without it they say so loudly (and fail in CI)."""

from __future__ import annotations

import os

from .suite import CONFORMANCE, OPENAPI, SUITE

HOW = ("put the project's shared/ folder beside the repository (shared/conformance/openapi: Stripe, "
       "OpenAI and Twilio documents; shared/conformance/json-schema-test-suite)")


def missing() -> list[str]:
    return [str(p) for p in (OPENAPI, SUITE) if not p.is_dir()]


def pytest_terminal_summary(terminalreporter) -> None:
    gone = missing()
    if gone:
        ci = os.environ.get("CI", "").lower() == "true"
        terminalreporter.write_sep("!", "CONFORMANCE DATA MISSING" + (" (CI: FAILED)" if ci else ""), red=True, bold=True)
        terminalreporter.write_line(f"not found: {', '.join(gone)} (expected under {CONFORMANCE})")
        terminalreporter.write_line(f"the vendor and JSON Schema conformance tests were SKIPPED; to run them, {HOW}")
