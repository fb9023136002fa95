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
from reachproof.report.model import InputFile, Report, WaiverReport
from reachproof.verdict import judge_plan
from reachproof.waivers.apply import Waiving, outcomes
from reachproof.waivers.load import load_waivers
from reachproof.waivers.model import WaiverFile

if TYPE_CHECKING:  # the engine is imported only when something is probed
    from reachproof.engine.options import EngineOptions
    from reachproof.engine.progress import ProgressSink


@dataclass(frozen=True)
class Prepared:
    policy: Policy
    inventory: Inventory
    plan: Plan
    waivers: WaiverFile | None = None


def prepare(
    policy_path: Path,
    inventory_path: Path,
    rules: Sequence[str] = (),
    waivers_path: Path | None = None,
    strict_advisory: bool = False,
) -> Prepared:
    """Load the files and compile the plan (only `rules`, when given).

    `strict_advisory` (or the policy's `strict advisory`) judges advisory rules like the
    others: their FAILs are not softened to WARN.

    Raises PolicyError / InventoryError / WaiverError on bad input (a waiver naming a rule the
    policy does not have is one), UsageError for an unknown rule id.
    """
    full = load_policy(policy_path)
    waivers = None
    if waivers_path is not None:
        waivers = load_waivers(waivers_path, [r.id.text for r in full.rules])
    policy = select_rules(full, rules)
    if strict_advisory or policy.strict_advisory:
        policy = replace(policy, rules=tuple(replace(r, advisory=False) for r in policy.rules))
    inventory = load_inventory(inventory_path)
    return Prepared(policy, inventory, compile_plan(policy, inventory), waivers)


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
    file = prepared.waivers
    # The run's own finish day decides expiry, so a report is a function of its inputs.
    waiving = None if file is None else Waiving(file.waivers, finished.date())
    rules = judge_plan(prepared.plan, observed, waiving)
    waiver_report = None
    if file is not None:
        waiver_report = WaiverReport(
            InputFile(file.path, file.sha256), outcomes(file.waivers, rules, finished.date())
        )
    return Report(
        policy_name=prepared.policy.name,
        policy=InputFile.of(prepared.policy.path),
        inventory=InputFile(prepared.inventory.path, prepared.inventory.sha256),
        started=started,
        finished=finished,
        rules=rules,
        observations=observed,
        zone_order=zones.zones,
        host_zones=tuple(sorted(zones.host_zone.items())),
        waivers=waiver_report,
    )
