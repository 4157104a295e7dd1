#!/bin/sh
# make test-live: the packed charm in a real Juju model (not part of make
# test: it needs a controller). Deploys build/kubernetes-worker.charm with
# the resources for the machines' architecture, relates it to a control
# plane if one is named, waits for the status it should reach, then changes
# `labels` and `channel` and checks the results through `juju status
# --format=json` and `juju show-unit`.
#
#   JUJU_MODEL        the model to deploy into (required), e.g. lxd:k8s
#   KW_ARCH           the machines' architecture (default: this machine's)
#   KW_CNI_TGZ        CNI plugins tarball for KW_ARCH
#                     (default: build/fixtures/cni-<arch>.tgz, see make fixtures)
#   KW_CONTROL_PLANE  application providing kube-control (optional)
#   KW_CA             application providing tls-certificates (with the above)
#   KW_CNI_APP        CNI subordinate providing kubernetes-cni (with the above)
#   KW_APP            application name (default kubernetes-worker-live)
#   KW_KEEP=1         leave the application deployed
set -eu
fail() { echo "test-live: $*" >&2; exit 1; }
[ -n "${JUJU_MODEL:-}" ] || fail "set JUJU_MODEL to an existing Juju model to deploy into"
command -v juju >/dev/null || fail "no juju client on PATH (snap install juju --classic)"
juju show-model "$JUJU_MODEL" >/dev/null 2>&1 ||
    fail "cannot reach model $JUJU_MODEL: is the controller up, and are you logged in?"
[ -f build/kubernetes-worker.charm ] || fail "no build/kubernetes-worker.charm (run make charm)"

app=${KW_APP:-kubernetes-worker-live}
arch=${KW_ARCH:-$(dpkg --print-architecture)}
cni=${KW_CNI_TGZ:-build/fixtures/cni-$arch.tgz}
if [ ! -f "$cni" ] && [ -d "build/fixtures/cni/$arch" ]; then
    tar -czf "$cni" -C "build/fixtures/cni/$arch" .
fi
[ -f "$cni" ] || fail "no CNI tarball $cni for $arch (set KW_CNI_TGZ)"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
: > "$scratch/empty.snap"
: > "$scratch/empty.tgz"

j() { juju "$@" -m "$JUJU_MODEL"; }
# The unit's workload status and message, and the application version.
state() {
    j status --format=json "$app" | python3 -c '
import json, sys
app = json.load(sys.stdin)["applications"].get(sys.argv[1], {})
units = app.get("units", {})
unit = next(iter(units.values()), {})
ws = unit.get("workload-status", {})
print(ws.get("current", "") + "|" + ws.get("message", "") + "|" + app.get("version", ""))
' "$app"
}
# Waits up to $2 seconds for the status to start with "$1".
wait_for() {
    deadline=$(( $(date +%s) + $2 ))
    while :; do
        s=$(state)
        case $s in "$1"*) echo "  $s"; return 0 ;; error*) fail "unit in error: $s" ;; esac
        [ "$(date +%s)" -lt "$deadline" ] || fail "timed out waiting for '$1'; status is: $s"
        sleep 10
    done
}

resources="--resource cni-$arch=$cni"
for a in amd64 s390x arm64 ppc64el; do
    [ "$a" = "$arch" ] || resources="$resources --resource cni-$a=$scratch/empty.tgz"
done
for s in kubectl kubelet kube-proxy; do resources="$resources --resource $s=$scratch/empty.snap"; done

echo "deploying $app on $arch into $JUJU_MODEL"
# shellcheck disable=SC2086
j deploy ./build/kubernetes-worker.charm "$app" --constraints "arch=$arch" $resources
[ -n "${KW_KEEP:-}" ] || trap 'rm -rf "$scratch"; j remove-application --force --no-prompt "$app" >/dev/null 2>&1 || true' EXIT

if [ -n "${KW_CONTROL_PLANE:-}" ]; then
    j integrate "$app:kube-control" "$KW_CONTROL_PLANE:kube-control"
    [ -z "${KW_CA:-}" ] || j integrate "$app:certificates" "$KW_CA:client"
    [ -z "${KW_CNI_APP:-}" ] || j integrate "$app:cni" "$KW_CNI_APP:cni"
    echo "waiting for active"
    wait_for "active|Kubernetes worker running." 1800
else
    echo "no control plane named: waiting for the unit to ask for one"
    wait_for "blocked|Relate kubernetes-worker:kube-control to the control plane" 1800
fi

echo "changing labels"
j config "$app" labels="kw-live=yes"
sleep 20
case $(state) in
    active*|"blocked|Relate"*) echo "  $(state)" ;;
    *) fail "after a labels change: $(state)" ;;
esac
j show-unit "$app/0" --format=json | python3 -c '
import json, sys
unit = next(iter(json.load(sys.stdin).values()))
print("  workload version:", unit.get("workload-version", "?"))
'

echo "changing channel (require-manual-upgrade holds it)"
before=$(state | cut -d"|" -f3)
current=$(j config "$app" channel)
track=${current%%/*}
next="1.$(( ${track#1.} + 1 ))/stable"
j config "$app" channel="$next"
wait_for "blocked|Needs manual upgrade, run the upgrade action" 600
j run "$app/0" upgrade --wait=20m
sleep 10
after=$(state | cut -d"|" -f3)
[ "$after" != "$before" ] || fail "the upgrade action left version $before"
echo "  upgraded $before -> $after"
echo "test-live: passed"
