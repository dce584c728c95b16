"""The bench's ablation scenario (bench/ablation.py): its configurations are valid egress
configurations, and its table subtracts the right rows."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import ablation  # noqa: E402
import bench  # noqa: E402

from egress.config import load_settings  # noqa: E402


def test_bare_config_loads_with_nothing_but_the_upstream(tmp_path):
    path = ablation.bare_config(tmp_path / "bare.yaml", port=18080, admin_port=18081, provider_port=18082)
    settings = load_settings(path, {})
    (up,) = settings.upstreams
    assert (up.name, up.contract, up.credential, str(up.url)) == ("pay", None, None, "http://127.0.0.1:18082/v1")


def test_quiet_env_turns_off_traces_and_the_access_line():
    env = ablation.quiet_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_SAMPLER": "x",
                              "EGRESS_LOG_LEVEL": "info", "PATH": "/bin"})
    assert env == {"EGRESS_LOG_LEVEL": "warning", "PATH": "/bin"}


def test_subtractions_and_table():
    cpu = {"forwarder": 180.0, "egress-bare": 300.0, "egress-quiet": 360.0, "egress": 420.0}
    runs = [{"target": t, "body": "charge", "cpu_us": us + d} for t, us in cpu.items() for d in (-5, 0, 40)]
    summary = {"charge": {**{t: us for t, us in cpu.items()},
                          "pipeline": 120.0, "features": 60.0, "observers_out": 60.0}}
    lines = ablation.render({"runs": runs, "summary": summary}, bench.LABEL, {"charge": 9.0})
    text = "\n".join(lines)
    assert "| = the pipeline itself (bare - forwarder) | 120 |" in text
    assert "| = identity, sanitizing lists, credential, contract check (quiet - bare) | 60 |" in text
    assert "| = access log + 10 % sampled spans exported (egress - quiet) | 60 |" in text
    assert "| (of the features: orjson parse + jsonschema-rs validate, in-process) | 9 |" in text
    assert lines[0].endswith("| 1.3 KB |")


def test_ablation_is_part_of_the_full_run():
    assert "ablation" in bench.ALL_SCENARIOS.split(",")


def test_subtractions_are_paired_per_round():
    # round 1 ran on a slower machine: every row +100; the paired differences do not move
    cpu = {0: {"forwarder": 150, "egress-bare": 350, "egress-quiet": 360, "egress": 430, "flat": 260, "floor-proxy": 170},
           1: {"forwarder": 250, "egress-bare": 450, "egress-quiet": 460, "egress": 530, "flat": 360, "floor-proxy": 270},
           2: {"forwarder": 160, "egress-bare": 370, "egress-quiet": 360, "egress": 440, "flat": 280, "floor-proxy": 175}}
    runs = [{"round": r, "target": t, "body": "charge", "cpu_us": us} for r, row in cpu.items() for t, us in row.items()]
    row = ablation.summarize(runs, ("charge",))["charge"]
    assert (row["forwarder"], row["egress"], row["flat"], row["floor-proxy"]) == (160, 440, 280, 175)
    assert (row["pipeline"], row["features"], row["observers_out"]) == (200, 10, 70)
    assert (row["scaffolding"], row["checks_flat"]) == (100, 110)
    assert row["flat_observed"] == 360  # rounds: 260+70, 360+70, 280+80 -> median 360


def test_flat_rows_and_ratios_to_the_floor():
    summary = {"charge": {"forwarder": 160.0, "egress-bare": 350.0, "egress-quiet": 370.0, "egress": 440.0,
                          "flat": 250.0, "pipeline": 190.0, "features": 20.0, "observers_out": 70.0,
                          "scaffolding": 120.0, "checks_flat": 90.0, "flat_observed": 320.0, "floor-proxy": 204.0}}
    text = "\n".join(ablation.render({"runs": [], "summary": summary}, bench.LABEL, {"charge": 10.0}))
    assert "| flat: the same checks in one coroutine over plain aiohttp (bench/flat.py) | 250 |" in text
    assert "| = the checks on plain aiohttp (flat - forwarder) | 90 |" in text
    assert "| = egress's scaffolding around the same checks (quiet - flat) | 120 |" in text
    assert "| flat / floor (forwarder + that parse and validate) | 1.47x |" in text  # 250 / (160 + 10)
    assert "| egress-quiet / floor (forwarder + that parse and validate) | 2.18x |" in text
    assert "| flat + access log and spans / floor (forwarder + that parse and validate) | 1.88x |" in text
    assert "the least the promised checks and observability cost on aiohttp | 320 |" in text
    assert "| floor-proxy: the forwarder + orjson + jsonschema-rs on every body, nothing else | 204 |" in text
    assert "| floor-proxy / floor (forwarder + that parse and validate) | 1.20x |" in text  # 204 / 170


def test_a_run_from_before_flat_renders_without_its_rows():
    summary = {"charge": {"forwarder": 160.0, "egress-bare": 350.0, "egress-quiet": 370.0, "egress": 440.0,
                          "pipeline": 190.0, "features": 20.0, "observers_out": 70.0}}
    text = "\n".join(ablation.render({"runs": [], "summary": summary}, bench.LABEL, {"charge": 10.0}))
    assert "flat" not in text and "| = the pipeline itself (bare - forwarder) | 190 |" in text
