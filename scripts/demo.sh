#!/usr/bin/env bash
# `make demo`: the reference lab up, every documented rule checked (all PASS), the lab rebuilt
# with a fault, checked again (the right rule FAILs, with evidence), the difference between the
# two reports, the lab down. Needs root (network namespaces); without it, shows the plan only.
set -euo pipefail
cd "$(dirname "$0")/.."
rp=.venv/bin/reachproof
policy=policies/backend-ai.policy
inventory=.reachproof/lab/inventory.yaml
fault=${DEMO_FAULT:-agent-rpc-exposed}
runtime=${RUNTIME:-netns}  # RUNTIME=docker: the compute zone on real Docker (docs/lab.md)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
clean=reports/demo-$stamp/clean
faulty=reports/demo-$stamp/$fault

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  step "not root: the lab needs network namespaces; showing the plan for examples/lab-small.yaml"
  exec "$rp" plan --policy "$policy" --inventory examples/lab-small.yaml
fi

# Whatever happens below, the lab comes down.
trap '"$rp" lab down >/dev/null 2>&1 || true' EXIT INT TERM

step "policy: $policy"
"$rp" policy lint "$policy"

step "lab up --runtime $runtime: a Backend.AI deployment (3 agents, 3 sessions, 8 containers)"
"$rp" lab down >/dev/null 2>&1 || true
"$rp" lab up --runtime "$runtime"
"$rp" lab status

step "check the clean lab: every documented rule, IPv4 and IPv6, full-range deny sweeps"
"$rp" check --policy "$policy" --inventory "$inventory" --output "$clean"

step "lab up again with a fault: $fault"
"$rp" lab down >/dev/null
"$rp" lab faults | grep -E "fault|$fault" || true
"$rp" lab up --runtime "$runtime" --fault "$fault"

step "check the faulty lab: the rule it breaks must FAIL, with evidence (exit 1 expected)"
status=0
"$rp" check --policy "$policy" --inventory "$inventory" --output "$faulty" || status=$?
if [ "$status" != 1 ]; then
  echo "demo: expected exit 1 (a rule FAILED), got $status" >&2
  exit 1
fi

step "what changed between the two reports (exit 1: something got worse)"
"$rp" diff "$clean/report.json" "$faulty/report.json" || true

step "lab down"
"$rp" lab down
trap - EXIT INT TERM
echo
echo "reports (terminal, JSON, JUnit, SARIF, HTML, Markdown):"
echo "  clean lab:   $clean/"
echo "  with $fault: $faulty/"
echo "open $faulty/report.html in a browser for the security-review view."
