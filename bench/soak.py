"""Soak: the clean-lab check again and again while a CPU hog keeps the other core busy.

    sudo .venv/bin/python bench/soak.py [--runs 20] [--prefix rpsoak] [--hog-cpu N]

Builds the default lab (`reachproof lab up`), starts one busy-looping process pinned to one
CPU (the last one unless --hog-cpu says otherwise), runs the shipped policy against the lab
--runs times in a row, and reports how many runs gave the same verdict for every rule as the
most common outcome, and every rule that was not PASS, with its reason down to the evidence.
Target: every run identical (and all PASS: the lab is clean). The hog ends with the soak, and
on its own when its parent dies or after --max-seconds; the lab is always torn down.

Exit 0 when every run was identical and all PASS, 1 otherwise, 2 when the lab cannot be built.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from reachproof.api import prepare, run_check
from reachproof.errors import LabError, PrerequisiteError, ReachproofError
from reachproof.lab.build import build_lab
from reachproof.lab.state import teardown
from reachproof.lab.topology import LabOptions
from reachproof.report.model import Report
from reachproof.verdict import Verdict

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "backend-ai.policy"
MAX_RUNS = 200

# A busy loop that gives up by itself: when the soak that started it is gone (re-parented)
# or the time bound passes, so a killed soak never leaves a core spinning.
HOG = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
parent, deadline = os.getppid(), time.monotonic() + float(sys.argv[2])
n = 0
while True:
    n += 1
    if n % 2_000_000 == 0 and (os.getppid() != parent or time.monotonic() > deadline):
        break
"""

Outcome = tuple[tuple[str, str], ...]  # (rule id, verdict) for every rule, in policy order


def start_hog(cpu: int, seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", HOG, str(cpu), f"{seconds:.0f}"])


def stop_hog(hog: subprocess.Popen[bytes]) -> None:
    hog.terminate()
    try:
        hog.wait(5)
    except subprocess.TimeoutExpired:
        hog.kill()
        hog.wait()


def tear_down(prefix: str) -> bool:
    """Remove the lab; a failure is reported (with what is left), not raised over the figures."""
    try:
        teardown(prefix)
    except (OSError, ReachproofError) as exc:
        print(f"lab teardown failed, `reachproof lab down --prefix {prefix}` is needed: {exc}")
        return False
    return True


def outcome(report: Report) -> Outcome:
    return tuple((r.rule_id, str(r.verdict)) for r in report.rules)


def not_passing(report: Report) -> list[str]:
    """Every rule that did not PASS, with the hop and evidence notes that made it so."""
    lines: list[str] = []
    for rule in report.rules:
        if rule.verdict is Verdict.PASS:
            continue
        lines.append(f"{rule.rule_id} {rule.verdict}: {rule.reason}")
        for hop in rule.hops:
            if hop.verdict is Verdict.PASS:
                continue
            lines.append(f"    hop {hop.label}: {hop.verdict}: {hop.reason}")
            for item in hop.evidence:
                if item.verdict is not Verdict.PASS:
                    where = f"{item.source} -> {item.address or item.target} {item.ports}"
                    lines.append(
                        f"        {where}: {item.state} ({item.reason}, "
                        f"{item.attempts} attempt(s)) {item.note}"
                    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help=f"checks in a row (1-{MAX_RUNS})")
    parser.add_argument("--prefix", default="rpsoak")
    parser.add_argument("--hog-cpu", type=int, default=None, help="CPU the hog spins on")
    parser.add_argument("--max-seconds", type=float, default=4 * 3600.0, help="soak time bound")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the hog is stopped and the lab torn down.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    if not 1 <= args.runs <= MAX_RUNS:
        parser.error(f"--runs must be between 1 and {MAX_RUNS}")
    cpus = sorted(os.sched_getaffinity(0))
    hog_cpu = cpus[-1] if args.hog_cpu is None else args.hog_cpu
    if hog_cpu not in cpus:
        parser.error(f"--hog-cpu {hog_cpu} is not one of this process's CPUs {cpus}")
    outcomes: list[Outcome] = []
    walls: list[float] = []
    problems: list[tuple[int, list[str]]] = []
    deadline = time.monotonic() + args.max_seconds
    with tempfile.TemporaryDirectory() as tmp:
        try:
            handle = build_lab(LabOptions.create(prefix=args.prefix), Path(tmp) / "inventory.yaml")
        except (PrerequisiteError, LabError) as exc:  # e.g. a lab of that prefix is up
            print(f"cannot build the lab: {exc}")
            return 2
        hog = start_hog(hog_cpu, args.max_seconds + 60)
        try:
            prepared = prepare(POLICY, handle.inventory_path)
            for run in range(1, args.runs + 1):
                if time.monotonic() > deadline:
                    print(f"time bound of {args.max_seconds:.0f} s reached after {run - 1} runs")
                    break
                start = time.perf_counter()
                report = run_check(prepared)
                walls.append(time.perf_counter() - start)
                outcomes.append(outcome(report))
                notes = not_passing(report)
                if notes:
                    problems.append((run, notes))
                counts = Counter(v for _, v in outcomes[-1])
                summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
                print(f"run {run}/{args.runs}: {walls[-1]:.1f} s, {summary}", flush=True)
                for line in notes:  # as it happens: a soak cut short still told why
                    print(f"  {line}", flush=True)
        except ReachproofError as exc:
            print(f"check failed: {exc}")
            return 1
        finally:
            stop_hog(hog)
            torn_down = tear_down(args.prefix)
    if not outcomes:
        return 1
    common, same = Counter(outcomes).most_common(1)[0]
    all_pass = all(v == str(Verdict.PASS) for _, v in common)
    print(
        f"\n{same}/{len(outcomes)} runs identical (most common: "
        f"{'all PASS' if all_pass else 'not all PASS'}); hog on CPU {hog_cpu}; "
        f"wall min/median/max {min(walls):.1f}/{sorted(walls)[len(walls) // 2]:.1f}/"
        f"{max(walls):.1f} s"
    )
    for run, notes in problems:
        print(f"\nrun {run}:")
        for line in notes:
            print(f"  {line}")
    return 0 if same == len(outcomes) and all_pass and torn_down else 1


if __name__ == "__main__":
    sys.exit(main())
