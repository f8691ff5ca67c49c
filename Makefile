# volplane: build, run and test.
#
#   make up     build bin/volplane and run `volplane up` (data in ~/.volplane)
#   make test   install what the tests need, then run every tier of tests
#
# Tiers: unit tests (no root) with root tests on real mounts and loop
# devices beside them (`make unit`), and end-to-end tests with the real
# binary and kubectl (`make e2e`).

GO       ?= go
BIN      := bin/volplane
GOFLAGS  += -trimpath
LDFLAGS  := -s -w
# Debian packages `up` needs at run time: runc and conmon run containers,
# filesystem tools and losetup serve the CSI driver's pools and volumes.
RUN_DEBS := runc conmon btrfs-progs xfsprogs e2fsprogs util-linux mount git
# The tests need those and etcd-server, for the external-etcd tests.
DEBS     := $(RUN_DEBS) etcd-server

export GOFLAGS

.PHONY: all build up test deps run-deps vet unit e2e bench clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/volplane

up: run-deps build
	./$(BIN) up

# run-deps and deps install the Debian packages above when any is missing.
run-deps:
	@$(MAKE) --no-print-directory deps DEBS="$(RUN_DEBS)"

deps:
	@missing=""; for p in $(DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

vet:
	$(GO) vet ./...

# Unit tests, and as root the root tests beside them: real mounts, loop
# devices, btrfs pools, csi-sanity against the built-in driver. Without
# root those say why they cannot run.
unit: deps
	$(GO) test -count=1 -timeout 30m ./internal/... ./cmd/...

# End-to-end: the real binary, started and driven with kubectl.
e2e: build deps
	VOLPLANE_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 40m ./test/e2e/...

test: deps build vet unit e2e

bench: build
	./$(BIN) bench csi

clean:
	rm -rf bin
