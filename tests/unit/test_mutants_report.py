"""scripts/mutants_report.py: the verdict of a mutation run (a run that tested nothing never passes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "mutants_report.py"
TABLE = "| mutant | why |\n| --- | --- |\n| `m.x_f__mutmut_2` | message: wording only |\n"

CASES = [
    ("all-killed", "m.x_f__mutmut_1: killed\n", 0, "unexplained: 0"),
    ("survivor-explained", "m.x_f__mutmut_1: killed\nm.x_f__mutmut_2: survived\n", 0, "unexplained: 0"),
    ("survivor-unexplained", "m.x_f__mutmut_1: killed\nm.x_f__mutmut_3: survived\n", 1, "unexplained: 1"),
    ("no-tests-unexplained", "m.x_f__mutmut_1: killed\nm.x_f__mutmut_4: no tests\n", 1, "unexplained: 1"),
    ("not-checked", "m.x_f__mutmut_1: killed\nm.x_f__mutmut_5: not checked\n", 1, "not decided"),
    ("nothing-tested", "", 2, "no mutant was tested"),
    ("listed-but-killed-is-stale", "m.x_f__mutmut_1: killed\nm.x_f__mutmut_2: killed\n", 0,
     "or no such mutant (stale rows, delete them): 1\n- `m.x_f__mutmut_2`"),
    ("listed-and-surviving-is-not-stale", "m.x_f__mutmut_2: survived\n", 0, "or no such mutant (stale rows, delete them): 0"),
    ("listed-but-absent-from-its-files-run-is-stale", "m.x_f__mutmut_1: killed\n", 0,
     "or no such mutant (stale rows, delete them): 1\n- `m.x_f__mutmut_2`"),
]

ORPHAN_TABLE = TABLE + "| `m.x_gone__mutmut_1` | message: a renamed function |\n| `other.x_g__mutmut_1` | label |\n"


def test_a_row_naming_no_mutant_of_a_mutated_file_is_stale(tmp_path):
    (tmp_path / "results").write_text("m.x_f__mutmut_2: survived\n")
    (tmp_path / "MUTANTS.md").write_text(ORPHAN_TABLE)
    done = subprocess.run([sys.executable, str(SCRIPT), "results", "MUTANTS.md", "report.md", "1", "m.py"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    # m.py was mutated and has no x_gone: stale; other.py was not mutated: its row is not judged
    assert "(stale rows, delete them): 1\n- `m.x_gone__mutmut_1`" in done.stdout


@pytest.mark.parametrize(("results", "rc", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_verdict(tmp_path, results, rc, says):
    (tmp_path / "results").write_text(results)
    (tmp_path / "MUTANTS.md").write_text(TABLE)
    done = subprocess.run([sys.executable, str(SCRIPT), "results", "MUTANTS.md", "report.md", "1", "m.py"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == rc, done.stdout + done.stderr
    assert says in done.stdout + done.stderr
    assert (tmp_path / "report.md").exists()
