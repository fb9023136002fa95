# The two commands of the README: `make demo` and `make test`. Both set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
APT_PACKAGES := nftables nmap iproute2 openssh-server postgresql redis-server etcd-server docker.io mmdebstrap

.PHONY: test demo lint typecheck unit system-deps venv clean

# Debian packages the lab and the cross-checks need; installed only when missing, only as root.
system-deps:
	@missing=""; for c in nft:nftables nmap:nmap ip:iproute2 sshd:openssh-server ssh:openssh-client \
	  pg_ctlcluster:postgresql redis-server:redis-server etcd:etcd-server \
	  dockerd:docker.io mmdebstrap:mmdebstrap; do \
	  { command -v $${c%%:*} || [ -x /usr/sbin/$${c%%:*} ]; } >/dev/null 2>&1 || missing="$$missing $${c##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing:$$missing (install them, or run as root on Debian)"; fi; \
	fi

$(BIN)/reachproof: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

venv: $(BIN)/reachproof

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q

test: system-deps venv lint typecheck unit

demo: system-deps venv
	bash scripts/demo.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
