"""The scheduler: a Plan's specs, run at their vantage points, become Observations.

Vantages run concurrently (one worker each, probes multiplexed over its pipe, at most
`in_flight` requests outstanding); packets per second are split statically between vantages
and between a vantage's requests (ratelimit.py), so no limit is exceeded whatever finishes
first. Specs without a vantage are not sent (the verdict says "no vantage"); a vantage that
fails turns its specs into error observations (the verdict says INCONCLUSIVE).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Sequence

from reachproof.engine.confirm import observe_confirmed
from reachproof.engine.options import EngineOptions, TcpEngine
from reachproof.engine.progress import ProbeProgress, ProgressSink
from reachproof.engine.ratelimit import expected_seconds, probe_budget, vantage_budgets
from reachproof.engine.recheck import recheck_silent
from reachproof.engine.scope import check_scope, probe_scope
from reachproof.engine.translate import observation_from_result, probe_request, worker_kind
from reachproof.engine.vantage import Worker
from reachproof.errors import VantageError
from reachproof.inventory.model import Inventory, Vantage
from reachproof.observation import Observation
from reachproof.plan import Plan, ProbeKind, ProbeSpec


def run_plan(
    plan: Plan,
    inventory: Inventory,
    options: EngineOptions | None = None,
    progress: ProgressSink | None = None,
) -> tuple[Observation, ...]:
    """Observe every spec of `plan` that has a vantage; raises OutOfScopeError before sending
    anything if a target is not declared by `inventory`."""
    return run_specs(plan.specs, inventory, options, progress)


def run_specs(
    specs: Sequence[ProbeSpec],
    inventory: Inventory,
    options: EngineOptions | None = None,
    progress: ProgressSink | None = None,
) -> tuple[Observation, ...]:
    check_scope(specs, inventory)
    chosen = options or EngineOptions()
    return asyncio.run(_observe_all(specs, inventory, chosen, progress))


async def _observe_all(
    specs: Sequence[ProbeSpec],
    inventory: Inventory,
    options: EngineOptions,
    progress: ProgressSink | None,
) -> tuple[Observation, ...]:
    """Probe, confirm UDP delivery at the targets, re-check silence before it fails a rule."""
    observed = await observe_confirmed(
        specs, inventory, options, progress, observe, _source(options)
    )
    if not options.recheck:
        return observed
    return await recheck_silent(specs, observed, inventory, options, observe)


async def observe(
    specs: Sequence[ProbeSpec],
    inventory: Inventory,
    options: EngineOptions,
    progress: ProgressSink | None = None,
) -> tuple[Observation, ...]:
    """The asynchronous core of run_specs (the caller has checked the scope)."""
    groups: dict[str, list[ProbeSpec]] = {}
    for spec in specs:
        if spec.vantage is not None:
            groups.setdefault(spec.vantage, []).append(spec)
    budgets = vantage_budgets(
        options.pps,
        options.vantage_pps,
        {name: _packets(group, options.attempts) for name, group in groups.items()},
    )
    runs = [
        _run_vantage(
            name, inventory.vantage(name), group, options, budgets[name], progress, inventory
        )
        for name, group in groups.items()
    ]
    observed: dict[str, Observation] = {}
    for batch in await asyncio.gather(*runs):
        observed.update((o.spec_id, o) for o in batch)
    # In plan order, whatever order the vantages finished in.
    return tuple(observed[s.id] for s in specs if s.id in observed)


async def _run_vantage(
    name: str,
    vantage: Vantage | None,
    specs: list[ProbeSpec],
    options: EngineOptions,
    budget: int,
    progress: ProgressSink | None,
    inventory: Inventory,
) -> list[Observation]:
    if vantage is None:
        return _errors(specs, f"vantage {name!r} is not in the inventory")
    nmap_specs: list[ProbeSpec] = []
    if options.engine is TcpEngine.NMAP:
        # Probes by hostname stay with the worker: it resolves them at the vantage.
        nmap_specs = [s for s in specs if s.kind is ProbeKind.TCP and s.resolve is None]
        handed = {s.id for s in nmap_specs}
        specs = [s for s in specs if s.id not in handed]
    jobs = []
    if nmap_specs:
        from reachproof.engine.nmap import run_nmap

        jobs.append(run_nmap(vantage, nmap_specs, options, budget, progress))
    if specs:
        jobs.append(_run_worker(vantage, specs, options, budget, progress, inventory))
    out: list[Observation] = []
    for batch in await asyncio.gather(*jobs):
        out.extend(batch)
    return out


async def _run_worker(
    vantage: Vantage,
    specs: list[ProbeSpec],
    options: EngineOptions,
    budget: int,
    progress: ProgressSink | None,
    inventory: Inventory,
) -> list[Observation]:
    try:
        worker = await Worker.start(vantage, _source(options), options.start_timeout)
    except VantageError as exc:
        return _errors(specs, str(exc))
    try:
        assert worker.hello is not None
        raw = worker.hello.raw
        syn = options.engine is TcpEngine.SYN
        degraded = None
        if syn and not raw:
            degraded = f"raw sockets not permitted at {vantage.name}: connect probes used"
        # Every request carries the vantage's whole budget: the worker paces them all from one
        # bucket. The slowest a probe can go is its share when the gate is full.
        slowest = probe_budget(budget, options.in_flight, len(specs))
        gate = asyncio.Semaphore(options.in_flight)

        async def one(spec: ProbeSpec) -> Observation:
            async with gate:
                return await _probe(worker, spec, worker_kind(spec.kind, raw, syn))

        async def _probe(worker: Worker, spec: ProbeSpec, kind: str) -> Observation:
            scope = probe_scope(spec, inventory)
            request = probe_request(
                spec, kind, options.timeout, options.attempts, budget, spec.id, scope
            )
            total = max(1, len(spec.ports))
            deadline = options.grace + expected_seconds(
                total, options.attempts, options.timeout, slowest
            )

            def moved(done: int, _total: int) -> None:
                if progress is not None:
                    progress(ProbeProgress(vantage.name, spec.id, min(done, total), total))

            try:
                idle = options.grace + options.timeout
                message = await worker.probe(request, deadline, moved, idle)
            except VantageError as exc:
                return Observation(spec.id, error=str(exc))
            finally:
                moved(total, total)
            note = degraded if spec.kind is ProbeKind.TCP else None
            return observation_from_result(spec, message, note, scope)

        return list(await asyncio.gather(*(one(s) for s in specs)))
    finally:
        await worker.close()


def _packets(specs: Sequence[ProbeSpec], attempts: int) -> int:
    """The most packets a vantage's specs may need: every port silent, every attempt sent."""
    return sum(max(1, len(s.ports)) for s in specs) * attempts


def _source(options: EngineOptions) -> str:
    if options.worker_source is not None:
        return options.worker_source
    # Imported late: the worker package is shipped as source, not needed to plan or judge.
    bundle = importlib.import_module("reachproof.worker.bundle")
    return str(bundle.worker_source())


def _errors(specs: Sequence[ProbeSpec], cause: str) -> list[Observation]:
    return [Observation(s.id, error=cause) for s in specs]
