"""The observe stage: what on-call sees of every exchange — traces, metrics, access log,
inventory, anomaly baselines (composed by observe.py) and the structured logs (logs.py)."""
