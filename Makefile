# rangekv. `make run` starts a local cluster; `make test` is what CI runs
# (.ci/run). Everything a target needs it builds or installs itself.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO ?= go
BUILD := CGO_ENABLED=0 $(GO) build -trimpath
# Packages of the main test step: all but e2e, which `make test` runs in
# its short setting as a step of its own (its tests build the binaries).
TEST_PKGS ?= $$($(GO) list ./... | grep -v /e2e)
# The race detector is ~8x slower: run it on the core packages only.
RACE_PKGS ?= ./rangeraft/... ./store/... ./router/... ./internal/kvmux/... ./internal/clock/... ./internal/grpcnet/... ./internal/procs/...
TEST_TIMEOUT ?= 15m
E2E_TIMEOUT ?= 20m
DATA_DIR ?= ./data
CERTS_DIR ?= ./certs
# $(MAKE) through a variable: a recipe line naming $(MAKE) directly would
# run even under `make -n`, and the test recipe is one long line.
SUBMAKE = $(MAKE) --no-print-directory

.PHONY: build test e2e e2e-short run proto lint bench chaos sim clean image-context image deploy-check certs

build:
	@mkdir -p bin
	$(BUILD) -o bin/rangekv-store ./cmd/store
	$(BUILD) -o bin/rangekv ./cmd/cli
	$(BUILD) -o bin/rangekv-placement ./cmd/placement

# test runs every step even when one fails, prints a summary, and fails if
# any step failed. Its lint step includes staticcheck, which lint.sh
# installs at its pinned version into .tools/bin on first use.
test:
	@results=(); rc=0; \
	step() { \
	  local name=$$1; shift; \
	  echo; echo "=== make test: $$name"; echo "    $$*"; \
	  local t0=$$SECONDS; \
	  if "$$@"; then results+=("PASS  $$name ($$((SECONDS - t0))s)"); \
	  else results+=("FAIL  $$name ($$((SECONDS - t0))s)"); rc=1; fi; \
	}; \
	step "lint (fast)" bash scripts/lint.sh --fast; \
	step "go test" $(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(TEST_PKGS); \
	if [ "$$($(GO) env CGO_ENABLED)" != 1 ] || ! command -v "$$($(GO) env CC)" >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing gcc (go test -race needs cgo)"; \
	    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null; } \
	      || echo "could not install gcc; go test -race will fail" >&2; \
	  else \
	    echo "go test -race needs cgo and a C compiler (gcc); install one" >&2; \
	  fi; \
	fi; \
	step "go test -race" env CGO_ENABLED=1 $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(RACE_PKGS); \
	step "deploy check" $(SUBMAKE) deploy-check; \
	step "e2e (short)" $(SUBMAKE) e2e-short; \
	echo; echo "=== make test summary"; \
	printf '    %s\n' "$${results[@]}"; \
	if [ $$rc -ne 0 ]; then echo "make test: FAILED"; else echo "make test: ok"; fi; \
	exit $$rc

e2e:
	$(GO) test -count=1 -timeout $(E2E_TIMEOUT) ./e2e/...

e2e-short:
	$(GO) test -short -count=1 -timeout $(E2E_TIMEOUT) ./e2e/...

# The image's build context (deploy/docker/Dockerfile): the static binaries
# and this machine's CA bundle under bin/image; no base image is pulled.
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
image-context: build
	rm -rf bin/image
	mkdir -p bin/image/rootfs/usr/local/bin bin/image/rootfs/etc/ssl/certs bin/image/data
	cp bin/rangekv bin/rangekv-store bin/rangekv-placement bin/image/rootfs/usr/local/bin/
	cp $(CA_BUNDLE) bin/image/rootfs/etc/ssl/certs/ca-certificates.crt
	touch bin/image/data/.keep
	cp deploy/docker/Dockerfile bin/image/Dockerfile

IMAGE ?= rangekv:dev
image: image-context
	docker build -t $(IMAGE) bin/image

# Validates deploy/ (compose file, Kubernetes manifests, systemd units,
# Dockerfile, dashboard) against the binaries; its own module under
# deploy/validate keeps those dependencies out of go.mod.
deploy-check: image-context
	cd deploy/validate && RANGEKV_BIN=$(CURDIR)/bin RANGEKV_IMAGE_CONTEXT=$(CURDIR)/bin/image $(GO) test -count=1 -v ./...

# Ctrl-C reaches the playground (make waits for it to stop its stores).
run: build
	bin/rangekv playground --data-dir $(DATA_DIR)

proto:
	bash scripts/genproto.sh

# A development CA and certificates for a TLS cluster (docs/tls.md); it
# refuses to overwrite: `make certs CERTS_FLAGS=--force` to replace them.
certs: build
	bin/rangekv certs --dir $(CERTS_DIR) $(CERTS_FLAGS)

lint:
	bash scripts/lint.sh

# The benchmark suite (not part of make test): a single range against etcd,
# then the multi-Raft costs (idle 1,000/10,000 ranges; writes over 1,
# 1,000 and 10,000 ranges with store CPU and fsyncs per put; failover;
# split latency through placement).
# Set BENCH_DIR to a directory on the disk under test. SCALE=1 adds the
# 100,000-range figures (split time, idle CPU, memory per replica, a store
# restart; about 10 more minutes and 6 GiB of RAM).
bench:
	bash scripts/bench.sh
	bash scripts/bench_multiraft.sh
	if [ "$(SCALE)" = 1 ]; then BENCH_100K=1 bash scripts/bench_multiraft.sh; fi

# A longer in-process nemesis soak (not part of make test): SEEDS seeds
# from SEED_BASE, DURATION of workload each.
SEEDS ?= 200
SEED_BASE ?= 1000
DURATION ?= 6s
chaos:
	RANGEKV_NEMESIS_SEEDS=$(SEEDS) RANGEKV_NEMESIS_BASE=$(SEED_BASE) RANGEKV_NEMESIS_DURATION=$(DURATION) \
	  $(GO) test -count=1 -timeout 0 -run 'TestNemesis$$' -v ./internal/harness/nemesis/

# The deterministic simulation's soak (not part of make test, which runs
# its CI seeds twice each): SEEDS seeds from SEED_BASE, each once, in
# chunks over JOBS processes (default: the cores), resumable (a passed
# chunk is not run again), with a summary of the failing seeds and of the
# faults and operations exercised (scripts/sim_soak.sh, docs/reliability.md).
# SIM_FLAGS adds -sim.* flags, e.g. SIM_FLAGS=-sim.interleave.
JOBS ?=
SIM_FLAGS ?=
sim:
	GO=$(GO) SEEDS=$(SEEDS) SEED_BASE=$(SEED_BASE) JOBS=$(JOBS) FLAGS='$(SIM_FLAGS)' bash scripts/sim_soak.sh

clean:
	rm -rf bin data .tools
