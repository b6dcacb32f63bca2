# authd — see README.md. Every target runs on a fresh Debian machine with Go.
GO       ?= go
PKGS     := ./...
FUZZTIME ?= 10s
FUZZMINIMIZE ?= 50x

# Go 1.27.3 rather than the 1.26.8 Debian machines here start with: the
# standard library fixes govulncheck reports for 1.26.8 (net/http,
# crypto/tls, crypto/x509, html/template) are in it. The go command fetches
# this toolchain from the module proxy once (about 76 MB); go.mod still
# accepts 1.26, so a plain `go build` works without it.
export GOTOOLCHAIN := go1.27.3

# Lint tools, pinned, installed into bin/tools by `make tools`. govulncheck
# reads the Go vulnerability database built from the pinned golang.org/x/vulndb
# module (the proxy serves it; vuln.go.dev itself may be unreachable), so a
# lint run gives the same answer until the pin moves.
TOOLS               := $(CURDIR)/bin/tools
STATICCHECK_VERSION := v0.8.2
GOVULNCHECK_VERSION := v1.9.0
VULNDB_VERSION      := v0.0.0-20261105234957-e22db6528018
VULNDB              := $(HOME)/.cache/authd/vulndb-$(VULNDB_VERSION)

# make proto / make verify: the generated gRPC code of api/proto.
include api/proto/Makefile.inc

.PHONY: all build build-pam run test test-pam test-short lint tools fuzz clean

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
	$(GO) test -race -shuffle=on -count=1 -timeout 20m $(PKGS)
	@# The race detector changes allocation: the cache's memory accounting and
	@# the limiter's memory bound are measured without it (≈12 s and ≈8 s).
	$(GO) test -count=1 -run '^TestMemoryPerEntry$$' ./cache
	$(GO) test -count=1 -run '^TestMemoryBound$$' ./internal/limiter

# The PAM variant's tests (root: they create a user and /etc/pam.d files).
test-pam:
	CGO_ENABLED=1 $(GO) test -race -shuffle=on -count=1 -timeout 20m -tags pam ./backends/pam/ ./backends/shadow/... ./cmd/...

test-short:
	$(GO) test -short -count=1 $(PKGS)

lint: verify tools
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	CGO_ENABLED=1 $(GO) vet -tags pam $(PKGS)
	$(TOOLS)/staticcheck $(PKGS)
	CGO_ENABLED=1 $(TOOLS)/staticcheck -tags pam $(PKGS)
	$(TOOLS)/govulncheck -db file://$(VULNDB) $(PKGS)

tools: $(TOOLS)/staticcheck $(TOOLS)/govulncheck $(VULNDB)/index/db.json

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(TOOLS)/govulncheck:
	GOBIN=$(TOOLS) $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

# The database is the module's data/osv, indexed by its own cmd/indexdb
# (about a minute, kept in ~/.cache between runs).
$(VULNDB)/index/db.json:
	rm -rf $(VULNDB).tmp
	$(GO) mod download golang.org/x/vulndb@$(VULNDB_VERSION)
	$(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) \
	  -vulns $$($(GO) env GOMODCACHE)/golang.org/x/vulndb@$(VULNDB_VERSION)/data/osv -out $(VULNDB).tmp
	rm -rf $(VULNDB) && mv $(VULNDB).tmp $(VULNDB)

# Every fuzz target of every package for FUZZTIME each, one after the
# other (scripts/fuzz.sh, docs/testing.md §6.1); CI runs it after the
# tests. 31 targets at 10 s took 9 minutes on 2 cores shared with other
# test suites, cold build cache included (docs/testing.md §6.1). A crasher
# fails the run once every target has had its turn.
fuzz:
	GO='$(GO)' FUZZTIME='$(FUZZTIME)' FUZZMINIMIZE='$(FUZZMINIMIZE)' PKGS='$(PKGS)' scripts/fuzz.sh

.PHONY: bench build-bench bench-compare bench-attack
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

# The brute-force defence only: authd with it against authd without it, on
# logins and under an attack from 1000 addresses (docs/performance.md).
# Needs no Dovecot; ≈2 minutes.
bench-attack: build build-bench
	bin/authd-bench compare -authd bin/authd -data bin/bench-data -scenarios 'pf-plain-penalty,pf-plain-attack*' -json bin/bench-attack.json $(BENCHFLAGS)

clean:
	rm -rf bin run
