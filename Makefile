# kubernetes-worker charm: build, pack, test, demo.
#
#   make demo    build the charm and run it in a simulated Juju unit
#   make test    lint, unit tests, the simulated-unit suite natively and
#                against every architecture's shipped binary (under qemu-user
#                for s390x, arm64, ppc64el), charmcraft analyse, and the
#                suite against real snapd and systemd in LXD (test-lxd)
#   make test-live  deploy into a real Juju model (JUJU_MODEL); not in test
#   make charm   build/kubernetes-worker.charm with static binaries for
#                amd64, s390x, arm64 and ppc64el
#   make bench   hook costs, CNI extraction and sizes against their budgets
#   make check-resource FILE=<file> ARCH=<arch> [SNAP=<name>]
#                check a CNI tarball or a snap before attaching it

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

CARGO ?= cargo
ARCHES := amd64 s390x arm64 ppc64el
EMULATED := s390x arm64 ppc64el
target_amd64 := x86_64-unknown-linux-musl
target_s390x := s390x-unknown-linux-gnu
target_arm64 := aarch64-unknown-linux-gnu
target_ppc64el := powerpc64le-unknown-linux-gnu
qemu_s390x := s390x
qemu_arm64 := aarch64
qemu_ppc64el := ppc64le
binary = target/$(target_$(1))/release/kubernetes-worker

CHARM := build/kubernetes-worker.charm
CHARM_FILES := metadata.yaml config.yaml actions.yaml dispatch hooks actions
HOST_ARCH := $(shell uname -m | sed -e s/x86_64/amd64/ -e s/aarch64/arm64/ -e s/ppc64le/ppc64el/)
VENV := build/venv

# The Debian packages the build and the tests need.
PACKAGES := zip unzip squashfs-tools file musl-tools qemu-user-static binfmt-support \
	gcc-s390x-linux-gnu libc6-dev-s390x-cross gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
	gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross python3 python3-venv \
	xz-utils prometheus golang-go golang-k8s-sigs-structured-merge-diff-dev

# A RUSTFLAGS in the environment replaces .cargo/config.toml's rustflags and
# would give dynamic binaries.
unexport RUSTFLAGS

.PHONY: all deps toolchains fixtures binaries charm binfmt lint unit-tests arch-tests analyse test test-lxd test-live demo bench check-resource clean

all: charm

deps:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    tests/apt-install.sh $$missing; \
	fi
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

toolchains: deps
	@installed=$$(rustup target list --installed); \
	for t in $(foreach a,$(ARCHES),$(target_$(a))); do \
	    grep -qx $$t <<<"$$installed" || rustup target add $$t; \
	done

# Real CNI plugins (Debian's containernetworking-plugins) per architecture.
fixtures: deps
	tests/fetch-cni-fixtures.sh $(ARCHES)

# One static, stripped, size-optimised binary per architecture, each checked.
binaries: toolchains
	@for a in $(ARCHES); do \
	    t=$$(case $$a in amd64) echo $(target_amd64);; s390x) echo $(target_s390x);; arm64) echo $(target_arm64);; ppc64el) echo $(target_ppc64el);; esac); \
	    echo "building $$a ($$t)"; \
	    $(CARGO) build --quiet --release --locked --target $$t --bin kubernetes-worker; \
	done
	@$(foreach a,$(ARCHES),tests/check-binary.sh $(call binary,$(a)) $(a);)

charm: binaries
	rm -rf build/charm && mkdir -p build/charm/bin
	cp -a $(CHARM_FILES) build/charm/
	$(foreach a,$(ARCHES),cp $(call binary,$(a)) build/charm/bin/kubernetes-worker-$(a);)
	tests/write-manifest.sh $(ARCHES) > build/charm/manifest.yaml
	rm -f $(CHARM)
	cd build/charm && zip -q -r -y ../kubernetes-worker.charm .
	@echo "built $(CHARM): $$(stat -c %s $(CHARM)) bytes"

# Lets the kernel run the other architectures' binaries through qemu-user,
# as if they were native (they report their own architecture from uname).
binfmt: deps
	@mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	@$(foreach a,$(EMULATED),[ -e /proc/sys/fs/binfmt_misc/qemu-$(qemu_$(a)) ] || update-binfmts --enable qemu-$(qemu_$(a));)

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# The unit tests and the simulated-unit suite with the debug build.
unit-tests: deps fixtures
	$(CARGO) test --workspace --locked

# The simulated-unit suite against each shipped binary.
arch-tests: charm binfmt fixtures
	@$(foreach a,$(ARCHES),echo "== simulated-unit suite on $(a) ($(call binary,$(a)))"; \
	    KW_TEST_ARCH=$(a) KW_TEST_BINARY=$(CURDIR)/$(call binary,$(a)) \
	    $(CARGO) test --locked -p kubernetes-worker --tests;)

analyse: charm
	@[ -x $(VENV)/bin/charmcraft ] || { python3 -m venv $(VENV) && $(VENV)/bin/pip install -q charmcraft; }
	tests/analyse-charm.sh $(VENV)/bin/charmcraft $(CHARM)

test: lint unit-tests arch-tests analyse test-lxd

demo: charm fixtures
	$(CARGO) build --quiet --locked -p juju-sim --bins
	target/debug/juju-sim-demo $(CHARM)

# The charm against real snapd and systemd in an LXD system container
# (tests/lxd/). Needs root and a kernel that runs containers; where it
# cannot run it says so and fails, unless KW_SKIP_LXD=1 opts out.
LXD_WORK := /var/tmp/kw-lxd
test-lxd: charm fixtures
	@if [ "$$(id -u)" != 0 ] || ! [ -d /sys/fs/cgroup ]; then \
	    echo "test-lxd: LXD cannot run here (needs root and cgroups)$${KW_SKIP_LXD:+; skipped as KW_SKIP_LXD asks}"; \
	    [ -n "$${KW_SKIP_LXD:-}" ]; exit $$?; \
	fi
	@for p in lxd debootstrap; do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || missing="$${missing:-} $$p"; done; \
	if [ -n "$${missing:-}" ]; then tests/apt-install.sh $$missing; fi
	@name=kw-$$$$; rm -rf $(LXD_WORK); mkdir -p $(LXD_WORK); \
	trap 'tests/lxd/teardown.sh $(LXD_WORK)' EXIT; \
	tests/lxd/setup.sh $(LXD_WORK) $$name && \
	KW_LXD_CONTAINER=$$name KW_LXD_WORK=$(LXD_WORK) $(CARGO) test --locked --test lxd -- --ignored --nocapture

# The charm in a real Juju model; see tests/live.sh for its variables.
test-live: charm fixtures
	tests/live.sh

# What hooks cost, against the budgets; writes bench/latest.md.
bench: charm binfmt fixtures
	$(CARGO) bench --locked --bench hooks

check-resource: binaries
	@[ -n "$(FILE)" ] || { echo "usage: make check-resource FILE=<file> [ARCH=<arch>] [SNAP=<name>]"; exit 2; }
	$(call binary,$(HOST_ARCH)) $(if $(SNAP),check-snap $(FILE) --name $(SNAP),check-cni $(FILE)) --arch $(or $(ARCH),$(HOST_ARCH))

clean:
	rm -rf build
	$(CARGO) clean
