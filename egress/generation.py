"""One config generation: everything compiled from one config, swapped atomically on reload.

A `Generation` (outlived by the process, process.py; outliving each request, exchange.py) holds the settings, router, sanitizer, compiled contracts and one upstream
client per upstream.  `build_generation` compiles all of it or raises ConfigError listing every
problem; a request keeps the generation it started with until it ends.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from egress.config import Settings, Upstream
from egress.errors import ConfigError
from egress.identity import Identity, compile_grants
from egress.routes import Router
from egress.sanitize import Sanitizer
from egress.send.client import UpstreamClient

_generations = itertools.count(1)


@dataclass(eq=False)
class Generation:
    settings: Settings
    router: Router
    sanitizer: Sanitizer
    contracts: dict[str, Any]  # upstream name -> egress.contracts.Contract (or absent)
    clients: dict[str, UpstreamClient]
    recorder: Any = None  # contracts.record.Recorder when `record:` is configured
    identity: Any = None  # identity.Identity: proves callers (JWKS fetchers live here)
    grants: dict[str, Any] = field(default_factory=dict)  # upstream name -> identity.Grants
    number: int = field(default_factory=lambda: next(_generations))
    in_flight: int = 0

    def contract_for(self, up: Upstream):
        return self.contracts.get(up.name)

    def inherit(self, previous: Generation) -> None:
        """Carry over what must survive a reload (the JWKS keys last fetched)."""
        if self.identity is not None:
            self.identity.adopt(previous.identity)

    async def start(self) -> None:
        for client in self.clients.values():
            await client.start()
        if self.identity is not None:
            await self.identity.start()

    async def close(self, *, grace: float = 0.0) -> None:
        """Close sessions once requests that started under this generation have finished."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for client in self.clients.values():
            await client.close()
        if self.identity is not None:
            await self.identity.close()


def compile_contracts(settings: Settings) -> dict[str, Any]:
    problems: list[str] = []
    compiled: dict[str, Any] = {}
    for i, up in enumerate(settings.upstreams):
        if not up.contract:
            continue
        from egress.contracts import load_contract

        try:
            compiled[up.name] = load_contract(settings.contracts_dir / up.contract,
                                              contracts_dir=settings.contracts_dir,
                                              base_path=up.base_path, options=up.contract_options)
        except ConfigError as exc:
            problems.extend(f"upstreams[{i}].contract: {p}" for p in exc.problems)
    if problems:
        raise ConfigError(problems)
    return compiled


def build_generation(settings: Settings, *, resolver=None) -> Generation:
    """Compile a config generation (contracts included); raise ConfigError on any problem."""
    recorder = None
    if settings.record is not None:
        from egress.contracts.record import Recorder
        recorder = Recorder(settings.record.dir, settings.record.max_files_per_operation,
                            settings.record.max_bytes)
    return Generation(
        settings=settings,
        recorder=recorder,
        router=Router(settings),
        sanitizer=Sanitizer(settings),
        contracts=compile_contracts(settings),
        identity=Identity(settings),
        grants=compile_grants(settings),
        clients={up.name: UpstreamClient(up, resolver=resolver) for up in settings.upstreams},
    )
