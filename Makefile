# Chronik Stream. `make run` starts a standalone broker on localhost:9092 with
# data in ./data; `make test` installs what the tests need and runs them all.

GO        ?= go
BIN       := bin
SERVER    := $(BIN)/chronik-server
CTL       := $(BIN)/chronikctl
MODULES   := proto controlplane dataplane chronikctl tests
# Packages that own concurrency run under the race detector.
RACE_PKGS := ./controlplane/... ./dataplane/...

.PHONY: all build cross run test test-deps unit e2e fuzz bench bench-quick proto checkproto lint clean

all: build

build:
	$(GO) build -o $(SERVER) ./dataplane/cmd/chronik-server
	$(GO) build -o $(CTL) ./chronikctl

# The binaries build for macOS too (a laptop's standalone broker): the
# Linux-only storage calls have fallbacks there.
cross:
	GOOS=darwin $(GO) build -o /dev/null ./dataplane/cmd/chronik-server
	GOOS=darwin $(GO) build -o /dev/null ./chronikctl

run: build
	CHRONIK_BIND_ADDR=$${CHRONIK_BIND_ADDR:-0.0.0.0} \
	CHRONIK_ADVERTISED_ADDR=$${CHRONIK_ADVERTISED_ADDR:-localhost} \
	CHRONIK_DATA_DIR=$${CHRONIK_DATA_DIR:-./data} \
	./$(SERVER) standalone

test: test-deps build cross checkproto unit e2e

test-deps:
	scripts/test-deps.sh

unit:
	$(GO) vet $(addprefix ./,$(addsuffix /...,$(MODULES)))
	$(GO) test -count=1 -race -timeout 10m $(RACE_PKGS)
	$(GO) test -count=1 -timeout 10m ./chronikctl/... ./proto/...

e2e: build
	CHRONIK_SERVER_BIN=$(CURDIR)/$(SERVER) CHRONIKCTL_BIN=$(CURDIR)/$(CTL) \
		$(GO) test -count=1 -timeout 15m -tags e2e ./tests/...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzRequest -fuzztime 30s ./dataplane/internal/kafka/
	$(GO) test -run '^$$' -fuzz FuzzBatch -fuzztime 30s ./dataplane/internal/batch/
	$(GO) test -run '^$$' -fuzz FuzzRecovery -fuzztime 30s ./dataplane/internal/storage/
	$(GO) test -run '^$$' -fuzz FuzzDecodeEntry -fuzztime 30s ./dataplane/internal/group/
	$(GO) test -run '^$$' -fuzz FuzzReadFrame -fuzztime 30s ./controlplane/raftnet/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./controlplane/config/
	$(GO) test -run '^$$' -fuzz FuzzDecodeState -fuzztime 30s ./controlplane/controller/

bench:
	scripts/bench/run.sh

bench-quick:
	scripts/bench/run.sh --quick

proto:
	scripts/proto.sh generate

checkproto:
	scripts/proto.sh check

lint:
	gofmt -l $(MODULES) | grep -v /gen/ | (! grep .)
	$(GO) vet $(addprefix ./,$(addsuffix /...,$(MODULES)))

clean:
	rm -rf $(BIN)
