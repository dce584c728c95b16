"""The bench's instruction counts (bench/instructions.py): reading callgrind's dumps, the rows
and the table."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bench  # noqa: E402
import instructions  # noqa: E402


def test_totals_takes_the_largest_over_the_dump_files(tmp_path):
    out = tmp_path / "callgrind.out"
    (tmp_path / "callgrind.out.1").write_text("version: 1\nevents: Ir\nsummary: 123456789\ntotals: 123456789\n")
    out.write_text("version: 1\nevents: Ir\nfn=(1) main\n5 10\ntotals: 42\n")  # at exit: counting was off
    (tmp_path / "other.out").write_text("totals: 999999999999\n")  # not this run's
    assert instructions.totals(out) == 123456789


def test_totals_is_zero_before_any_dump(tmp_path):
    assert instructions.totals(tmp_path / "callgrind.out") == 0


def test_thread_totals_keep_each_thread_apart(tmp_path):
    """--separate-threads=yes: a dump file per thread (`-TT`), one set at exit (counting off) and one
    per callgrind_control dump (`.1-TT`); each thread's largest count, by thread number."""
    out = tmp_path / "callgrind.out"
    for name, text in (("callgrind.out-01", "totals: 7\n"), ("callgrind.out-02", "totals: 3\n"),
                       ("callgrind.out.1-01", "summary: 1000000\ntotals: 1000000\n"),
                       ("callgrind.out.1-02", "totals: 25000\n"), ("callgrind.out.1-03", "totals: 0\n"),
                       ("callgrind.out.1", "totals: 999\n"),            # an unseparated dump: no thread
                       ("other.out-01", "totals: 999999999\n")):        # not this run's
        (tmp_path / name).write_text(text)
    assert instructions.thread_totals(out) == {1: 1000000, 2: 25000, 3: 0}
    assert instructions.thread_totals(tmp_path / "none.out") == {}


def test_ratios_and_differences():
    rows = instructions.ratios({"forwarder": 500.0, "floor-proxy": 600.0, "flat": 900.0, "egress-quiet": 1100.0,
                                "egress": 1400.0})
    assert rows == {"egress / floor-proxy": 2.333, "egress-quiet / floor-proxy": 1.833, "flat / floor-proxy": 1.5,
                    "floor-proxy / forwarder": 1.2, "egress / forwarder": 2.8,
                    "scaffolding (egress-quiet - flat)": 200.0, "access log + spans (egress - egress-quiet)": 300.0,
                    "checks beyond the floor (flat - floor-proxy)": 300.0}


def test_ratios_leave_out_what_was_not_measured():
    assert instructions.ratios({"egress": 1400.0, "egress-quiet": 1100.0}) == {
        "access log + spans (egress - egress-quiet)": 300.0}


def test_render_a_run_and_a_skipped_run():
    result = {"n": 1200, "connections": 8, "bodies": {
        b: {"k_per_request": {"forwarder": 500.0, "floor-proxy": 600.0, "egress": 1400.0},
            "rows": instructions.ratios({"forwarder": 500.0, "floor-proxy": 600.0, "egress": 1400.0})}
        for b in ("charge", "list")}}
    text = "\n".join(instructions.render(result, bench.LABEL))
    assert "| forwarder | 500.0 | 500.0 |" in text
    assert "| egress / floor-proxy | 2.33x | 2.33x |" in text
    assert "| flat |" not in text  # not measured: no row
    assert "1,200 requests at 1.3 KB and 600 at 65 KB" in text
    assert "Skipped: valgrind not installed: valgrind" in "\n".join(
        instructions.render({"skipped": "not installed: valgrind"}, bench.LABEL))


def test_render_shows_the_exporter_thread_as_a_count():
    rows = dict(instructions.ratios({"egress": 1058.3, "egress-quiet": 983.1}), **{instructions.EXPORTER_ROW: 15.8})
    result = {"n": 1200, "connections": 8, "bodies": {"charge": {"k_per_request": {"egress": 1058.3}, "rows": rows}}}
    text = "\n".join(instructions.render(result, bench.LABEL))
    assert f"| {instructions.EXPORTER_ROW} | 15.8 |" in text  # a count, not a ratio
    assert "| access log + spans (egress - egress-quiet) | 75.2 |" in text


def test_accounting_gives_each_piece_its_removal_and_the_rest():
    counts = {"forwarder": 500.0, "flat": 900.0, "flat-no-route": 880.0, "flat-no-check": 800.0,
              "flat-no-guarded": 850.0, "egress-quiet": 1100.0, "egress-no-limits": 1090.0,
              "egress-no-metrics": 1080.0, "egress-no-inventory": 1095.0, "egress-no-observe": 1060.0}
    rows = instructions.accounting(counts)
    got = {(part.split(" ")[0], piece): k for part, piece, k in rows}
    assert got[("checks", "route")] == 20.0 and got[("checks", "check")] == 100.0
    assert got[("checks", "guarded")] == 50.0  # a part of check: not taken twice from the rest
    assert got[("checks", "the rest (no single removal)")] == 900 - 500 - 20 - 100
    assert got[("scaffolding", "limits")] == 10.0 and got[("scaffolding", "observe")] == 40.0
    # observe overlaps metrics + inventory + baselines: the rest subtracts those, not observe
    assert got[("scaffolding", "the rest (no single removal)")] == 1100 - 900 - 10 - 20 - 5
    # a target that was not counted gives no row, and a part without its whole gives none
    assert ("checks", "sanitize") not in got
    assert instructions.accounting({"forwarder": 1.0}) == []


def test_accounting_targets_are_the_pieces_flat_and_ablate_know():
    import ablate
    import flat
    targets = instructions.accounting_targets()
    assert {t.removeprefix("flat-no-") for t in targets if t.startswith("flat-no-")} == set(flat.PIECES)
    assert {t.removeprefix("egress-no-") for t in targets if t.startswith("egress-no-")} == set(ablate.PIECES)
    assert {"forwarder", "floor-proxy", "flat", "egress-quiet"} <= set(targets)
