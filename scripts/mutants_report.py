"""The mutation report of scripts/mutants: score, survivors with diffs, explained or not.

Usage: mutants_report.py RESULTS MUTANTS_MD REPORT SECONDS FILE...
RESULTS is `mutmut results --all true` ("name: status" lines); MUTANTS_MD lists equivalent
mutants as table rows whose first cell is the mutant's name in backticks.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path


def main(argv: list[str]) -> int:
    results, explained_md, report, seconds, files = Path(argv[1]), Path(argv[2]), Path(argv[3]), argv[4], argv[5:]
    statuses: dict[str, str] = {}
    for line in results.read_text().splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name:
            statuses[name] = status.strip()
    explained = dict(re.findall(r"^\|\s*`([^`]+)`\s*\|\s*([^|]+?)\s*\|", explained_md.read_text(), re.M)) \
        if explained_md.exists() else {}
    if not statuses:  # mutmut did not get to the mutants (a failing clean run, a crash): never a pass
        print("scripts/mutants: no mutant was tested; see mutants.log (e.g. 'Failed to run clean test')",
              file=sys.stderr)
        report.write_text("# Mutation report: no mutant was tested (see mutants.log)\n")
        return 2
    counts = Counter(statuses.values())
    killed, survived = counts.get("killed", 0), [n for n, s in statuses.items() if s == "survived"]
    untested = [n for n, s in statuses.items() if s == "no tests"]
    decided = killed + len(survived)
    score = 100.0 * killed / decided if decided else 0.0
    unchecked = [n for n, s in statuses.items() if s not in ("killed", "survived", "no tests", "timeout")]
    unexplained = [n for n in survived + untested if n not in explained]
    # listed as equivalent, yet a test killed it in this run, or it names no mutant of a file this
    # run mutated (its function was renamed or removed): the row is stale (delete it)
    modules = tuple(f.removesuffix(".py").removesuffix("/__init__").replace("/", ".") + ".x" for f in files)
    stale = sorted(n for n in explained if statuses.get(n) in ("killed", "timeout")
                   or (n not in statuses and n.startswith(modules)))
    out = [f"# Mutation report ({len(statuses)} mutants, {seconds} s)", "",
           f"Files: {', '.join(files)}", "",
           f"Score: **{score:.1f}%** killed ({killed} killed, {len(survived)} survived, {len(untested)} with no test, "
           f"{counts.get('timeout', 0)} timeouts, {counts.get('suspicious', 0)} suspicious)", "",
           f"Surviving or untested, explained in tests/MUTANTS.md: {len(survived) + len(untested) - len(unexplained)}; "
           f"**unexplained: {len(unexplained)}**", "",
           f"Listed in tests/MUTANTS.md but killed in this run, or no such mutant (stale rows, delete them): "
           f"{len(stale)}"
           + "".join(f"\n- `{n}`" for n in stale), ""]
    for name in survived + untested:
        mark = f"explained: {explained[name]}" if name in explained else "UNEXPLAINED"
        diff = _show(name)
        lines = [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
        out += [f"## `{name}` ({statuses[name]}; {mark})", "", "```diff", *lines, "```", ""]
    report.write_text("\n".join(out) + "\n")
    print("\n".join(out[:9]))
    print(f"report: {report}")
    if unchecked:  # interrupted, or statuses mutmut could not decide (segfaults, "not checked")
        print(f"scripts/mutants: {len(unchecked)} mutants not decided: {dict(Counter(statuses[n] for n in unchecked))}")
    return 1 if unexplained or unchecked else 0


def _show(name: str) -> str:
    """The mutant's diff (empty when mutmut is not installed here)."""
    try:
        return subprocess.run([".venv/bin/mutmut", "show", name], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return ""


if __name__ == "__main__":
    sys.exit(main(sys.argv))
