"""Re-check before failing: a silent TCP port that would FAIL an `allow` or `reach` rule is
probed again, gently, before it is called filtered.

A full-rate sweep can lose answers when the machine or the path is saturated (socket backlogs
overflow in bursts, and a retry round is a burst too). Silence is what a `deny` rule expects,
so a deny verdict never rests on this; but for `allow` and `reach` a lost answer would be a
false FAIL. Such ports — few, on a working network — are probed once more at a low rate with
a longer timeout. An answer now stands (open, closed, …); a port still silent is filtered for
certain, and its attempts count both passes. A re-check that cannot run, or fails for some
ports, leaves the first observation of those ports as it was: it already met the two-attempt
rule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from reachproof.engine.options import EngineOptions
from reachproof.engine.progress import ProgressSink
from reachproof.inventory.model import Inventory
from reachproof.observation import Observation, PortState
from reachproof.plan import ProbeKind, ProbeSpec
from reachproof.policy.ast import Action
from reachproof.ports import PortSet

Observe = Callable[
    [Sequence[ProbeSpec], Inventory, EngineOptions, ProgressSink | None],
    Awaitable[tuple[Observation, ...]],
]
RECHECK_PPS = 2_000
RECHECK_ATTEMPTS = 2
RECHECK_MIN_TIMEOUT = 2.0


def silent_ports(spec: ProbeSpec, observation: Observation) -> PortSet:
    """The ports whose silence would fail this spec's rule, if any."""
    if spec.kind is not ProbeKind.TCP or spec.expect.action is Action.DENY:
        return PortSet()
    if observation.error is not None:
        return PortSet()
    silent = PortSet()
    for result in observation.results:
        if result.state is PortState.FILTERED:
            silent = silent.union(result.ports)
    return silent


def merge(first: Observation, again: Observation, rechecked: PortSet) -> Observation:
    """The first observation with the re-checked ports replaced by what the re-check saw (pure)."""
    if again.error is not None:
        return first
    before = max((r.attempts for r in first.results if r.state is PortState.FILTERED), default=0)
    kept = []
    for result in first.results:
        rest = result.ports.difference(rechecked)
        if rest:
            kept.append(replace(result, ports=rest))
    for result in again.results:
        ports = result.ports.intersection(rechecked)
        if not ports:
            continue
        if result.state is PortState.ERROR:
            # A re-check that failed for these ports proves nothing: the first pass stands.
            kept.extend(
                replace(r, ports=hit) for r in first.results if (hit := r.ports.intersection(ports))
            )
            continue
        if result.state is PortState.FILTERED:
            kept.append(replace(result, ports=ports, attempts=before + result.attempts))
        else:
            kept.append(replace(result, ports=ports))
    detail = (*first.detail, ("rechecked", str(rechecked)))
    return replace(first, results=tuple(kept), detail=detail)


async def recheck_silent(
    specs: Sequence[ProbeSpec],
    observations: tuple[Observation, ...],
    inventory: Inventory,
    options: EngineOptions,
    observe: Observe,
) -> tuple[Observation, ...]:
    by_id = {o.spec_id: o for o in observations}
    retry: list[ProbeSpec] = []
    for spec in specs:
        observation = by_id.get(spec.id)
        if observation is None:
            continue
        ports = silent_ports(spec, observation)
        if ports:
            retry.append(replace(spec, ports=ports))
    if not retry:
        return observations
    gentle = replace(
        options,
        pps=min(options.pps, RECHECK_PPS),
        vantage_pps=min(options.vantage_pps, RECHECK_PPS),
        attempts=RECHECK_ATTEMPTS,
        timeout=max(options.timeout * 2, RECHECK_MIN_TIMEOUT),
    )
    again = {o.spec_id: o for o in await observe(retry, inventory, gentle, None)}
    for spec in retry:
        if spec.id in again:
            by_id[spec.id] = merge(by_id[spec.id], again[spec.id], spec.ports)
    return tuple(by_id[o.spec_id] for o in observations)
