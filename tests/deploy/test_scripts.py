"""scripts/, bench/, demo/ and .ci/: valid shell, executable, and never a kill by name
(pkill/killall would stop every matching process on the host, not only ours)."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHELL = sorted(p for d in ("scripts", "bench", ".ci") for p in (REPO / d).iterdir()
               if p.is_file() and p.read_text(errors="replace").startswith("#!/usr/bin/env bash"))
EVERYTHING = sorted(p for d in ("scripts", "bench", "demo", ".ci") for p in (REPO / d).rglob("*")
                    if p.is_file() and p.suffix in ("", ".py", ".sh") and "results" not in p.parts)
BY_NAME = re.compile(r"\b(pkill|killall)\b|kill\s+-\d+\s+-\$|\bkill\s+0\b")


def test_the_operating_scripts_exist():
    names = {p.relative_to(REPO).as_posix() for p in SHELL}
    assert {"scripts/serve", "scripts/test", "scripts/demo", "scripts/image", ".ci/run"} <= names


@pytest.mark.parametrize("path", SHELL, ids=[p.relative_to(REPO).as_posix() for p in SHELL])
def test_shell_scripts_parse_and_are_executable(path):
    assert path.stat().st_mode & 0o111, f"{path} is not executable"
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", EVERYTHING, ids=[p.relative_to(REPO).as_posix() for p in EVERYTHING])
def test_processes_are_stopped_by_pid_never_by_name(path):
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        code = line.split("#", 1)[0] if path.suffix != ".py" else line
        assert not BY_NAME.search(code), f"{path.relative_to(REPO)}:{n}: {line.strip()}"
