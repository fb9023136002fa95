"""What the commands do, without the command line: load, compile, judge, report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reachproof.inventory.load import load_inventory
from reachproof.inventory.model import Inventory
from reachproof.observation import Observation
from reachproof.plan import Plan
from reachproof.policy.ast import Policy
from reachproof.policy.compile import compile_plan
from reachproof.policy.parse import load_policy
from reachproof.report.model import InputFile, Report
from reachproof.verdict import judge_plan


@dataclass(frozen=True)
class Prepared:
    policy: Policy
    inventory: Inventory
    plan: Plan


def prepare(policy_path: Path, inventory_path: Path) -> Prepared:
    """Load both files and compile the plan; raises PolicyError / InventoryError on bad input."""
    policy = load_policy(policy_path)
    inventory = load_inventory(inventory_path)
    return Prepared(policy, inventory, compile_plan(policy, inventory))


def build_report(
    prepared: Prepared,
    observations: Iterable[Observation],
    started: datetime,
    finished: datetime,
) -> Report:
    observed = tuple(observations)
    return Report(
        policy_name=prepared.policy.name,
        policy=InputFile.of(prepared.policy.path),
        inventory=InputFile(prepared.inventory.path, prepared.inventory.sha256),
        started=started,
        finished=finished,
        rules=judge_plan(prepared.plan, observed),
        observations=observed,
    )
