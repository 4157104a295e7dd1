# kubernetes-worker charm: build, pack, test, demo.
#
#   make demo    build the charm and run it in a simulated Juju unit
#   make test    lint, unit tests, the simulated-unit suite natively and
#                against every architecture's shipped binary (under qemu-user
#                for s390x, arm64, ppc64el), charmcraft analyse, and the
#                suite against real snapd and systemd in LXD (test-lxd);
#                ends with a table of its stages' times against their
#                budgets (docs/engineers/testing.md)
#   make test-live  deploy into a real Juju model (JUJU_MODEL); not in test
#   make test-loaded  one architecture's suite beside busy loops on every
#                core, a writer and an interface coming and going
#                (LOAD_ARCH, HOGS, ROUNDS); not in test
#   make charm   build/kubernetes-worker.charm with static binaries for
#                amd64, s390x, arm64 and ppc64el
#   make bench   hook costs, CNI extraction and sizes against their budgets
#   make profile where a converged update-status spends its CPU (callgrind)
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

# Each step of a stage is timed into build/stages.tsv (tests/stages/).
STAGE := tests/stages/time.sh
export STAGES_FILE := $(CURDIR)/build/stages.tsv
# The suites run under nextest: every test in a process of its own, two a
# core at a time across all the test binaries, so that a binary of one long
# test (call_lists) does not leave a core idle. The simulation's tool binary is
# built once and named to every test process (see juju_sim::tool_binary).
# Two tests a core: a test's hooks wait on fsync and on the simulation's
# lock often enough that one test a core left a fifth of the CPU idle
# (the s390x suite: 1.73 cores busy at two tests on this 2-core machine,
# 1.98 at four, 12% less wall time). The suite is meant to give the same
# answer on a busy machine (docs/engineers/testing.md).
TEST_THREADS := $(shell echo $$(( 2 * $$(nproc) )))
NEXTEST := env JUJU_SIM_BIN=$(CURDIR)/target/debug/juju-sim $(CARGO) nextest run --locked --test-threads $(TEST_THREADS)

.PHONY: all deps toolchains fixtures binaries charm binfmt lint sim-tool profile unit-tests arch-tests arch-suites analyse analyse-run test test-stages test-lxd lxd-suite test-loaded test-live demo bench check-resource clean today-venv

all: charm

deps:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    $(STAGE) setup tests/apt-install.sh $$missing; \
	fi
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
	@$(CARGO) nextest --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-nextest

toolchains: deps
	@installed=$$(rustup target list --installed); \
	for t in $(foreach a,$(ARCHES),$(target_$(a))); do \
	    grep -qx $$t <<<"$$installed" || $(STAGE) setup rustup target add $$t; \
	done

# Real CNI plugins (Debian's containernetworking-plugins) per architecture.
fixtures: deps
	$(STAGE) setup tests/fetch-cni-fixtures.sh $(ARCHES)

# One static, stripped, size-optimised binary per architecture, each checked.
# One cargo run for all four: each target's last step (LTO, one codegen
# unit) is a single thread, and cargo runs another target's beside it.
binaries: toolchains
	@echo "building $(ARCHES)"
	@$(STAGE) binaries $(CARGO) build --quiet --release --locked $(foreach a,$(ARCHES),--target $(target_$(a))) --bin kubernetes-worker
	@$(foreach a,$(ARCHES),tests/check-binary.sh $(call binary,$(a)) $(a);)

