"""How many workers `egress serve` starts when `--workers` is not given: the CPUs it may use.

`os.sched_getaffinity(0)` (the CPUs the scheduler lets this process run on: `taskset`, a
cpuset, Docker's `--cpuset-cpus`), capped by the cgroup v2 CPU quota in `cpu.max` (Docker's
`--cpus`, a Kubernetes CPU limit): "max 100000" is no cap, "200000 100000" is 2 CPUs.  A
fractional quota rounds down (1.5 CPUs -> 1 worker: two would both be throttled), never
below 1.  No `cpu.max` (cgroup v1, not Linux) means no cap; one that cannot be read as a
quota is ignored with a warning on stderr, never silently.
"""

from __future__ import annotations

import os
import sys

CPU_MAX = "/sys/fs/cgroup/cpu.max"


def cgroup_cpus(path: str = CPU_MAX) -> int | None:
    """The whole CPUs a cgroup v2 `cpu.max` file allows; None when it sets no cap or is absent.
    ValueError when the file says something else than "<quota|max> <period>"."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read(256)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path} ({type(exc).__name__})") from None
    fields = text.split()
    if len(fields) != 2 or not fields[1].isdigit() or not (fields[0] == "max" or fields[0].isdigit()):
        raise ValueError(f"{path} is not '<quota|max> <period>'")
    period = int(fields[1])
    if period == 0:
        raise ValueError(f"{path} has a zero period")
    if fields[0] == "max":
        return None
    return int(fields[0]) // period


def affinity_cpus() -> int:
    """The CPUs this process may be scheduled on (os.cpu_count() where affinity is unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_workers(cpu_max: str = CPU_MAX, affinity: int | None = None) -> int:
    """`--workers` when not given: the affinity CPUs, capped by the cgroup quota, at least 1."""
    cpus = affinity_cpus() if affinity is None else affinity
    try:
        quota = cgroup_cpus(cpu_max)
    except ValueError as exc:
        print(f"egress: ignoring the CPU quota: {exc}; workers default to {max(1, cpus)}", file=sys.stderr)
        quota = None
    return max(1, cpus if quota is None else min(cpus, quota))
