"""Time `check` of the default lab end to end, full-range deny sweeps included.

    sudo .venv/bin/python bench/check_default_lab.py [--runs 1] [--prefix rpchk]

Builds the lab of `reachproof lab up` (3 agents; single-node:3, multi-node:4, single-node:1),
runs the shipped policy against it, and reports probes, wall time, probes per second and the
verdicts. Target (issue 9) on this 2-core machine: ≤ 20 s. Exits 1 when a rule does not PASS on the
clean lab (a benchmark of a wrong answer is worthless), 2 when the lab cannot be built.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from reachproof.api import prepare, run_check
from reachproof.errors import PrerequisiteError, ReachproofError
from reachproof.lab.build import build_lab
from reachproof.lab.state import teardown
from reachproof.lab.topology import LabOptions

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "backend-ai.policy"
TARGET_SECONDS = 20.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--prefix", default="rpchk")
    args = parser.parse_args()
    console = Console()
    options = LabOptions.create(prefix=args.prefix)
    rows: list[tuple[int, int, float, str]] = []
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        try:
            handle = build_lab(options, Path(tmp) / "inventory.yaml")
        except PrerequisiteError as exc:
            console.print(f"cannot build the lab: {exc}")
            return 2
        try:
            prepared = prepare(POLICY, handle.inventory_path)
            for run in range(args.runs):
                start = time.perf_counter()
                report = run_check(prepared)
                wall = time.perf_counter() - start
                counts = Counter(str(r.verdict) for r in report.rules)
                verdicts = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
                rows.append((run + 1, report.probes, wall, verdicts))
                failed = failed or counts.get("PASS", 0) != len(report.rules)
        except ReachproofError as exc:
            console.print(f"check failed: {exc}")
            return 1
        finally:
            teardown(args.prefix)
    table = Table(title="reachproof check, default lab, policies/backend-ai.policy")
    for column in ("run", "probes", "wall s", "probes/s", "verdicts"):
        table.add_column(column, justify="right" if column != "verdicts" else "left")
    for run, probes, wall, verdicts in rows:
        table.add_row(str(run), f"{probes:,}", f"{wall:.1f}", f"{probes / wall:,.0f}", verdicts)
    console.print(table)
    best = min(wall for _, _, wall, _ in rows)
    verdict = "meets" if best <= TARGET_SECONDS else "misses"
    console.print(f"best {best:.1f} s: {verdict} the ≤ {TARGET_SECONDS:.0f} s target")
    if failed:
        console.print("[red]not every rule passed on the clean lab[/]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