charm: binaries
	@rm -rf build/charm && mkdir -p build/charm/bin
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
	$(STAGE) lint $(CARGO) fmt --all -- --check
	$(STAGE) lint $(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# The simulation's tool binary, which every test process runs hooks with
# (built with the whole workspace, so with the features the tests build
# their dependencies with: nothing twice).
sim-tool: deps
	$(STAGE) build-tests $(CARGO) build --locked --workspace --bins

# Today's Charmed Kubernetes libraries from PyPI, pinned with everything
# they import (tests/today/requirements.txt), which the unit tests run as
# the referee of the node's configuration (src/today.rs). Installed again
# only when the pins change.
TODAY_VENV := build/today-venv
$(TODAY_VENV)/.installed: tests/today/requirements.txt
	@$(MAKE) --no-print-directory deps
	$(STAGE) setup sh -c 'rm -rf $(TODAY_VENV) && python3 -m venv $(TODAY_VENV) \
	    && $(TODAY_VENV)/bin/pip install -q --no-deps -r tests/today/requirements.txt && touch $@'
today-venv: $(TODAY_VENV)/.installed

# The unit tests (and property tests) of every crate, in the debug build,
# with its overflow checks.
unit-tests: deps fixtures sim-tool today-venv
	$(STAGE) build-tests $(NEXTEST) --workspace --no-run
	$(STAGE) unit-tests $(NEXTEST) --no-fail-fast --workspace --lib --bins

# The simulated-unit suite (tests/*.rs) against each shipped binary, the
# very files packed into the .charm: amd64's natively, with the tests that
# kill hooks at every call or every moment of the unpack (the charm's
# logic, the same on every architecture) and those that never run the
# charm's binary (the simulation's own contract, the code's shape,
# dispatch with stand-ins); the others under qemu-user, without those,
# which would only repeat themselves. Every test is run once, on every
# architecture: a test that fails is a finding, never retried (issue 32;
# docs/engineers/testing.md, "The same answer on a busy machine"). The
# exchanges with today's own code (kube_control_today, todays_code_*) are
# the charm's logic too, and run natively only.
SUITE_native := kind(test)
SUITE_emulated := kind(test) & !(binary(=tool_contract) | binary(=machine_sim) | binary(=layering) \
	| binary(=record_owners) | binary(=dispatch) | binary(=kube_control_today) \
	| test(/^todays_code_/) | test(/^killed_(before|after)_any_call/) \
	| test(/^a_switch_killed_/) | test(=an_install_or_unpack_killed_at_any_moment_converges_with_the_plugins_the_charms))
suite_filter = $(if $(filter $(a),$(HOST_ARCH)),$(SUITE_native),$(SUITE_emulated))
arch-tests: charm binfmt fixtures sim-tool
	@$(MAKE) --no-print-directory arch-suites

# The suites alone, once what they run is built (test-stages).
arch-suites:
	@$(foreach a,$(ARCHES),echo "== simulated-unit suite on $(a) ($(call binary,$(a)))"; \
	    KW_TEST_ARCH=$(a) KW_TEST_BINARY=$(CURDIR)/$(call binary,$(a)) \
	    $(STAGE) suite-$(a) $(NEXTEST) --no-fail-fast --retries 0 -p kubernetes-worker -E '$(suite_filter)';)

# One architecture's suite beside what other jobs on a shared machine do
# (busy loops on every core, a writer, an interface coming and going:
# tests/under-load.sh), a number of rounds, each test tried once (issue
# 32): `make test-loaded [LOAD_ARCH=s390x] [HOGS=2] [ROUNDS=1]`. Not part
# of `make test`.
LOAD_ARCH ?= s390x
HOGS ?= $(shell nproc)
ROUNDS ?= 1
test-loaded: charm binfmt fixtures sim-tool
	@tests/under-load.sh $(HOGS) $(ROUNDS) -- env KW_TEST_ARCH=$(LOAD_ARCH) \
	    KW_TEST_BINARY=$(CURDIR)/$(call binary,$(LOAD_ARCH)) $(NEXTEST) --no-fail-fast \
	    --retries 0 -p kubernetes-worker -E '$(foreach a,$(LOAD_ARCH),$(suite_filter))'

analyse: charm
	@$(MAKE) --no-print-directory analyse-run

analyse-run:
	@[ -x $(VENV)/bin/charmcraft ] || $(STAGE) analyse sh -c 'python3 -m venv $(VENV) && $(VENV)/bin/pip install -q charmcraft'
	$(STAGE) analyse tests/analyse-charm.sh $(VENV)/bin/charmcraft $(CHARM)

# The stages, then their table (also when one failed), with the wall
# time of the whole run (stages overlap, so it is less than their sum).
test:
	@rm -f $(STAGES_FILE); rc=0; start=$$(date +%s); \
	$(MAKE) --no-print-directory test-stages || rc=$$?; \
	tests/stages/table.sh $(STAGES_FILE) $$(( $$(date +%s) - start )); exit $$rc

# The LXD suite mostly waits on debootstrap, snapd and systemd (about
# 100 s of CPU in 230 s): it runs beside the simulated-unit suites, its
# output kept in build/lxd.log and shown once both are done. Everything
# both use is built first, so that neither builds under the other.
test-stages: lint unit-tests charm binfmt fixtures sim-tool
	@mkdir -p build; rc=0; \
	$(MAKE) --no-print-directory lxd-suite >build/lxd.log 2>&1 & lxd=$$!; \
	$(MAKE) --no-print-directory arch-suites || rc=$$?; \
	wait $$lxd || { lxd_rc=$$?; [ $$rc != 0 ] || rc=$$lxd_rc; }; \
	echo "== the LXD suite (build/lxd.log)"; cat build/lxd.log; \
	$(MAKE) --no-print-directory analyse-run || { a=$$?; [ $$rc != 0 ] || rc=$$a; }; \
	exit $$rc

demo: charm fixtures
	$(CARGO) build --quiet --locked -p juju-sim --bins
	target/debug/juju-sim-demo $(CHARM)

# The charm against real snapd and systemd in an LXD system container
# (tests/lxd/). Needs root and a kernel that runs containers; where it
# cannot run it says so and fails, unless KW_SKIP_LXD=1 opts out.
LXD_WORK := /var/tmp/kw-lxd
test-lxd: charm fixtures
	@$(MAKE) --no-print-directory lxd-suite

lxd-suite:
	@if [ "$$(id -u)" != 0 ] || ! [ -d /sys/fs/cgroup ]; then \
	    echo "test-lxd: LXD cannot run here (needs root and cgroups)$${KW_SKIP_LXD:+; skipped as KW_SKIP_LXD asks}"; \
	    [ -n "$${KW_SKIP_LXD:-}" ]; exit $$?; \
	fi
	@for p in lxd debootstrap; do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || missing="$${missing:-} $$p"; done; \
	if [ -n "$${missing:-}" ]; then $(STAGE) lxd tests/apt-install.sh $$missing; fi
	@name=kw-$$$$; rm -rf $(LXD_WORK); mkdir -p $(LXD_WORK); \
	trap '$(STAGE) lxd tests/lxd/teardown.sh $(LXD_WORK)' EXIT; \
	$(STAGE) lxd tests/lxd/setup.sh $(LXD_WORK) $$name && \
	KW_LXD_CONTAINER=$$name KW_LXD_WORK=$(LXD_WORK) $(STAGE) lxd $(CARGO) test --locked --test lxd -- --ignored --nocapture

# The charm in a real Juju model; see tests/live.sh for its variables.
test-live: charm fixtures
	tests/live.sh

# What hooks cost, against the budgets; writes bench/latest.md.
bench: charm binfmt fixtures
	$(CARGO) bench --locked --bench hooks

# Where a converged update-status spends its CPU: an unstripped amd64
# release build (target/profile/), one hook under callgrind, the
# functions by instructions (docs/engineers/costs.md).
PROFILE_TARGET := target/profile
profile: fixtures
	@command -v valgrind >/dev/null || tests/apt-install.sh valgrind
	$(CARGO) build --quiet --release --locked --target $(target_amd64) --bin kubernetes-worker \
	    --target-dir $(PROFILE_TARGET) --config 'profile.release.strip=false' \
	    --config 'profile.release.package.kubernetes-worker.strip=false'
	KW_BENCH_BINARY=$(CURDIR)/$(PROFILE_TARGET)/$(target_amd64)/release/kubernetes-worker \
	    KW_BENCH_CALLGRIND=$(CURDIR)/build/update-status.callgrind $(CARGO) bench --locked --bench hooks
	callgrind_annotate --inclusive=yes build/update-status.callgrind > build/update-status.txt
	head -60 build/update-status.txt

check-resource: binaries
	@[ -n "$(FILE)" ] || { echo "usage: make check-resource FILE=<file> [ARCH=<arch>] [SNAP=<name>]"; exit 2; }
	$(call binary,$(HOST_ARCH)) $(if $(SNAP),check-snap $(FILE) --name $(SNAP),check-cni $(FILE)) --arch $(or $(ARCH),$(HOST_ARCH))

clean:
	rm -rf build
	$(CARGO) clean
