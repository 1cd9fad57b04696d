# Container Codes. `make dev` runs a single-node cluster; `make test` runs every test.
SHELL := /bin/bash
GO    ?= go
MODULE := github.com/containercodes/cc
TOOLS := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(PATH)

# Code generators, pinned. `make tools` installs them from the Go module proxy.
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPC_GATEWAY_VERSION       := v2.33.0
BUF_VERSION                := v1.75.0

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X $(MODULE)/internal/buildinfo.Version=$(VERSION)

.PHONY: all build ui ui-dev ui-test ui-e2e-jobs dev test test-short check-monitoring prereqs tools proto proto-check proto-baseline bench bench-scale bench-jobs chaos clean release cross-check

all: build

# build builds the programs; first the dashboard (make ui) when npm is
# here. Without npm, cc-controlplane still builds and serves, at /ui/, a
# page that says how to build the dashboard.
build:
	@if [ ! -f frontend/package.json ]; then \
		echo "build: no frontend/ here, so the dashboard is not built (cc-controlplane serves a page saying so at /ui/)"; \
	elif command -v $(NPM) >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory ui; \
	else \
		echo "build: npm is missing, so the dashboard is not built (cc-controlplane serves a page saying how at /ui/); install Node.js 20+ and npm, then make ui"; \
	fi
	@mkdir -p bin
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/cc-controlplane ./controlplane/cmd/cc-controlplane
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ccctl ./ctl/cmd/ccctl
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o bin/cc-agent ./agent/cmd/cc-agent
	$(GO) build -o bin/cc-mkimage ./internal/testing/testimage/mkimage

NPM ?= npm
UI_DIST := controlplane/ui/dist

# ui builds the dashboard (frontend/, React and Vite) into $(UI_DIST),
# which cc-controlplane embeds, then writes the .gz and .br variants the
# server sends. npm ci runs when frontend/node_modules is missing or older
# than package-lock.json.
ui:
	@command -v $(NPM) >/dev/null 2>&1 || { echo "ui: npm is missing: install Node.js 20+ and npm (make prereqs checks them)"; exit 1; }
	@if [ ! -d frontend/node_modules ] || [ frontend/package-lock.json -nt frontend/node_modules ]; then \
		echo "ui: npm ci (frontend/node_modules is missing or older than package-lock.json)"; \
		(cd frontend && $(NPM) ci --no-audit --no-fund) && touch frontend/node_modules || exit 1; \
	fi
	cd frontend && $(NPM) run build
	$(GO) run ./controlplane/ui/cmd/precompress $(UI_DIST)

