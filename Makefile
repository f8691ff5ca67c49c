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
# Debian packages the tests use: etcd-server for external-etcd tests,
# filesystem tools and losetup for the CSI driver's pools and volumes.
DEBS     := etcd-server btrfs-progs xfsprogs e2fsprogs util-linux mount

export GOFLAGS

.PHONY: all build up test deps vet unit e2e bench clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/volplane

up: build
	./$(BIN) up

# deps installs the Debian packages above when any is missing.
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
