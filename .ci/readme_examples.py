"""CI: every command of the README's "Using it" section works, as written, right after
`scripts/serve` (and again after `scripts/serve --workers 2`).

Each command runs through bash from the repository root and must exit 0; a curl command
must also answer the status its trailing `# -> NNN` comment names (2xx when it names none).
scripts/serve is started and stopped by this script only, by its PID.

    .venv/bin/python .ci/readme_examples.py            # both runs
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "http://127.0.0.1:9090"


def commands(readme: str) -> list[tuple[str, int | None]]:
    """(command, expected HTTP status or None) for each line of the sh blocks in "Using it"."""
    section = readme.split("## Using it", 1)[1].split("\n## ", 1)[0]
    out = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            expected = re.search(r"#\s*->\s*(\d{3})", line)
            out.append((line, int(expected.group(1)) if expected else None))
    return out


def wait_ready(proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"scripts/serve exited {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(ADMIN + "/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("scripts/serve was not ready in time")


def status_of(command: str) -> int:
    """The HTTP status of a curl command as written (run once more, body discarded)."""
    shell = command.split("#", 1)[0].strip() + " -s -o /dev/null -w '%{http_code}'"
    return int(subprocess.run(["bash", "-c", shell], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout)


def run_all(extra: list[str]) -> list[str]:
    failures = []
    env = {k: v for k, v in os.environ.items() if k != "EGRESS_CONFIG"}
    serve = subprocess.Popen([str(ROOT / "scripts" / "serve"), *extra], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=False)
    try:
        wait_ready(serve)
        for command, expected in commands((ROOT / "README.md").read_text()):
            result = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=60)
            label = f"[scripts/serve {' '.join(extra)}]".replace(" ]", "]")
            if result.returncode != 0:
                failures.append(f"{label} exit {result.returncode}: {command}\n{result.stderr[-800:]}")
                continue
            if command.startswith("curl "):
                status = status_of(command)
                want_ok = expected is None and 200 <= status < 300
                if not want_ok and status != expected:
                    failures.append(f"{label} HTTP {status} (want {expected or '2xx'}): {command}")
                    continue
            print(f"ok {label} {command}")
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
    return failures


def main() -> int:
    failures = run_all([]) + run_all(["--workers", "2"])
    for failure in failures:
        print("FAIL", failure, file=sys.stderr)
    print(f"README examples: {'all ok' if not failures else f'{len(failures)} failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
