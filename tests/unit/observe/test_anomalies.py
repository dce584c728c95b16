import pytest

from egress.observe.anomalies import Baselines, BaselineSettings

KEY = ("pay", "GET /charges/{id}")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def warmed(settings=BaselineSettings(warmup=20), clock=None, latency=0.1, size=1000):
    b = Baselines(settings, clock=clock or Clock())
    for _ in range(settings.warmup):
        assert b.observe(KEY, latency, size, False) == []
    return b


CASES = [
    # id, latency, size, failed, expected kinds
    ("normal", 0.1, 1000, False, []),
    ("slow", 1.0, 1000, False, ["latency"]),
    ("slightly-slow", 0.25, 1000, False, []),
    ("big", 0.1, 50_000, False, ["size"]),
    ("tiny-but-close", 0.1, 10, False, []),   # differs by 990 bytes < min_bytes
    ("one-failure", None, None, True, []),   # one failure on a clean baseline is not a burst
]


@pytest.mark.parametrize("latency, size, failed, kinds", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_sample_after_warmup(latency, size, failed, kinds):
    b = warmed()
    found = b.observe(KEY, latency, size, failed)
    assert [a.kind for a in found] == kinds


def test_no_anomaly_during_warmup():
    b = Baselines(BaselineSettings(warmup=50), clock=Clock())
    for _ in range(10):
        b.observe(KEY, 0.01, 100, False)
    assert b.observe(KEY, 5.0, 10_000_000, False) == []


def test_size_drop_is_an_anomaly():
    b = warmed(size=100_000)
    [a] = b.observe(KEY, 0.1, 200, False)
    assert (a.kind, a.observed, round(a.baseline)) == ("size", 200, 100_000)


def test_error_burst_is_a_status_anomaly_with_shares():
    b = warmed()
    kinds = [[a.kind for a in b.observe(KEY, None, None, True)] for _ in range(3)]
    assert ["status"] in kinds
    found = b.observe(KEY, None, None, True)
    status = [a for a in found if a.kind == "status"]
    assert status and status[0].observed > 3 * status[0].baseline


def test_one_spike_does_not_move_the_baseline_much():
    b = warmed()
    b.observe(KEY, 100.0, 1000, False)
    assert b.snapshot(KEY)["latency_s"] < 0.2


def test_lasting_shift_becomes_normal():
    b = warmed()
    hits = sum(bool(b.observe(KEY, 1.0, 1000, False)) for _ in range(300))
    assert hits < 300 and b.observe(KEY, 1.0, 1000, False) == []


def test_memory_is_bounded_and_stale_baselines_rewarm():
    clock = Clock()
    b = Baselines(BaselineSettings(warmup=5, max_operations=10, stale_after=60), clock=clock)
    for i in range(100):
        b.observe(("pay", f"op{i}"), 0.1, 10, False)
    assert len(b) == 10
    for _ in range(10):
        b.observe(KEY, 0.1, 1000, False)
    clock.now = 1000.0
    assert b.observe(KEY, 5.0, 1000, False) == []       # stale: warm-up again
    assert b.snapshot(KEY)["samples"] == 1


def test_settings_check_themselves():
    with pytest.raises(ValueError, match="factor"):
        BaselineSettings(factor=1.0)
