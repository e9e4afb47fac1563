# mcp-gate build, test and demo entry points. `make help` lists them.
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# make test fuzzes for a fixed number of executions: Go's time-limited
# fuzzing can fail with "context deadline exceeded" and no input
# (golang/go#75804). Time-based fuzzing is `make fuzz`.
FUZZEXECS ?= 50000x
FUZZTIME  ?= 1m

.PHONY: help build test vet race fuzz fuzz-short bench lint demo clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

# On Linux the commands are built static (no cgo): the token cache uses the
# kernel keyring from Go, and a gate that maps no libc is about 4 MiB
# smaller resident (docs/BENCHMARKS.md). macOS keeps cgo for its keychain.
STATIC := $(if $(filter Linux,$(shell uname -s)),CGO_ENABLED=0)

build: ## build every command into bin/
	$(STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch node_modules

test: node_modules vet race fuzz-short ## every test: vet, unit and end-to-end tests under -race, each fuzz target for a fixed number of inputs

vet:
	$(GO) vet ./...

# The end-to-end package runs real processes under -race; on a loaded
# 2-core machine it can pass go test's default 10m limit without hanging.
race:
	$(GO) test -race -count=1 -timeout 30m ./...

# Each fuzz target runs alone: go test -fuzz takes one target at a time.
FUZZ_TARGETS := ./internal/policy:FuzzParse ./internal/policy:FuzzDecide ./internal/policy:FuzzReadings ./internal/callargs:FuzzParse ./internal/audit:FuzzAppendRecord
define run-fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name for $(1)"; \
		$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(1) $$pkg; \
	done
endef

fuzz-short:
	$(call run-fuzz,$(FUZZEXECS))

fuzz: ## fuzz each target for FUZZTIME (default 1m)
	$(call run-fuzz,$(FUZZTIME))

bench: build node_modules ## benchmarks: Decide, the grant cache, and the proxy harness (gate and a plain mcp-go pass-through vs direct, against the targets)
	$(GO) test -run='^$$' -bench=. -benchmem ./internal/...
	$(BIN)/mcp-gate-bench -bin $(BIN)

demo: build ## the whole flow end to end against the local PIM emulator: no Azure tenant needed
	$(BIN)/mcp-gate-demo -bin $(BIN)

lint: vet ## go vet, staticcheck and gofmt
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

clean:
	rm -rf $(BIN)
