"""Response contracts: loading (compact format, OpenAPI 3.0/3.1), compiling once, checking responses.

    load_contract(path, contracts_dir=, base_path=) -> Contract     loader.py (raises ConfigError)
    Contract.match(method, path) -> Operation | None                paths.py
    Operation.check(status, content_type, body) -> CheckResult      operation.py -> body.py, compiler.py
    CheckResult / Violation                                         results.py (no instance values)

Modules: documents (files, URIs, pointers), resources (walking schemas and their $refs, local
files only), oas30 (3.0 -> 2020-12), compiler (jsonschema-rs), messages, drift, media,
compact/openapi (readers), lint, learn, record, check (CLI helpers).
"""

from egress.contracts.loader import Contract, load_contract
from egress.contracts.operation import Operation
from egress.contracts.results import CheckResult, Violation

__all__ = ["CheckResult", "Contract", "Operation", "Violation", "load_contract"]