# ui-dev runs Vite's dev server with hot reload for frontend/, its calls
# proxied to a running cluster: CC_API (default https://127.0.0.1:7443,
# the API of `make dev`). Sign in with the token in .dev/data/admin.token.
ui-dev:
	@command -v $(NPM) >/dev/null 2>&1 || { echo "ui-dev: npm is missing: install Node.js 20+ and npm"; exit 1; }
	@[ -d frontend/node_modules ] && [ ! frontend/package-lock.json -nt frontend/node_modules ] || { (cd frontend && $(NPM) ci --no-audit --no-fund) && touch frontend/node_modules; }
	@echo "ui-dev: proxying /v1 to $${CC_API:-https://127.0.0.1:7443} (run make dev in another shell); admin token: .dev/data/admin.token"
	cd frontend && CC_API=$${CC_API:-https://127.0.0.1:7443} $(NPM) run dev

# ui-test builds the dashboard (the end-to-end tests in
# internal/testing/e2e/ui drive the embedded build in headless Chromium)
# and runs its unit tests (Vitest) after a clean npm ci.
ui-test:
	@command -v $(NPM) >/dev/null 2>&1 || { echo "ui-test: npm is missing: run make prereqs, or install Node.js 20+ and npm"; exit 1; }
	cd frontend && $(NPM) ci --no-audit --no-fund && touch node_modules
	$(MAKE) --no-print-directory ui
	cd frontend && $(NPM) test

# prereqs installs the Debian packages the cluster needs (idempotent).
prereqs:
	@bash scripts/prereqs.sh

# dev builds and runs a single-node control plane in the foreground, with its data
# in .dev/ (git-ignored), and writes ccctl's credentials.
dev: prereqs build
	@bash scripts/dev.sh

# test checks that the generated code is current, that the monitoring kit
# holds together and that ccctl builds for every release target, builds the
# dashboard and runs its unit tests (ui-test), then runs every Go test with
# the race detector (the dashboard's end-to-end tests in headless Chromium
# among them).
test: prereqs proto-check check-monitoring cross-check ui-test
	$(GO) test -race -count=1 -timeout 20m ./...
	@$(MAKE) --no-print-directory ui-e2e-jobs

# ui-e2e-jobs queues CC_UI_JOBS jobs (100,000 by default) in an in-process
# cluster and prints how long the dashboard's jobs page takes to show its
# first rows in headless chromium (a figure, not a check), without the
# race detector. Screenshots and figures: test-artifacts/ui/ (or
# $$CC_ARTIFACTS/ui/), results.txt among them.
ui-e2e-jobs:
	@set -o pipefail; CC_UI_JOBS=$${CC_UI_JOBS:-100000} $(GO) test -count=1 -v -timeout 30m -run 'TestJobsListFirstRows$$' ./internal/testing/e2e/ui/ \
		| grep -v -E '^[[:space:]]+handler\.go:[0-9]+:|^=== '

# check-monitoring checks docs/monitoring/ with promtool (Debian's
# prometheus package; `make prereqs` installs it): the alert rules and
# their unit tests, the scrape configuration's syntax, and that the
# dashboard is JSON whose queries use documented series and parse.
check-monitoring:
	@command -v promtool >/dev/null || { echo "check-monitoring: promtool is missing: run 'make prereqs' (Debian package prometheus)"; exit 1; }
	promtool check rules docs/monitoring/alerts.yml
	cd docs/monitoring && promtool test rules alerts_test.yml
	promtool check config --syntax-only docs/monitoring/prometheus.yml
	$(GO) test -count=1 -run TestMonitoringKit ./internal/layout/

# The platforms ccctl is released for (make release); make test compiles
# it for each. The servers' programs run on Linux only.
RELEASE_TARGETS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
SERVER_TARGETS  := linux/amd64 linux/arm64

# cross-check compiles ccctl for every release target, without keeping it.
cross-check:
	@for t in $(RELEASE_TARGETS); do \
		CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build -o /dev/null ./ctl/cmd/ccctl || \
			{ echo "cross-check: ccctl does not build for $$t (a file may need a build tag)"; exit 1; }; \
	done
	@echo "cross-check: ccctl builds for $(RELEASE_TARGETS)"

# release builds ccctl for every release target, and cc-controlplane and
# cc-agent for Linux, into dist/ with their SHA-256 sums.
release:
	@rm -rf dist && mkdir -p dist
	@for t in $(RELEASE_TARGETS); do \
		os=$${t%/*}; arch=$${t#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/ccctl-$$os-$$arch$$ext ./ctl/cmd/ccctl || exit 1; \
	done
	@for t in $(SERVER_TARGETS); do \
		os=$${t%/*}; arch=$${t#*/}; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/cc-controlplane-$$os-$$arch ./controlplane/cmd/cc-controlplane || exit 1; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/cc-agent-$$os-$$arch ./agent/cmd/cc-agent || exit 1; \
	done
	@cd dist && sha256sum * > SHA256SUMS && cat SHA256SUMS

test-short:
	$(GO) test -short -count=1 ./...

bench: build
	@bash bench/api-write.sh

# bench-scale: 3 servers and simulated nodes (NODES=5000 TASKS=100000 by default).
bench-scale:
	@bash bench/scale.sh $(or $(NODES),5000) $(or $(TASKS),100000)

# bench-jobs: job submit throughput, listing with a backlog, dispatch latency
# on one real agent beside ctr (N_BACKLOG=100000 by default; needs root).
bench-jobs:
	@bash bench/jobs.sh $(or $(N_BACKLOG),100000)

# chaos runs the linearizability check under faults for two minutes.
chaos:
	@bash bench/chaos.sh

$(TOOLS)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@touch $@

$(TOOLS)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	@touch $@

$(TOOLS)/.grpc-gateway-$(GRPC_GATEWAY_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install \
		github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION) \
		github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)
	@touch $@

