"""The command line (`egress ...`); nothing else lives here."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

from .errors import ConfigError
from .settings import load_settings

DEFAULT_CONFIG = "config/egress.yaml"


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=os.environ.get("EGRESS_CONFIG", DEFAULT_CONFIG),
                   help="config file (default: $EGRESS_CONFIG or config/egress.yaml)")


def _load(path: str):
    try:
        return load_settings(path, os.environ)
    except ConfigError as exc:
        print(f"egress: invalid config {path}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return None


def cmd_check_config(args) -> int:
    settings = _load(args.config)
    if settings is None:
        return 1
    from .runtime import compile_contracts
    try:
        compile_contracts(settings)
    except ConfigError as exc:
        print(f"egress: invalid contracts for {args.config}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"{args.config}: ok ({len(settings.upstreams)} upstreams)")
    return 0


def cmd_serve(args) -> int:
    from .logs import setup_logging
    setup_logging(os.environ.get("EGRESS_LOG_LEVEL", "info"))
    settings = _load(args.config)
    if settings is None:
        return 1
    if args.workers > 1:
        return _supervise(args)
    from .app import serve
    try:
        return asyncio.run(serve(settings, reuse_port=args.reuse_port))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"egress: {problem}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"egress: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _supervise(args) -> int:
    """N worker processes share the ports (SO_REUSEPORT); signals are passed on to them."""
    import signal
    cmd = [sys.executable, "-m", "egress", "serve", "--config", args.config, "--reuse-port"]
    procs = [subprocess.Popen(cmd) for _ in range(args.workers)]

    def forward(signum, _frame):
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    codes = [proc.wait() for proc in procs]
    return max(codes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="egress", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the proxy")
    _config_arg(p)
    p.add_argument("--workers", type=int, default=1, help="processes sharing the ports (SO_REUSEPORT)")
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("check-config", help="validate config and contracts; exit 0 or list every error")
    _config_arg(p)
    p.set_defaults(func=cmd_check_config)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
