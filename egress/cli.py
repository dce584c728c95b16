"""The command line (`egress ...`); nothing else lives here."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from egress.config import load_settings
from egress.cpus import default_workers
from egress.errors import ConfigError

DEFAULT_CONFIG = "config/egress.yaml"
DESCRIPTION = ("An outbound proxy for third-party API calls: strips internal tokens, injects partner "
               "credentials, validates responses against contracts. See README.md and docs/.")


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=os.environ.get("EGRESS_CONFIG", DEFAULT_CONFIG),
                   help="config file (default: $EGRESS_CONFIG or config/egress.yaml)")


def _worker_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return n


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
    from egress.generation import compile_contracts
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
    from egress.observe.logs import setup_logging
    setup_logging(os.environ.get("EGRESS_LOG_LEVEL", "info"))
    settings = _load(args.config)
    if settings is None:
        return 1
    workers = args.workers if args.workers is not None else default_workers()
    if workers > 1:
        from egress.workers import run
        return run(settings, workers)
    from egress.app import serve
    try:
        return asyncio.run(serve(settings, reuse_port=args.reuse_port))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"egress: {problem}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"egress: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1


def cmd_contracts_lint(args) -> int:
    from egress.contracts.lint import lint_dir
    directory = Path(args.dir) if args.dir else _contracts_dir(args.config)
    if directory is None:
        return 2
    warnings: list[str] = []
    problems = lint_dir(directory, warnings)
    for problem in problems:
        print(problem)
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"{directory}: {'ok' if not problems else f'{len(problems)} problem(s)'}", file=sys.stderr)
    return 1 if problems else 0


def _contracts_dir(config: str) -> Path | None:
    settings = _load(config)
    return settings.contracts_dir if settings is not None else None


def cmd_contracts_check(args) -> int:
    from egress.contracts import load_contract
    from egress.contracts.check import check_file
    settings = _load(args.config)
    if settings is None:
        return 2
    up = settings.upstream(args.upstream)
    if up is None or not up.contract:
        print(f"egress: no upstream {args.upstream!r} with a contract in {args.config}", file=sys.stderr)
        return 2
    try:
        contract = load_contract(settings.contracts_dir / up.contract, contracts_dir=settings.contracts_dir,
                                 base_path=up.base_path, options=up.contract_options)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"egress: {problem}", file=sys.stderr)
        return 2
    code, lines = check_file(contract, args.method, args.path, args.status, Path(args.file),
                             content_type=args.content_type)
    for line in lines:
        print(line)
    return code


def cmd_contracts_learn(args) -> int:
    import yaml

    from egress.contracts.learn import learn
    draft = learn(Path(args.samples), upstream=args.upstream)
    if not draft["operations"]:
        print(f"egress: no samples for {args.upstream!r} under {args.samples}", file=sys.stderr)
        return 1
    text = "# draft contract learned from recorded samples: review before use\n" + yaml.safe_dump(
        draft, sort_keys=False)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out} ({len(draft['operations'])} operations)", file=sys.stderr)
    else:
        print(text)
    return 0


def _admin_token(args) -> str | None:
    """--admin-token-file, else $EGRESS_ADMIN_TOKEN (never a command-line value: ps shows those)."""
    if args.admin_token_file:
        with open(args.admin_token_file) as fh:
            return fh.read().strip()
    return os.environ.get("EGRESS_ADMIN_TOKEN") or None


def cmd_inventory(args) -> int:
    from egress.observe.inventory import fetch, render_table
    try:
        doc = fetch(args.admin, token=_admin_token(args))
    except (OSError, ValueError) as exc:
        print(f"egress: cannot read the inventory from {args.admin}: {exc}", file=sys.stderr)
        return 1
    print(render_table(doc), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="egress", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the proxy")
    _config_arg(p)
    p.add_argument("--workers", type=_worker_count, default=None,
                   help="worker processes sharing the data port; compiled once, forked; the admin port adds up "
                   "all workers (default: the CPUs this process may use, its affinity capped by the cgroup "
                   "v2 cpu.max quota)")
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("check-config", help="validate config and contracts; exit 0 or list every error")
    _config_arg(p)
    p.set_defaults(func=cmd_check_config)
    contracts = sub.add_parser("contracts", help="lint, check and learn contracts").add_subparsers(
        dest="contracts_command", required=True)
    p = contracts.add_parser("lint", help="meta-schema, $refs and OpenAPI checks of a contracts directory")
    p.add_argument("dir", nargs="?", help="default: contracts_dir of the config")
    _config_arg(p)
    p.set_defaults(func=cmd_contracts_lint)
    p = contracts.add_parser("check", help="would this body pass? exit 0 valid, 1 violations, 2 usage")
    for name in ("upstream", "method", "path"):
        p.add_argument(name)
    p.add_argument("status", type=int)
    p.add_argument("file")
    p.add_argument("--content-type", default=None)
    _config_arg(p)
    p.set_defaults(func=cmd_contracts_check)
    p = contracts.add_parser("learn", help="draft a compact contract from recorded response samples")
    p.add_argument("upstream")
    p.add_argument("--samples", required=True, help="the record.dir of the config")
    p.add_argument("--out", help="write the draft here instead of stdout")
    p.set_defaults(func=cmd_contracts_learn)
    p = sub.add_parser("inventory", help="the consumed-API surface, as a table")
    p.add_argument("--admin", default=os.environ.get("EGRESS_ADMIN", "http://127.0.0.1:9090"),
                   help="admin URL (default: $EGRESS_ADMIN or http://127.0.0.1:9090)")
    p.add_argument("--admin-token-file", default=None,
                   help="file holding the admin_token (default: $EGRESS_ADMIN_TOKEN, if set)")
    p.set_defaults(func=cmd_inventory)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
