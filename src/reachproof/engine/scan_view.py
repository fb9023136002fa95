"""`reachproof scan`: ad-hoc specs from the command line, and nmap-like output (pure).

Targets are inventory host names or literal addresses, and every address must be one the
inventory declares (the scope guard, before anything is sent). Output per address: the
ports worth seeing one by one (PORT STATE REASON TTL), and big runs of one state folded into
a line such as "65530 filtered ports (timeout)", as nmap does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from ipaddress import ip_address

from reachproof.engine.options import EngineOptions, TcpEngine
from reachproof.engine.scope import OutOfScopeError
from reachproof.errors import UsageError
from reachproof.inventory.model import Inventory, Vantage
from reachproof.observation import Observation, PortState
from reachproof.plan import Expectation, ProbeKind, ProbeSpec
from reachproof.policy.ast import Action
from reachproof.ports import PortSet

FOLD_OVER = 25  # a run of one non-open state longer than this is folded into one line


@dataclass(frozen=True)
class ScanTarget:
    name: str  # as given on the command line
    host: str | None  # the inventory host it names or whose address it is
    address: str
    family: int


def scan_vantage(inventory: Inventory, name: str) -> Vantage:
    vantage = inventory.vantage(name)
    if vantage is None:
        names = ", ".join(v.name for v in inventory.vantages) or "none"
        raise UsageError(
            f"--from {name!r}: no such vantage in {inventory.path} (vantages: {names})"
        )
    return vantage


def scan_ports(text: str) -> PortSet:
    try:
        return PortSet.parse(text.removeprefix("tcp/"))
    except ValueError as exc:
        raise UsageError(f"-p {text!r}: {exc}") from exc


def resolve_targets(inventory: Inventory, names: Sequence[str]) -> tuple[ScanTarget, ...]:
    """Every address of every TARGET; OutOfScopeError names the first one not declared."""
    if not names:
        raise UsageError("give at least one TARGET (an inventory host name or address)")
    declared = inventory.declared_addresses()
    owners = {a: h.name for h in inventory.hosts for a in h.all_addresses()}
    out: list[ScanTarget] = []
    for name in names:
        host = inventory.host(name)
        if host is not None:
            addresses = host.primary_addresses() or host.all_addresses()
            if not addresses:
                raise OutOfScopeError(f"target {name!r}: the inventory gives it no address")
            out += [ScanTarget(name, host.name, str(a), a.version) for a in addresses]
            continue
        try:
            address = ip_address(name)
        except ValueError as exc:
            raise OutOfScopeError(
                f"target {name!r} is neither a host of {inventory.path} nor an IP address"
            ) from exc
        if address not in declared:
            raise OutOfScopeError(
                f"target {name!r}: address {address} is not declared in {inventory.path}; "
                "refusing to probe it"
            )
        out.append(ScanTarget(name, owners.get(address), str(address), address.version))
    return tuple(dict.fromkeys(out))


def scan_options(
    engine: str, pps: int | None, timeout: float | None, attempts: int | None
) -> EngineOptions:
    """The engine options of a scan: the defaults but what the command line gives, and no
    re-check, which exists for rules a scan does not judge (engine/recheck.py)."""
    options = EngineOptions(engine=TcpEngine(engine), recheck=False)
    if pps is not None:
        options = replace(options, pps=pps, vantage_pps=pps)
    if timeout is not None:
        options = replace(options, timeout=timeout)
    if attempts is not None:
        options = replace(options, attempts=attempts)
    return options


def scan_specs(
    vantage: Vantage, targets: Sequence[ScanTarget], ports: PortSet
) -> tuple[ProbeSpec, ...]:
    return tuple(
        ProbeSpec(
            id=f"scan/{t.address}",
            rule_id="scan",
            statement=0,
            hop=0,
            vantage=vantage.name,
            source=vantage.name,
            target=t.host or t.address,
            address=t.address,
            family=t.family,
            kind=ProbeKind.TCP,
            ports=ports,
            expect=Expectation(Action.REACH),
        )
        for t in targets
    )


def render_table(
    vantage: str,
    engine: str,
    specs: Sequence[ProbeSpec],
    observations: Sequence[Observation],
    elapsed: float,
) -> str:
    by_id = {o.spec_id: o for o in observations}
    lines: list[str] = []
    for spec in specs:
        obs = by_id.get(spec.id)
        name = spec.target if spec.target == spec.address else f"{spec.target} ({spec.address})"
        lines.append(f"reachproof scan report for {name} from {vantage}")
        if obs is None:
            lines += ["error: not observed", ""]
            continue
        if obs.error:
            lines += [f"error: {obs.error}", ""]
            continue
        if obs.degraded:
            lines.append(f"note: {obs.degraded}")
        shown, folded = _split(obs)
        for count, state, reason in folded:
            lines.append(f"Not shown: {count} {state} ports ({reason})")
        if obs.details("unobserved"):
            lines.append(f"Not observed: {', '.join(obs.details('unobserved'))}")
        if shown:
            lines.append(f"{'PORT':<10} {'STATE':<14} {'REASON':<20} TTL")
            for port, state, reason, ttl in shown:
                lines.append(f"{f'{port}/tcp':<10} {state:<14} {reason:<20} {ttl}")
        lines.append("")
    probes = sum(len(s.ports) for s in specs)
    lines.append(
        f"{len(specs)} address(es), {probes} probes in {elapsed:.2f}s from {vantage} "
        f"(engine {engine})"
    )
    return "\n".join(lines) + "\n"


def _split(
    obs: Observation,
) -> tuple[list[tuple[int, str, str, str]], list[tuple[int, str, str]]]:
    """Ports listed one by one, and (count, state, reason) of the folded runs."""
    runs: dict[tuple[str, str], int] = {}
    for result in obs.results:
        key = (str(result.state), result.reason)
        runs[key] = runs.get(key, 0) + len(result.ports)
    fold = {k for k, n in runs.items() if n > FOLD_OVER and k[0] != PortState.OPEN}
    shown: list[tuple[int, str, str, str]] = []
    for result in obs.results:
        if (str(result.state), result.reason) in fold:
            continue
        ttl = "" if result.ttl is None else str(result.ttl)
        shown += [(p, str(result.state), result.reason, ttl) for p in result.ports]
    shown.sort()
    folded = sorted(((runs[k], *k) for k in fold), reverse=True)
    return shown, folded


def render_json(
    vantage: str,
    engine: str,
    specs: Sequence[ProbeSpec],
    observations: Sequence[Observation],
    elapsed: float,
) -> str:
    by_id = {o.spec_id: o for o in observations}
    targets = []
    for spec in specs:
        obs = by_id.get(spec.id) or Observation(spec.id, error="not observed")
        targets.append(
            {
                "target": spec.target,
                "address": spec.address,
                "family": spec.family,
                "ports": str(spec.ports),
                "error": obs.error,
                "degraded": obs.degraded,
                "unobserved": ",".join(obs.details("unobserved")) or None,
                "results": [
                    {
                        "ports": str(r.ports),
                        "count": len(r.ports),
                        "state": str(r.state),
                        "reason": r.reason,
                        "attempts": r.attempts,
                        "rtt_ms": r.rtt_ms,
                        "ttl": r.ttl,
                    }
                    for r in obs.results
                ],
            }
        )
    document = {
        "vantage": vantage,
        "engine": engine,
        "elapsed_s": round(elapsed, 3),
        "targets": targets,
    }
    return json.dumps(document, indent=2) + "\n"
