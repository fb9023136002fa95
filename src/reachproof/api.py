"""What the commands do, without the command line: load, compile, judge, report."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from reachproof.errors import UsageError
from reachproof.inventory.load import load_inventory
from reachproof.inventory.model import Inventory
from reachproof.observation import Observation
from reachproof.plan import Plan
from reachproof.policy.ast import Policy
from reachproof.policy.compile import compile_plan
from reachproof.policy.parse import load_policy
from reachproof.report.model import InputFile, Report
from reachproof.verdict import judge_plan

if TYPE_CHECKING:  # the engine is imported only when something is probed
    from reachproof.engine.options import EngineOptions
    from reachproof.engine.progress import ProgressSink


@dataclass(frozen=True)
class Prepared:
    policy: Policy
    inventory: Inventory
    plan: Plan


def prepare(policy_path: Path, inventory_path: Path, rules: Sequence[str] = ()) -> Prepared:
    """Load both files and compile the plan (only `rules`, when given).

    Raises PolicyError / InventoryError on bad input, UsageError for an unknown rule id.
    """
    policy = select_rules(load_policy(policy_path), rules)
    inventory = load_inventory(inventory_path)
    return Prepared(policy, inventory, compile_plan(policy, inventory))


def select_rules(policy: Policy, rules: Sequence[str]) -> Policy:
    if not rules:
        return policy
    known = [r.id.text for r in policy.rules]
    unknown = [r for r in rules if r not in known]
    if unknown:
        raise UsageError(
            f"{policy.path}: no rule {', '.join(map(repr, unknown))} (rules: {', '.join(known)})"
        )
    return replace(policy, rules=tuple(r for r in policy.rules if r.id.text in rules))


def run_check(
    prepared: Prepared,
    options: EngineOptions | None = None,
    progress: ProgressSink | None = None,
) -> Report:
    """Probe the plan at its vantage points and judge every rule."""
    from reachproof.engine.engine import run_plan

    started = datetime.now(UTC)
    observations = run_plan(prepared.plan, prepared.inventory, options, progress)
    return build_report(prepared, observations, started, datetime.now(UTC))


def build_report(
    prepared: Prepared,
    observations: Iterable[Observation],
    started: datetime,
    finished: datetime,
) -> Report:
    from reachproof.report.matrix import host_zones

    observed = tuple(observations)
    zones = host_zones(prepared.inventory, prepared.policy)
    return Report(
        policy_name=prepared.policy.name,
        policy=InputFile.of(prepared.policy.path),
        inventory=InputFile(prepared.inventory.path, prepared.inventory.sha256),
        started=started,
        finished=finished,
        rules=judge_plan(prepared.plan, observed),
        observations=observed,
        zone_order=zones.zones,
        host_zones=tuple(sorted(zones.host_zone.items())),
    )