$(TOOLS)/.buf-$(BUF_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	@touch $@

tools: $(TOOLS)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION) \
       $(TOOLS)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION) \
       $(TOOLS)/.grpc-gateway-$(GRPC_GATEWAY_VERSION) \
       $(TOOLS)/.buf-$(BUF_VERSION)

# proto regenerates the Go code and the OpenAPI document from proto/.
proto: tools
	buf format -w
	buf lint
	rm -f proto/cc/*/*.pb.go proto/cc/*/*.pb.gw.go proto/cc/*/*/*.pb.go proto/cc/*/*/*.pb.gw.go proto/openapi/cc.swagger.json
	buf generate

# PROTO_BASELINE is a buf image of the protos as last released: proto/cc/state/v1
# is the raft log on disk and proto/cc/v1 the public API, so a change that
# breaks either against it must be deliberate (make proto-baseline).
PROTO_BASELINE := proto/baseline/cc.binpb

# proto-check fails when the generated code is stale, the protos are not
# formatted or linted, or they break compatibility with $(PROTO_BASELINE)
# (every .proto of the module: proto/cc/state/v1 and proto/cc/v1).
proto-check: tools
	buf lint
	buf format -d --exit-code
	@buf breaking --against $(PROTO_BASELINE) || { \
		echo "proto-check: the protos break compatibility with $(PROTO_BASELINE) (above)."; \
		echo "  proto/cc/state/v1 is the raft log on disk and proto/cc/v1 the public API: add fields"; \
		echo "  with new numbers and reserve removed ones instead. If the break is deliberate (and"; \
		echo "  the raft log or clients are migrated), run 'make proto-baseline' and commit"; \
		echo "  $(PROTO_BASELINE) with the change, saying why."; \
		exit 1; }
	@echo "proto-check: no breaking change against $(PROTO_BASELINE)"
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	buf generate -o $$tmp/gen >/dev/null; \
	for f in $$(cd $$tmp/gen/proto && find . -type f -printf "%P\n"); do \
		cmp -s $$tmp/gen/proto/$$f proto/$$f || { echo "proto-check: proto/$$f is stale; run 'make proto' and commit"; exit 1; }; \
	done; \
	for f in $$(find proto -type f \( -name '*.pb.go' -o -name '*.pb.gw.go' -o -name '*.swagger.json' \)); do \
		[ -f $$tmp/gen/$$f ] || { echo "proto-check: $$f is not generated by any .proto; remove it"; exit 1; }; \
	done; \
	echo "proto-check: generated code is up to date"

# proto-baseline moves the compatibility baseline to the current protos. Run
# it only for a deliberate break, or after a release, and commit the result.
proto-baseline: tools
	@mkdir -p $(dir $(PROTO_BASELINE))
	buf build --exclude-source-info -o $(PROTO_BASELINE)

clean:
	rm -rf bin

# bench-edge: the edge (in cc-agent) beside nginx and Caddy, over HTTP and HTTPS (ROUNDS=3 DURATION=10s TLS=1; TLS=0 skips HTTPS, TLS=only measures only it).
.PHONY: bench-edge
bench-edge:
	@bash bench/edge.sh
