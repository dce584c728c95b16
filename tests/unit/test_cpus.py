"""egress/cpus.py: the default `--workers`, from the affinity CPUs and a cgroup v2 cpu.max file
(a tmp file passed by path), and the `--workers` argument's refusals (named cases)."""

from __future__ import annotations

import os

import pytest

from egress.cli import main
from egress.cpus import cgroup_cpus, default_workers

WORKERS = [
    # id, cpu.max content (None: no file), affinity CPUs, workers, warned
    ("no-cpu-max-file", None, 4, 4, False),
    ("no-quota", "max 100000\n", 4, 4, False),
    ("quota-of-two", "200000 100000\n", 4, 2, False),
    ("quota-above-affinity", "800000 100000\n", 2, 2, False),
    ("fractional-quota-rounds-down", "150000 100000\n", 4, 1, False),
    ("quota-below-one-cpu-is-one", "50000 100000\n", 4, 1, False),
    ("other-period", "300000 50000\n", 8, 6, False),
    ("one-affinity-cpu-no-quota", "max 100000\n", 1, 1, False),
    ("no-affinity-cpus-is-one", None, 0, 1, False),
    ("garbage-ignored-with-a-warning", "garbage\n", 3, 3, True),
    ("empty-file-ignored-with-a-warning", "", 3, 3, True),
    ("three-fields-ignored-with-a-warning", "200000 100000 1\n", 3, 3, True),
    ("negative-quota-ignored-with-a-warning", "-1 100000\n", 3, 3, True),
    ("zero-period-ignored-with-a-warning", "100000 0\n", 3, 3, True),
    ("non-numeric-period-ignored-with-a-warning", "max x\n", 3, 3, True),
]


@pytest.mark.parametrize("case", WORKERS, ids=[c[0] for c in WORKERS])
def test_default_workers(case, tmp_path, capsys):
    _, content, affinity, workers, warned = case
    path = tmp_path / "cpu.max"
    if content is not None:
        path.write_text(content)
    assert default_workers(str(path), affinity=affinity) == workers
    err = capsys.readouterr().err
    assert ("ignoring the CPU quota" in err) is warned
    if warned:
        assert f"workers default to {workers}" in err


QUOTAS = [
    # id, content, CPUs (None: no cap) or the error's words
    ("max", "max 100000", None),
    ("two", "200000 100000", 2),
    ("one-and-a-half", "150000 100000", 1),
    ("half", "50000 100000", 0),
    ("garbage", "garbage", "is not '<quota|max> <period>'"),
    ("zero-period", "100000 0", "zero period"),
    ("not-ascii", "\u00e9 100000", "cannot read"),
]


@pytest.mark.parametrize("case", QUOTAS, ids=[c[0] for c in QUOTAS])
def test_cgroup_cpus(case, tmp_path):
    _, content, expected = case
    path = tmp_path / "cpu.max"
    path.write_text(content, encoding="utf-8")
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            cgroup_cpus(str(path))
    else:
        assert cgroup_cpus(str(path)) == expected


def test_unreadable_cpu_max_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read .* \\(IsADirectoryError\\)"):
        cgroup_cpus(str(tmp_path))


def test_default_is_this_process_affinity_without_a_quota(tmp_path):
    assert default_workers(str(tmp_path / "absent")) == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"], ids=["zero", "negative", "word", "fraction"])
def test_workers_argument_refuses(value, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--config", "absent.yaml", "--workers", value])
    assert exited.value.code == 2
    assert f"--workers: must be a whole number >= 1, got '{value}'" in capsys.readouterr().err
