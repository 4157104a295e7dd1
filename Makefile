# kubernetes-worker charm: build, pack, test, demo.
#
#   make demo   build the charm and run it in a simulated Juju unit
#   make test   every test (unit tests, simulated-unit suite, lint)
#   make charm  build/kubernetes-worker.charm

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

CARGO ?= cargo
ARCH := $(shell uname -m | sed -e s/x86_64/amd64/ -e s/aarch64/arm64/ -e s/ppc64le/ppc64el/)
CHARM := build/kubernetes-worker.charm
CHARM_FILES := metadata.yaml config.yaml actions.yaml dispatch hooks actions

FIXTURE_ARCHES := amd64 s390x

.PHONY: all deps fixtures charm test lint unit-tests demo clean

all: charm

# What a fresh machine of this kind lacks: zip/unzip to pack and deploy the
# charm, squashfs-tools for test snaps and the simulated snapd.
deps:
	@missing=""; \
	for pair in zip:zip unzip:unzip mksquashfs:squashfs-tools unsquashfs:squashfs-tools; do \
	    command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# Real CNI plugins (Debian's containernetworking-plugins) per architecture.
fixtures: deps
	tests/fetch-cni-fixtures.sh $(FIXTURE_ARCHES)

charm: deps
	$(CARGO) build --release --locked --bin kubernetes-worker
	rm -rf build/charm && mkdir -p build/charm/bin
	cp -a $(CHARM_FILES) build/charm/
	cp target/release/kubernetes-worker build/charm/bin/kubernetes-worker-$(ARCH)
	rm -f $(CHARM)
	cd build/charm && zip -q -r -y ../kubernetes-worker.charm .
	@echo "built $(CHARM) ($$(du -h $(CHARM) | cut -f1)) with bin/kubernetes-worker-$(ARCH)"

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit-tests: deps fixtures
	$(CARGO) test --workspace --locked

test: lint unit-tests

demo: charm fixtures
	$(CARGO) build --quiet --locked -p juju-sim --bins
	target/debug/juju-sim-demo $(CHARM)

clean:
	rm -rf build
	$(CARGO) clean
