# authd — see README.md. Every target runs on a fresh Debian machine with Go.
GO       ?= go
PKGS     := ./...
FUZZTIME ?= 10s
FUZZMINIMIZE ?= 50x

# make proto / make verify: the generated gRPC code of api/proto.
include api/proto/Makefile.inc

.PHONY: all build build-pam run test test-pam test-short lint fuzz clean

all: lint build test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/authd ./cmd/authd

# authd with the PAM passdb: cgo and libpam (Debian libpam0g-dev); the
# default build stays pure Go.
build-pam:
	CGO_ENABLED=1 $(GO) build -trimpath -tags pam -o bin/authd ./cmd/authd

# Starts authd on its built-in demo configuration (sockets under ./run).
run:
	CGO_ENABLED=0 $(GO) run ./cmd/authd

# The whole suite with the race detector. Tests against real servers skip
# when a server is not installed, unless AUTHD_REQUIRE_INTEGRATION=1.
test:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	@# The race detector changes allocation: the cache's memory accounting is
	@# measured without it (≈12 s).
	$(GO) test -count=1 -run '^TestMemoryPerEntry$$' ./cache

# The PAM variant's tests (root: they create a user and /etc/pam.d files).
test-pam:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m -tags pam ./backends/pam/ ./backends/shadow/... ./cmd/...

test-short:
	$(GO) test -short -count=1 $(PKGS)

lint: verify
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	CGO_ENABLED=1 $(GO) vet -tags pam $(PKGS)

# Every fuzz target of every package for FUZZTIME each, one after the
# other (scripts/fuzz.sh, docs/testing.md §6.1); CI runs it after the
# tests. 31 targets at 10 s took 9 minutes on 2 cores shared with other
# test suites, cold build cache included (docs/testing.md §6.1). A crasher
# fails the run once every target has had its turn.
fuzz:
	GO='$(GO)' FUZZTIME='$(FUZZTIME)' FUZZMINIMIZE='$(FUZZMINIMIZE)' PKGS='$(PKGS)' scripts/fuzz.sh

.PHONY: bench build-bench bench-compare
# Go micro-benchmarks of the hot path, with allocations (docs/performance.md).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/dovecot ./internal/engine

# The load generator and comparison harness: tooling, not product. Its
# packages live in cmd/authd-bench/internal (load, grpcload, compare).
build-bench:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/authd-bench ./cmd/authd-bench

# authd next to a private Dovecot 2.3, same data and load (docs/performance.md).
# Needs root and dovecot-core, dovecot-mysql, dovecot-ldap, mariadb-server, slapd.
# BENCHFLAGS=-quick: about a minute; the full run takes about 8 minutes.
BENCHFLAGS ?=
bench-compare: build build-bench
	bin/authd-bench compare -authd bin/authd -data bin/bench-data -json bin/bench-compare.json $(BENCHFLAGS)

clean:
	rm -rf bin run
