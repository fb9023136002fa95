#!/usr/bin/env bash
# `make demo`: the reference lab up, what reachproof would check on it, the lab down.
# Needs root (network namespaces); without it, shows the plan for the example inventory.
set -euo pipefail
cd "$(dirname "$0")/.."
rp=.venv/bin/reachproof
policy=policies/backend-ai.policy

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  step "not root: the lab needs network namespaces; showing the plan for examples/lab-small.yaml"
  exec "$rp" plan --policy "$policy" --inventory examples/lab-small.yaml
fi

# Whatever happens below, the lab comes down.
trap '"$rp" lab down >/dev/null 2>&1 || true' EXIT INT TERM

step "policy: $policy"
"$rp" policy lint "$policy"

step "lab up: a Backend.AI deployment in network namespaces (3 agents, 3 sessions, 8 containers)"
"$rp" lab down >/dev/null 2>&1 || true
"$rp" lab up
"$rp" lab status

step "the plan: what reachproof probes, rule by rule, over IPv4 and IPv6"
"$rp" plan --policy "$policy" --inventory .reachproof/lab/inventory.yaml

step "named faults the lab can apply (each breaks one documented property)"
"$rp" lab faults

step "lab down"
"$rp" lab down
trap - EXIT INT TERM
echo "done: nothing of the lab is left (ip netns list is empty)."
