"""Missing conformance data: a clear closing line on a fresh clone; an error with CI=true."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("ci,code,expected", [
    ("", 0, "test(s) skipped (JSON Schema Test Suite"),
    ("true", 4, "CI=true and the conformance data is missing"),
], ids=["fresh-clone-says-what-was-skipped", "ci-fails-without-shared"])
def test_missing_conformance_data(tmp_path, ci, code, expected):
    clone = tmp_path / "clone"  # a checkout with no shared/ beside it
    shutil.copytree(REPO / "tests", clone / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    (clone / "config").symlink_to(REPO / "config")
    (clone / "contracts").symlink_to(REPO / "contracts")
    env = {**os.environ, "CI": ci}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/conformance"],
                            cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == code, out[-2000:]
    assert expected in out
    assert str(tmp_path / "shared" / "conformance") in out  # names where the data goes
